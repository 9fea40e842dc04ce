"""The Windows-shaped test ISO, read with pycdlib, 7z, isoinfo and xorriso (the guest playing Setup's passes from
it boots in tests/system/test_testbed_windows.py)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cache_dir

EDITIONS = ["Windows 11 Home", "Windows 11 Pro"]


@pytest.fixture(scope="session")
def windows_iso() -> Path:
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), log=lambda line: None)


# --------------------------------------------------------------------------------------------------
# The ISO itself


def test_testbed_is_a_udf_bridge_with_el_torito_and_editions(windows_iso: Path) -> None:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(windows_iso))
    try:
        iso9660 = [c.file_identifier().decode() for c in iso.list_children(iso_path="/")]
        assert sorted(n for n in iso9660 if n not in (".", "..")) == ["README.TXT;1"], iso9660
        udf_root = {c.file_identifier().decode() for c in iso.list_children(udf_path="/") if c is not None}
        assert {"efi", "sources", "boot"} <= udf_root, udf_root
        udf_sources = {c.file_identifier().decode() for c in iso.list_children(udf_path="/sources") if c is not None}
        assert {"install.wim", "winarm-seed.img"} <= udf_sources, udf_sources
        loader = io.BytesIO()
        iso.get_file_from_iso_fp(loader, udf_path="/efi/boot/bootaa64.efi")
        assert loader.getvalue()[:2] == b"MZ", "efi/boot/bootaa64.efi is a PE image (the guest's GRUB)"
    finally:
        iso.close()

    listing = subprocess.run(["isoinfo", "-l", "-i", str(windows_iso)], capture_output=True, text=True, check=True)
    files = re.findall(r"\]\s+(\S+)\s*$", listing.stdout, re.M)
    assert [f for f in files if f not in (".", "..")] == ["README.TXT;1"], listing.stdout
    seven = subprocess.run(["7z", "l", str(windows_iso)], capture_output=True, text=True, check=True)
    for path in ("efi/boot/bootaa64.efi", "sources/install.wim", "sources/winarm-seed.img"):
        assert path in seven.stdout, seven.stdout

    torito = subprocess.run(["xorriso", "-indev", str(windows_iso), "-report_el_torito", "plain"],
                            capture_output=True, text=True, check=True)
    boot = re.search(r"El Torito boot img :\s+1\s+(\S+)\s+y\s+none", torito.stdout)
    assert boot and boot.group(1) == "UEFI", torito.stdout

    from winarm.media.iso import inspect_iso

    info = inspect_iso(windows_iso)
    assert info.arch == "arm64" and info.image == "sources/install.wim"
    assert [(e.index, e.name, e.build, e.arch) for e in info.editions] == [
        (1, "Windows 11 Home", "26100", "arm64"), (2, "Windows 11 Pro", "26100", "arm64")]


def test_testbed_is_cached_and_keyed_by_padding(windows_iso: Path) -> None:
    from winarm_testbed.windows_iso import build_windows_testbed

    built_at = windows_iso.stat().st_mtime_ns
    said: list[str] = []
    again = build_windows_testbed(cache_dir(), log=said.append)
    assert again == windows_iso and windows_iso.stat().st_mtime_ns == built_at, "reused, not written again"
    assert not any("building" in line for line in said), said
    padded = build_windows_testbed(cache_dir(), log=lambda line: None, wim_padding=3 << 30)
    assert padded != windows_iso
    from winarm.media.iso import inspect_iso

    assert len(inspect_iso(padded).editions) == 2
    assert padded.stat().st_size > 3 << 30 and padded.stat().st_blocks * 512 < 1 << 30, "written sparsely"
    shutil.rmtree(padded.parent)


def test_testbed_totalbytes_is_what_the_guest_applies(windows_iso: Path) -> None:
    """The guest's windowsPE apply writes the seed, then the whole install.wim after it (init.sh apply_seed and
    apply_wim): each edition's TOTALBYTES must be exactly those bytes, so the progress measured is the truth."""
    import pycdlib

    from winarm.media.iso import inspect_iso
    from winarm_testbed.windows_iso import SEED_PATH, WIM_MIB

    iso = pycdlib.PyCdlib()
    iso.open(str(windows_iso))
    try:
        sizes = {path: iso.get_record(udf_path=f"/{path}").get_data_length()
                 for path in (SEED_PATH, "sources/install.wim")}
    finally:
        iso.close()
    info = inspect_iso(windows_iso)
    assert info.image_bytes == sizes["sources/install.wim"] == WIM_MIB << 20
    assert sizes[SEED_PATH] % (1 << 20) == 0, "the guest seeks to the seed's end in whole MiB"
    assert [e.total_bytes for e in info.editions] == [sizes[SEED_PATH] + info.image_bytes] * 2
    total = info.editions[0].total_bytes
    assert total is not None and 64 << 20 <= total <= 128 << 20, "enough to follow, little enough for TCG"
