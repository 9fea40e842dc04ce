"""The driver folders of a virtio-win ISO, extracted once per ISO under the storage and pruned (issue 14: each
``--drivers`` ISO was extracted into a new temporary folder that was never removed). A real ISO made here."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pycdlib
import pytest

from winarm.media import driver_cache
from winarm.media.driver_cache import CACHE_FOLDER, KEEP_DAYS, cached_tree, prune
from winarm.media.drivers import extract_iso_tree


def virtio_iso(path: Path, text: bytes = b"[Version]\r\n") -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(joliet=3)
    for level in ("/VIOSTOR", "/VIOSTOR/W11", "/VIOSTOR/W11/ARM64"):
        iso.add_directory(level, joliet_path=level.lower().replace("arm64", "ARM64"))
    iso.add_fp(io.BytesIO(text), len(text), "/VIOSTOR/W11/ARM64/VIOSTOR.INF;1",
               joliet_path="/viostor/w11/ARM64/viostor.inf")
    iso.write(str(path))
    iso.close()
    return path


def test_an_iso_is_extracted_once_under_the_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iso = virtio_iso(tmp_path / "virtio-win.iso")
    calls: list[Path] = []

    def counting(src: Path, dest: Path) -> Path:
        calls.append(dest)
        return extract_iso_tree(src, dest)

    monkeypatch.setattr(driver_cache, "extract_iso_tree", counting)
    first = cached_tree(iso, tmp_path / "storage")
    assert first.parent == tmp_path / "storage" / CACHE_FOLDER
    assert (first / "viostor" / "w11" / "ARM64" / "viostor.inf").read_bytes() == b"[Version]\r\n"
    assert cached_tree(iso, tmp_path / "storage") == first and len(calls) == 1, "reused, not extracted again"
    assert [p.name for p in first.parent.iterdir()] == [first.name], "no extraction folder left"
    os.utime(iso, (time.time() + 60, time.time() + 60))  # the ISO changed: a new tree
    second = cached_tree(iso, tmp_path / "storage")
    assert second != first and len(calls) == 2


def test_old_trees_and_crashed_extractions_are_pruned(tmp_path: Path) -> None:
    root = tmp_path / CACHE_FOLDER
    keep, old, crashed, fresh = (root / n for n in ("virtio-keep", "virtio-old", ".extracting-x", "virtio-fresh"))
    for folder in (keep, old, crashed, fresh):
        folder.mkdir(parents=True)
    now = time.time()
    long_ago = now - (KEEP_DAYS + 1) * 86400
    for folder in (keep, old, crashed):
        os.utime(folder, (long_ago, long_ago))
    assert sorted(p.name for p in prune(root, keep=keep, now=now)) == [".extracting-x", "virtio-old"]
    assert sorted(p.name for p in root.iterdir()) == ["virtio-fresh", "virtio-keep"]


def test_a_file_that_is_no_iso_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "virtio-win.iso"
    bad.write_bytes(b"not an iso" * 100)
    with pytest.raises(Exception, match="is not a readable ISO"):
        cached_tree(bad, tmp_path / "storage")
    assert list((tmp_path / "storage" / CACHE_FOLDER).iterdir()) == []
