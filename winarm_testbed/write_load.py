"""Asking the installed testbed guest for its write load: a file on the disk's "Windows" partition.

At each boot from an installed disk the testbed guest (``init.sh``) looks for ``C:\\Windows\\winarm-write-load.txt``
on its "Windows" partition (the second GPT partition, FAT); when it is there, the guest writes files in a loop
after ``ready`` until the power button (see the header of ``init.sh``), so that a crash test has writes in flight.
No winarm option asks for it: the host writes that file into the disk image while no VM runs.

Nothing here needs root, loop devices or NBD: the partition is copied out of the image (``qemu-img convert``),
changed with mtools, and only the 64 KiB blocks that changed are written back with ``qemu-io``, so the image is
touched only where FAT changed (and QEMU's image lock refuses while a VM has the image open).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

from winarm_testbed.disk_image import Partition, partitions, read_partition, run_tool
from winarm_testbed.tools import GuestBuildError

__all__ = ["REQUEST_PATH", "set_write_load", "write_load_requested"]

REQUEST_PATH = "Windows/winarm-write-load.txt"
"""The request's path on the "Windows" partition (init.sh knows it)."""
REQUEST_TEXT = b"winarm testbed: write files after ready until the power button (crash tests)\r\n"
_BLOCK = 64 * 1024
_BASIC_DATA = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B99B26C7C7")
_MTOOLS = {"MTOOLS_SKIP_CHECK": "1"}


def set_write_load(disk: Path, enabled: bool = True, *, image_format: str = "qcow2") -> None:
    """Put the write-load request on DISK's "Windows" partition (``enabled``) or take it away.

    DISK must not be in use by a running VM. Raises GuestBuildError (one line) when the disk has no
    "Windows" partition (the second GPT partition, Microsoft basic data) or a tool fails.
    """
    part = _windows_partition(disk, image_format)
    with tempfile.TemporaryDirectory(prefix="winarm-write-load-") as tmp:
        work = Path(tmp)
        before = work / "partition.img"
        read_partition(disk, part, before, image_format)
        after = work / "changed.img"
        after.write_bytes(before.read_bytes())
        if enabled:
            request = work / "request.txt"
            request.write_bytes(REQUEST_TEXT)
            run_tool(["mcopy", "-o", "-i", str(after), str(request), f"::/{REQUEST_PATH}"], _MTOOLS)
        elif _exists(after):
            run_tool(["mdel", "-i", str(after), f"::/{REQUEST_PATH}"], _MTOOLS)
        _write_back(disk, image_format, before, after, start=part.start, work=work)


def write_load_requested(disk: Path, *, image_format: str = "qcow2") -> bool:
    """True when DISK's "Windows" partition holds the write-load request. Raises GuestBuildError like
    :func:`set_write_load`."""
    part = _windows_partition(disk, image_format)
    with tempfile.TemporaryDirectory(prefix="winarm-write-load-") as tmp:
        raw = Path(tmp) / "partition.img"
        read_partition(disk, part, raw, image_format)
        return _exists(raw)


def _windows_partition(disk: Path, image_format: str) -> Partition:
    """The second GPT partition of DISK, which must be Microsoft basic data (the "Windows" partition)."""
    parts = [p for p in partitions(disk, image_format) if p.number == 2]
    if not parts or parts[0].type_guid != _BASIC_DATA:
        raise GuestBuildError(f"{disk}: no \"Windows\" partition (a second, basic data partition)")
    return parts[0]


def _exists(image: Path) -> bool:
    """True when the FAT IMAGE holds REQUEST_PATH."""
    folder, name = REQUEST_PATH.rsplit("/", 1)
    listing = subprocess.run(["mdir", "-b", "-i", str(image), f"::/{folder}"], capture_output=True, text=True,
                             env={**os.environ, **_MTOOLS}, check=False)
    return any(line.rstrip().lower().endswith("/" + name.lower()) for line in listing.stdout.splitlines())


def _write_back(disk: Path, image_format: str, before: Path, after: Path, *, start: int, work: Path) -> None:
    """Write the 64 KiB blocks in which AFTER differs from BEFORE to DISK at byte START + their offset."""
    commands: list[str] = []
    with before.open("rb") as old, after.open("rb") as new:
        offset = 0
        while True:
            a, b = old.read(_BLOCK), new.read(_BLOCK)
            if not b:
                break
            if a != b:
                chunk = work / f"block-{offset}.bin"
                chunk.write_bytes(b)
                commands += ["-c", f"write -q -s {chunk} {start + offset} {len(b)}"]
            offset += len(b)
    if commands:
        run_tool(["qemu-io", "-f", image_format, *commands, str(disk)])
