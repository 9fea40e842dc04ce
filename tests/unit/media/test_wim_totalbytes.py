"""Each edition's TOTALBYTES (its expanded size, about what the apply writes) and the install image's size: read
from hand-made XML and from WIMs the testbed's writer makes, and carried to the edition the install picks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.media.isotools import EDITION_BYTES, EDITIONS, iso_with_wim, refused, wim_with_xml
from winarm.answer.plan import choose_edition
from winarm.media.iso import Edition, InstallImage, IsoInfo, inspect_iso
from winarm.media.wim import HEADER_SIZE, WimError, parse_header, parse_xml
from winarm_testbed.wim_writer import editions_xml, filler, wim_bytes, write_wim


def xml_of(*images: str) -> bytes:
    return b"\xff\xfe" + f"<WIM><TOTALBYTES>77</TOTALBYTES>{''.join(images)}</WIM>".encode("utf-16-le")


def image(index: int, total: str | None) -> str:
    size = f"<TOTALBYTES> {total} </TOTALBYTES>" if total is not None else ""
    return f'<IMAGE INDEX="{index}"><DIRCOUNT>1</DIRCOUNT>{size}<NAME>Windows 11 Pro</NAME></IMAGE>'


def test_hand_made_xml_gives_each_image_its_own_totalbytes() -> None:
    editions = parse_xml(xml_of(image(2, "9614917632"), image(1, "7861235712"), image(3, None), image(4, "0")), 4)
    assert [e.total_bytes for e in editions] == [7_861_235_712, 9_614_917_632, None, None], \
        "by image, not the WIM's own TOTALBYTES (77); none or 0 is unknown"


@pytest.mark.parametrize("bad", ["9.6e9", "-5", "lots", "1" * 16, "\u0661\u0662"])
def test_a_totalbytes_that_is_not_a_number_is_refused_by_name(bad: str) -> None:
    with pytest.raises(WimError, match="image 1's TOTALBYTES"):
        parse_xml(xml_of(image(1, bad)), 1)


def test_the_writer_round_trips_per_edition_sizes_and_one_for_all() -> None:
    data = wim_bytes(EDITIONS, image_bytes=EDITION_BYTES)
    header = parse_header(data[:HEADER_SIZE], len(data))
    xml = data[header.xml_data.offset : header.xml_data.offset + header.xml_data.size]
    assert [e.total_bytes for e in parse_xml(xml, 2)] == list(EDITION_BYTES)
    assert f"<TOTALBYTES>{len(data)}</TOTALBYTES><IMAGE".encode("utf-16-le") in xml, "the root is the WIM's size"
    same = editions_xml(EDITIONS, build="26100", arch="arm64", image_bytes=5)
    assert [e.total_bytes for e in parse_xml(same, 2)] == [5, 5]
    with pytest.raises(ValueError, match="3 image sizes for 2 editions"):
        editions_xml(EDITIONS, build="26100", arch="arm64", image_bytes=(1, 2, 3))


def test_a_sized_wim_is_exactly_that_size_and_its_filler_has_no_zero_block(tmp_path: Path) -> None:
    path = tmp_path / "install.wim"
    size = 3 * 1024 * 1024
    assert write_wim(path, EDITIONS, build="26100", arch="arm64", size=size, image_bytes=size + 7) == size
    data = path.read_bytes()
    assert len(data) == size
    header = parse_header(data[:HEADER_SIZE], size)
    assert header.xml_data.offset + header.xml_data.size == size, "the XML at the very end"
    body = data[HEADER_SIZE : header.xml_data.offset]
    assert not any(body[i : i + 512] == bytes(512) for i in range(0, len(body) - 511, 512))
    assert body[: 1024 * 1024] == filler(1024 * 1024, seed=0), "deterministic: the same image every build"
    with pytest.raises(ValueError, match="smaller than the header"):
        write_wim(tmp_path / "small.wim", EDITIONS, build="26100", arch="arm64", size=1000)


def test_the_chosen_edition_carries_its_size_and_the_image_file_size(good_iso: Path) -> None:
    info = inspect_iso(good_iso)
    wim_size = len(wim_bytes(EDITIONS, image_bytes=EDITION_BYTES))
    assert info.install_image(choose_edition(info, "1")) == InstallImage("Windows 11 Home", 1, EDITION_BYTES[0],
                                                                         wim_size, ("en-US",))
    assert info.install_image(choose_edition(info, None)) == InstallImage("Windows 11 Pro", 2, EDITION_BYTES[1],
                                                                          wim_size, ("en-US",))
    unsized = IsoInfo("arm64", "sources/install.wim", (Edition(1, "Windows 11 Pro", "26100", "arm64"),), 9)
    assert unsized.install_image(unsized.editions[0]) is None, "no TOTALBYTES, no progress to measure against"


def test_an_iso_with_a_broken_totalbytes_is_refused_in_one_line(isos: Path) -> None:
    wim = wim_with_xml(xml_of(image(1, "huge")), images=1)
    message = refused(iso_with_wim(isos, "bad-totalbytes.iso", wim))
    assert "is not a readable Windows image" in message and "TOTALBYTES" in message
