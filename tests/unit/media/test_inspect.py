"""Reading a Windows install ISO's editions without reading its image: winarm.media.wim, winarm.media.iso, inspect.

All fast (no QEMU): the ISOs are built by winarm_testbed.wim_image with pycdlib, padded images are sparse.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winarm.cli.main import main
from winarm.errors import UserError
from winarm.media import iso as isoread
from winarm.media.iso import Edition, IsoInfo, inspect_iso
from winarm.media.wim import HEADER_SIZE, MAX_XML_SIZE, ResourceHeader, WimError, parse_header, parse_xml
from winarm_testbed.wim_image import build_bridge_iso
from winarm_testbed.wim_writer import WritableWimHeader as WimHeader
from winarm_testbed.wim_writer import editions_xml, wim_bytes, write_wim

GiB = 1024**3
EDITIONS = ("Windows 11 Home", "Windows 11 Pro")
ARM64_MEDIA = "winarm needs Windows for ARM64 (arm64) media"


@pytest.fixture(scope="module")
def isos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isos")


@pytest.fixture(scope="module")
def good_iso(isos: Path) -> Path:
    return build_bridge_iso(isos / "good.iso", editions=EDITIONS, build="26100")


@pytest.fixture(scope="module")
def big_iso(isos: Path) -> Path:
    """A 1 GiB install.wim (sparse on disk): the XML sits past a gigabyte of padding."""
    return build_bridge_iso(isos / "big.iso", wim_padding=GiB)


def refused(path: Path, *, require_arm64: bool = True) -> str:
    """The one-line message inspect_iso gives for ``path``; fails the test if it returns or raises another type."""
    with pytest.raises(UserError) as caught:
        inspect_iso(path, require_arm64=require_arm64)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message


def iso_with_wim(isos: Path, name: str, wim: bytes) -> Path:
    return build_bridge_iso(isos / name, extra_files={"sources/install.wim": wim})


# --- the good case -----------------------------------------------------------------------------------------


def test_arm64_bridge_iso_reports_editions_exactly(good_iso: Path) -> None:
    info = inspect_iso(good_iso)
    assert info == IsoInfo(
        arch="arm64",
        image="sources/install.wim",
        editions=(Edition(1, "Windows 11 Home", "26100", "arm64"), Edition(2, "Windows 11 Pro", "26100", "arm64")),
    )
    assert info.default_edition() == Edition(2, "Windows 11 Pro", "26100", "arm64")
    assert info.as_json() == {
        "arch": "arm64",
        "image": "sources/install.wim",
        "editions": [
            {"index": 1, "name": "Windows 11 Home", "build": "26100", "arch": "arm64"},
            {"index": 2, "name": "Windows 11 Pro", "build": "26100", "arch": "arm64"},
        ],
    }


def test_default_edition_prefers_plain_pro_then_any_pro_then_first() -> None:
    def info(*names: str) -> IsoInfo:
        editions = tuple(Edition(i, n, "1", "arm64") for i, n in enumerate(names, 1))
        return IsoInfo("arm64", "sources/install.wim", editions)

    assert info("Windows 11 Home", "Windows 11 Pro N", "Windows 11 Pro Education", "Windows 11 Pro").default_edition(
    ).index == 4
    assert info("Windows 11 Home", "Windows 11 Pro N", "Windows 11 Pro Education").default_edition().index == 2
    assert info("Windows 11 Home", "Windows 11 Education", "Windows 11 Professional").default_edition().index == 1


def test_build_with_service_pack_build_and_many_editions(isos: Path) -> None:
    names = ("Windows 11 Home", "Windows 11 Home N", "Windows 11 Education", "Windows 11 Pro N", "Windows 11 Pro")
    iso = build_bridge_iso(isos / "spbuild.iso", editions=names, build="26100.1742")
    info = inspect_iso(iso)
    assert [e.name for e in info.editions] == list(names)
    assert [e.index for e in info.editions] == [1, 2, 3, 4, 5]
    assert {e.build for e in info.editions} == {"26100.1742"}
    assert info.default_edition().index == 5


def test_install_esd_is_found_instead_of_wim(isos: Path) -> None:
    iso = build_bridge_iso(isos / "esd.iso", install_image="sources/install.esd")
    info = inspect_iso(iso)
    assert info.image == "sources/install.esd"
    assert [e.name for e in info.editions] == list(EDITIONS)


@pytest.mark.parametrize("layout", ["iso9660", "joliet"])
def test_plain_iso9660_tree_without_udf(isos: Path, layout: Any) -> None:
    iso = build_bridge_iso(isos / f"plain-{layout}.iso", layout=layout, build="22631")
    info = inspect_iso(iso)
    assert info.arch == "arm64"
    assert info.image == "sources/install.wim"  # found case-insensitively as /SOURCES/INSTALL.WIM;1
    assert [(e.index, e.name, e.build) for e in info.editions] == [(1, EDITIONS[0], "22631"), (2, EDITIONS[1], "22631")]


def test_upper_case_udf_names_are_matched(isos: Path) -> None:
    wim = wim_bytes(EDITIONS)
    iso = build_bridge_iso(
        isos / "upper.iso",
        arch="1",  # no default boot loader: only the upper-case one below
        install_image=None,
        extra_files={"EFI/Boot/BOOTAA64.EFI": b"MZ", "Sources/Install.WIM": wim},
    )
    assert inspect_iso(iso).image == "sources/install.wim"


# --- wrong architecture ------------------------------------------------------------------------------------


def test_x64_iso_is_refused_with_its_arch(isos: Path) -> None:
    iso = build_bridge_iso(isos / "x64.iso", arch="x64")
    message = refused(iso)
    assert message == f"ISO {str(iso)!r} is an x64 ISO: {ARM64_MEDIA}"
    info = inspect_iso(iso, require_arm64=False)
    assert info.arch == "x64"
    assert {e.arch for e in info.editions} == {"x64"}


def test_wim_arch_wins_over_boot_loader(isos: Path) -> None:
    x64_wim = wim_bytes(EDITIONS, arch="x64")
    iso = build_bridge_iso(isos / "mixed.iso", arch="arm64", extra_files={"sources/install.wim": x64_wim})
    assert "is an x64 ISO" in refused(iso)


def test_boot_loader_decides_when_the_wim_names_no_arch(isos: Path) -> None:
    xml = "<WIM><IMAGE INDEX=\"1\"><NAME>Windows 11 Pro</NAME></IMAGE></WIM>"
    iso = iso_with_wim(isos, "noarch.iso", _wim_with_xml(b"\xff\xfe" + xml.encode("utf-16-le"), images=1))
    info = inspect_iso(iso)
    assert info.arch == "arm64"
    assert info.editions == (Edition(1, "Windows 11 Pro", "", "unknown"),)


def test_cli_json_prints_x64_and_exits_0_while_human_form_exits_2(isos: Path) -> None:
    iso = build_bridge_iso(isos / "x64-cli.iso", arch="x64")
    runner = CliRunner()
    result = runner.invoke(main, ["inspect", str(iso), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["arch"] == "x64"
    assert data == inspect_iso(iso, require_arm64=False).as_json()
    human = runner.invoke(main, ["inspect", str(iso)])
    assert human.exit_code == 2
    assert human.stdout == ""
    assert human.stderr == f"winarm: ISO {str(iso)!r} is an x64 ISO: {ARM64_MEDIA}\n"


def test_cli_human_table_and_json(good_iso: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["inspect", str(good_iso)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "arch:     arm64" in lines
    assert "image:    sources/install.wim" in lines
    table = [line.split() for line in lines[lines.index(next(x for x in lines if x.startswith("index"))) :]]
    assert table == [
        ["index", "name", "build", "arch"],
        ["1", "Windows", "11", "Home", "26100", "arm64"],
        ["2", "Windows", "11", "Pro", "26100", "arm64"],
    ]
    assert any("default: 2 Windows 11 Pro" in line for line in lines)
    as_json = runner.invoke(main, ["inspect", str(good_iso), "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == inspect_iso(good_iso).as_json()


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_text("hello\n" * 10000)
    for args in (["inspect", str(junk)], ["inspect", str(junk), "--json"], ["inspect", str(tmp_path / "none.iso")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert re.fullmatch(r"winarm: [^\n]+\n", result.stderr), result.stderr
        assert "Traceback" not in result.output


# --- not an ISO, truncated, no image --------------------------------------------------------------------------


def test_missing_directory_empty_random_and_text_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.iso"
    assert refused(missing).startswith(f"ISO {str(missing)!r} does not exist")
    assert "is a directory" in refused(tmp_path)
    empty = tmp_path / "empty.iso"
    empty.write_bytes(b"")
    assert "is not an ISO image (only 0 bytes)" in refused(empty)
    noise = tmp_path / "noise.iso"
    noise.write_bytes(os.urandom(200_000))
    assert "is not an ISO image" in refused(noise)
    text = tmp_path / "notes.iso"
    text.write_text("Windows 11 ARM64 ISO download link\n" * 3000)
    assert "is not an ISO image" in refused(text)


def test_truncated_iso_is_named_truncated(good_iso: Path, tmp_path: Path) -> None:
    half = tmp_path / "half.iso"
    data = good_iso.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    message = refused(half)
    assert "is truncated" in message
    assert "download the ISO again" in message


def test_truncated_inside_a_big_image(big_iso: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.iso"
    with big_iso.open("rb") as source, cut.open("wb") as target:
        target.write(source.read(1024 * 1024))  # the descriptors and the WIM header, not the XML past 1 GiB
        target.truncate(big_iso.stat().st_size // 2)
    assert "is truncated" in refused(cut)


def test_iso_without_install_image(isos: Path) -> None:
    iso = build_bridge_iso(isos / "noimage.iso", install_image=None, extra_files={"sources/boot.wim": b"x"})
    message = refused(iso)
    assert "has no sources/install.wim or sources/install.esd" in message
    assert str(iso) in message


# --- broken images -----------------------------------------------------------------------------------------


def _wim_with_xml(xml: bytes, *, images: int, xml_size: int | None = None, padding: int = 0) -> bytes:
    size = len(xml) if xml_size is None else xml_size
    header = WimHeader(
        header_size=HEADER_SIZE,
        version=0x10D00,
        flags=0,
        chunk_size=0,
        guid=b"g" * 16,
        part_number=1,
        total_parts=1,
        image_count=images,
        lookup_table=ResourceHeader(0, 0, 0, 0),
        xml_data=ResourceHeader(size, 0, HEADER_SIZE + padding, size),
    )
    return header.pack() + bytes(padding) + xml


def _patched(wim: bytes, offset: int, value: bytes) -> bytes:
    return wim[:offset] + value + wim[offset + len(value) :]


GOOD_WIM = wim_bytes(EDITIONS)
BROKEN_HEADERS = {
    "magic": (_patched(GOOD_WIM, 0, b"MSWIN"), "no WIM signature"),
    "header size": (_patched(GOOD_WIM, 8, struct.pack("<I", 12)), "header size 12"),
    "no images": (_patched(GOOD_WIM, 0x2C, struct.pack("<I", 0)), "claims 0 images"),
    "xml outside": (_patched(GOOD_WIM, 0x48 + 8, struct.pack("<Q", 10**9)), "lies outside"),
    "xml compressed": (_patched(GOOD_WIM, 0x48 + 7, b"\x04"), "compressed"),
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
    iso = iso_with_wim(isos, f"xml-{case.replace(' ', '-')}.iso", _wim_with_xml(xml, images=images))
    message = refused(iso)
    assert "sources/install.wim is not a readable Windows image" in message
    assert reason in message


class CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes it hands out."""

    def __init__(self, path: Path) -> None:
        self.inner = io.FileIO(path, "rb")
        self.bytes_read = 0
        self.reads = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.inner.readinto(buffer)
        self.bytes_read += count or 0
        self.reads += 1
        return int(count or 0)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def close(self) -> None:
        self.inner.close()
        super().close()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CountingFile]]:
    opened: list[CountingFile] = []

    def fake_open(path: Path) -> BinaryIO:
        handle = CountingFile(path)
        opened.append(handle)
        return io.BufferedReader(handle)

    monkeypatch.setattr(isoread, "_open", fake_open)
    yield opened


def test_xml_over_the_cap_is_refused_unread(isos: Path, counted: list[CountingFile]) -> None:
    size = MAX_XML_SIZE + 2
    xml = b"\xff\xfe" + b"<\x00" * ((size - 2) // 2)
    iso = iso_with_wim(isos, "xml-cap.iso", _wim_with_xml(xml, images=1))
    message = refused(iso)
    assert "over the 16 MiB limit" in message
    assert counted[0].bytes_read < 2 * 1024 * 1024


def test_inspect_reads_a_tiny_part_of_a_1_gib_iso(big_iso: Path, counted: list[CountingFile]) -> None:
    size = big_iso.stat().st_size
    assert size > GiB
    assert big_iso.stat().st_blocks * 512 < 64 * 1024 * 1024, "the test ISO should be sparse"
    started = time.monotonic()
    info = inspect_iso(big_iso)
    elapsed = time.monotonic() - started
    assert [e.name for e in info.editions] == list(EDITIONS)
    assert len(counted) == 1
    assert counted[0].bytes_read < 1024 * 1024, counted[0].bytes_read
    assert counted[0].bytes_read * 1000 < size
    assert elapsed < 5


def test_real_reads_of_a_1_gib_iso_stay_small(big_iso: Path) -> None:
    """Without the test seam: the process's own read count (/proc/self/io rchar) barely moves."""
    io_file = Path("/proc/self/io")
    if not io_file.exists():
        pytest.skip("/proc/self/io is not available on this system")

    def rchar() -> int:
        return int(re.search(r"^rchar: (\d+)$", io_file.read_text(), re.MULTILINE).group(1))  # type: ignore[union-attr]

    before = rchar()
    inspect_iso(big_iso)
    assert rchar() - before < 16 * 1024 * 1024


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


# --- external tools agree that the ISO is a Windows-shaped UDF bridge ---------------------------------------


def test_external_tools_see_a_udf_bridge(isos: Path, tmp_path: Path) -> None:
    tools = [tool for tool in ("7z", "isoinfo", "xorriso") if shutil.which(tool)]
    if not tools:
        pytest.skip("none of 7z (p7zip-full), isoinfo (genisoimage), xorriso is installed")
    fat = tmp_path / "efi.img"
    fat.write_bytes(b"\xeb\x3c\x90" + bytes(1024 * 1024 - 3))  # contents don't matter to the catalog
    iso = build_bridge_iso(isos / "tools.iso", efi_boot_image=fat)
    assert inspect_iso(iso).arch == "arm64"
    if "7z" in tools:
        listing = subprocess.run(["7z", "l", str(iso)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"\ssources/install\.wim$", listing, re.MULTILINE), listing
        assert re.search(r"\sefi/boot/bootaa64\.efi$", listing, re.MULTILINE), listing
    if "isoinfo" in tools:
        tree = subprocess.run(["isoinfo", "-f", "-i", str(iso)], capture_output=True, text=True, check=True).stdout
        assert set(tree.split()) == {"/README.TXT;1", "/BOOT.CAT;1", "/EFIBOOT.IMG;1"}, tree
    if "xorriso" in tools:
        report = subprocess.run(
            ["xorriso", "-indev", str(iso), "-report_el_torito", "plain"], capture_output=True, text=True, check=True
        )
        assert re.search(r"El Torito boot img :\s+1\s+UEFI\s+y\s+none", report.stdout), report.stdout


# --- no input bytes make inspect_iso raise anything but UserError --------------------------------------------


@pytest.fixture(scope="module")
def fuzz_base(good_iso: Path) -> bytes:
    return good_iso.read_bytes()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_iso_bytes_give_only_user_errors(fuzz_base: bytes, tmp_path: Path, data: st.DataObject) -> None:
    wim_at = fuzz_base.index(b"MSWIM\x00\x00\x00")
    region = data.draw(
        st.sampled_from(["descriptors", "directories", "wim header", "wim xml", "anywhere"]), label="region"
    )
    low, high = {
        "descriptors": (16 * 2048, 32 * 2048),
        "directories": (32 * 2048, wim_at),
        "wim header": (wim_at, wim_at + HEADER_SIZE),
        "wim xml": (wim_at + HEADER_SIZE, wim_at + len(GOOD_WIM)),
        "anywhere": (0, len(fuzz_base)),
    }[region]
    mutated = bytearray(fuzz_base)
    for _ in range(data.draw(st.integers(1, 8), label="changes")):
        offset = data.draw(st.integers(low, high - 1), label="offset")
        mutated[offset] = data.draw(st.integers(0, 255), label="byte")
    if data.draw(st.booleans(), label="truncate"):
        del mutated[data.draw(st.integers(0, len(mutated)), label="length") :]
    target = tmp_path / "fuzz.iso"
    target.write_bytes(bytes(mutated))
    try:
        inspect_iso(target)
    except UserError as error:
        assert "\n" not in str(error)


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=4096), count=st.integers(0, 2000))
def test_fuzzed_wim_bytes_give_only_wim_errors(blob: bytes, count: int) -> None:
    with contextlib.suppress(WimError):
        parse_header(blob if len(blob) % 3 else GOOD_WIM[:HEADER_SIZE] + blob, len(blob) + 10**6)
    with contextlib.suppress(WimError):
        parse_xml(blob if count % 2 else b"\xff\xfe" + blob.decode("latin-1").encode("utf-16-le"), count)
