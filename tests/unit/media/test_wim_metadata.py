"""The WIM header and its XML metadata: broken headers and XML are refused by name, the XML size is capped, and
the writer's images parse back.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.unit.media.isotools import (
    EDITIONS,
    GOOD_WIM,
    CountingFile,
    GiB,
    iso_with_wim,
    patched,
    refused,
    wim_with_xml,
)
from winarm.media.wim import HEADER_SIZE, MAX_XML_SIZE, parse_header, parse_xml
from winarm_testbed.wim_writer import editions_xml, wim_bytes, write_wim

# --- broken images -----------------------------------------------------------------------------------------


BROKEN_HEADERS = {
    "magic": (patched(GOOD_WIM, 0, b"MSWIN"), "no WIM signature"),
    "header size": (patched(GOOD_WIM, 8, struct.pack("<I", 12)), "header size 12"),
    "no images": (patched(GOOD_WIM, 0x2C, struct.pack("<I", 0)), "claims 0 images"),
    "xml outside": (patched(GOOD_WIM, 0x48 + 8, struct.pack("<Q", 10**9)), "lies outside"),
    "xml compressed": (patched(GOOD_WIM, 0x48 + 7, b"\x04"), "compressed"),
    "short file": (GOOD_WIM[:100], "shorter than a WIM header"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_HEADERS))
def test_broken_wim_header(isos: Path, case: str) -> None:
    wim, reason = BROKEN_HEADERS[case]
    iso = iso_with_wim(isos, f"header-{case.replace(' ', '-')}.iso", wim)
    message = refused(iso)
    assert "sources/install.wim is not a readable Windows image" in message
    assert reason in message


BAD_XML = {
    "not xml": (b"\xff\xfe" + "<WIM><IMAGE".encode("utf-16-le"), 1, "not well-formed"),
    "odd bytes": (b"\xff\xfe\x00\xd8\x41\x00", 1, "not UTF-16"),  # a lone surrogate
    "wrong root": (b"\xff\xfe" + "<IMAGES/>".encode("utf-16-le"), 1, "not <WIM>"),
    "count": (editions_xml(["A"], build="1", arch="arm64"), 2, "lists 1 images but the header says 2"),
    "no name": (b"\xff\xfe" + '<WIM><IMAGE INDEX="1"/></WIM>'.encode("utf-16-le"), 1, "has no NAME"),
    "bad index": (b"\xff\xfe" + '<WIM><IMAGE INDEX="x"><NAME>a</NAME></IMAGE></WIM>'.encode("utf-16-le"), 1,
                  "INDEX"),
    "entities": (
        b"\xff\xfe"
        + '<!DOCTYPE WIM [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><WIM><IMAGE INDEX="1"><NAME>&b;</NAME>'
        "</IMAGE></WIM>".encode("utf-16-le"),
        1,
        "forbidden XML feature",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_XML))
def test_broken_wim_xml(isos: Path, case: str) -> None:
    xml, images, reason = BAD_XML[case]
    iso = iso_with_wim(isos, f"xml-{case.replace(' ', '-')}.iso", wim_with_xml(xml, images=images))
    message = refused(iso)
    assert "sources/install.wim is not a readable Windows image" in message
    assert reason in message


def test_xml_over_the_cap_is_refused_unread(isos: Path, counted: list[CountingFile]) -> None:
    size = MAX_XML_SIZE + 2
    xml = b"\xff\xfe" + b"<\x00" * ((size - 2) // 2)
    iso = iso_with_wim(isos, "xml-cap.iso", wim_with_xml(xml, images=1))
    message = refused(iso)
    assert "over the 16 MiB limit" in message
    assert counted[0].bytes_read < 2 * 1024 * 1024


# --- the WIM writer and parser on their own ----------------------------------------------------------------


def test_write_wim_to_a_path_is_sparse_and_parses(tmp_path: Path) -> None:
    target = tmp_path / "install.wim"
    total = write_wim(target, ["Windows 11 Pro"], build="26100.4061", arch="arm64", padding=2 * GiB)
    assert target.stat().st_size == total > 2 * GiB
    assert target.stat().st_blocks * 512 < 1024 * 1024
    with target.open("rb") as handle:
        header = parse_header(handle.read(HEADER_SIZE), total)
        assert header.image_count == 1
        assert header.xml_data.offset == HEADER_SIZE + 2 * GiB
        handle.seek(header.xml_data.offset)
        xml = handle.read()
    assert xml.startswith(b"\xff\xfe")
    editions = parse_xml(xml, header.image_count)
    assert [(e.index, e.name, e.build, e.arch) for e in editions] == [(1, "Windows 11 Pro", "26100.4061", "arm64")]


def test_write_wim_stream_equals_path(tmp_path: Path) -> None:
    target = tmp_path / "a.wim"
    write_wim(target, EDITIONS, build="26100", arch=9, padding=5000)
    assert target.read_bytes() == wim_bytes(EDITIONS, arch="x64", padding=5000)


def test_arch_numbers_map_to_names() -> None:
    for number, name in ((12, "arm64"), (9, "x64"), (0, "x86"), (5, "arm"), (6, "6")):
        editions = parse_xml(editions_xml(["A"], build="1", arch=number), 1)
        assert editions[0].arch == name
