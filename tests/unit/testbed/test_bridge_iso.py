"""The Windows-shaped ISO writer's options and its atomic write (the ISO's contents are read back in
tests/unit/media/test_inspect.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from winarm.media.wim import HEADER_SIZE, parse_header
from winarm_testbed.wim_image import BridgeIso, build_bridge_iso
from winarm_testbed.wim_writer import WritableWimHeader, wim_bytes


def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="arch 'sparc' is not one of arm64, x64, x86, arm or a number"):
        build_bridge_iso(tmp_path / "a.iso", arch="sparc")
    with pytest.raises(ValueError, match="hide_boot_image needs the bridge layout"):
        build_bridge_iso(tmp_path / "b.iso", layout="joliet", hide_boot_image=True)
    assert list(tmp_path.iterdir()) == []
    assert BridgeIso(arch="6").files().keys() == {"boot/bcd"}, "a numbered arch has no default boot loader"
    assert "efi/boot/bootaa64.efi" in BridgeIso().files()


def test_a_failed_write_leaves_neither_the_iso_nor_scratch_files(tmp_path: Path) -> None:
    out = tmp_path / "media" / "w.iso"
    build_bridge_iso(out, volume_id="FIRST")
    before = out.read_bytes()
    with pytest.raises(FileNotFoundError):
        build_bridge_iso(out, efi_boot_image=tmp_path / "missing.img", volume_id="SECOND")
    assert out.read_bytes() == before, "the earlier ISO is untouched"
    assert [p.name for p in out.parent.iterdir()] == ["w.iso"]


def test_a_written_header_reads_back() -> None:
    wim = wim_bytes(["Windows 11 Pro"], padding=100)
    header = parse_header(wim[:HEADER_SIZE], len(wim))
    rewritten = WritableWimHeader(**{f: getattr(header, f) for f in header.__dataclass_fields__})
    assert rewritten.pack() == wim[:HEADER_SIZE]
    assert header.xml_data.offset == HEADER_SIZE + 100
