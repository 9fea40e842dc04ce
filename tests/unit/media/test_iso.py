"""Reading a Windows install ISO's editions without reading its image: UDF and ISO9660 trees, the architecture,
files that are not ISOs, and how little of a big ISO is read.

All fast (no QEMU): the ISOs are built by winarm_testbed.wim_image with pycdlib, padded images are sparse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.media.isotools import (
    ARM64_MEDIA,
    EDITION_BYTES,
    EDITIONS,
    CountingFile,
    GiB,
    iso_with_wim,
    refused,
    wim_with_xml,
)
from winarm.media.iso import Edition, IsoInfo, inspect_iso
from winarm_testbed.wim_image import build_bridge_iso
from winarm_testbed.wim_writer import wim_bytes

EN = ("en-US",)
"""The test media's editions are English only, as ``winarm_testbed.wim_writer`` writes them."""

# --- the good case -----------------------------------------------------------------------------------------


def test_arm64_bridge_iso_reports_editions_exactly(good_iso: Path) -> None:
    home, pro = EDITION_BYTES
    wim_size = len(wim_bytes(EDITIONS, image_bytes=EDITION_BYTES))
    info = inspect_iso(good_iso)
    assert info == IsoInfo(
        arch="arm64",
        image="sources/install.wim",
        editions=(Edition(1, "Windows 11 Home", "26100", "arm64", home, EN, "en-US"),
                  Edition(2, "Windows 11 Pro", "26100", "arm64", pro, EN, "en-US")),
        image_bytes=wim_size,
    )
    assert info.default_edition() == Edition(2, "Windows 11 Pro", "26100", "arm64", pro, EN, "en-US")
    assert info.as_json() == {
        "arch": "arm64",
        "image": "sources/install.wim",
        "image_bytes": wim_size,
        "answer_files": [],
        "editions": [
            {"index": 1, "name": "Windows 11 Home", "build": "26100", "arch": "arm64", "total_bytes": home,
             "languages": ["en-US"], "default_language": "en-US"},
            {"index": 2, "name": "Windows 11 Pro", "build": "26100", "arch": "arm64", "total_bytes": pro,
             "languages": ["en-US"], "default_language": "en-US"},
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
    iso = iso_with_wim(isos, "noarch.iso", wim_with_xml(b"\xff\xfe" + xml.encode("utf-16-le"), images=1))
    info = inspect_iso(iso)
    assert info.arch == "arm64"
    assert info.editions == (Edition(1, "Windows 11 Pro", "", "unknown"),)


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


# --- how much is read ----------------------------------------------------------------------------------------


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
