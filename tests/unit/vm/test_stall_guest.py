"""The test guest's hang option, which the stall watch's system test freezes Setup with: a separate cached ISO
that holds ``sources/winarm-hang`` (the guest's reaction is tested under QEMU in tests/system/test_stall.py)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cache_dir


def udf_sources(iso_path: Path) -> set[str]:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        return {c.file_identifier().decode() for c in iso.list_children(udf_path="/sources") if c is not None}
    finally:
        iso.close()


def test_the_hang_option_is_a_separate_iso_with_the_hang_file() -> None:
    from winarm_testbed.windows_iso import HANG_PATH, build_windows_testbed

    plain = build_windows_testbed(cache_dir(), log=lambda line: None)
    hang = build_windows_testbed(cache_dir(), log=lambda line: None, hang=True)
    assert hang != plain and hang.parent != plain.parent, "cached apart: the plain ISO is never the hanging one"
    assert HANG_PATH == "sources/winarm-hang"
    assert "winarm-hang" in udf_sources(hang)
    assert "winarm-hang" not in udf_sources(plain)
    assert {"install.wim", "winarm-seed.img"} <= udf_sources(hang), "otherwise the same medium"
    said: list[str] = []
    assert build_windows_testbed(cache_dir(), log=said.append, hang=True) == hang and not any(
        "building" in line for line in said), "reused from the cache"
