"""A raised DISK_SIZE grows the image and says so: the size before is known to the launch (an event and a line),
and nothing is said when the image is created or already large enough."""

from __future__ import annotations

from pathlib import Path

from winarm.qemu import disk

MiB = 1024 * 1024


def test_growth_is_the_size_before_a_grow_and_none_otherwise(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    assert disk.growth(image, "qcow2", 64 * MiB) is None, "a disk created now did not grow"
    assert disk.ensure_image(image, "qcow2", 64 * MiB) is True
    assert disk.growth(image, "qcow2", 64 * MiB) is None, "the same size: no growth"
    assert disk.growth(image, "qcow2", 96 * MiB) == 64 * MiB
    assert disk.ensure_image(image, "qcow2", 96 * MiB) is False
    assert disk.virtual_size(image, "qcow2") == 96 * MiB
    assert disk.growth(image, "qcow2", 96 * MiB) is None


def test_growth_of_a_raw_image(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    disk.ensure_image(image, "raw", 64 * MiB)
    assert disk.growth(image, "raw", 128 * MiB) == 64 * MiB


def test_the_line_names_both_sizes_and_what_windows_does() -> None:
    line = disk.grown_line(1024 * MiB, 1536 * MiB)
    assert line.startswith("disk grown from 1G to 1536M: C: is extended over it at Windows' next start")
    assert "WinarmExtendC" in line
