"""Asking the installed testbed guest for its write load: a file on the disk's "Windows" partition.

At each boot from an installed disk the testbed guest (``init.sh``) looks for ``C:\\Windows\\winarm-write-load.txt``
on its "Windows" partition (the second GPT partition, FAT); when it is there, the guest writes files in a loop
after ``ready`` until the power button (see the header of ``init.sh``), so that a crash test has writes in flight.
No winarm option asks for it: the host writes that file into the disk image while no VM runs.

Nothing here needs root, loop devices or NBD: the partition is read out of the image with ``qemu-img convert``,
changed with mtools, and only the 64 KiB blocks that changed are written back with ``qemu-io``, so the image
is touched where FAT would touch it (and QEMU's image lock refuses while a VM has the image open).
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import uuid
from pathlib import Path

from .guest import GuestBuildError

__all__ = ["REQUEST_PATH", "set_write_load", "write_load_requested"]

REQUEST_PATH = "Windows/winarm-write-load.txt"
"""The request's path on the "Windows" partition (init.sh knows it)."""
REQUEST_TEXT = b"winarm testbed: write files after ready until the power button (crash tests)\r\n"
_SECTOR = 512
_BLOCK = 64 * 1024
_BASIC_DATA = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B99B26C7C7")


def set_write_load(disk: Path, enabled: bool = True, *, image_format: str = "qcow2") -> None:
    """Put the write-load request on DISK's "Windows" partition (``enabled``) or take it away.

    DISK must not be in use by a running VM. Raises GuestBuildError (one line) when the disk has no
    "Windows" partition (the second GPT partition, Microsoft basic data) or a tool fails.
    """
    with tempfile.TemporaryDirectory(prefix="winarm-write-load-") as tmp:
        work = Path(tmp)
        start, size = _windows_partition(disk, image_format, work)
        before = work / "partition.img"
        _dd(disk, image_format, before, start, size)
        after = work / "changed.img"
        after.write_bytes(before.read_bytes())
        env = {"MTOOLS_SKIP_CHECK": "1"}
        if enabled:
            request = work / "request.txt"
            request.write_bytes(REQUEST_TEXT)
            _tool(["mcopy", "-o", "-i", str(after), str(request), f"::/{REQUEST_PATH}"], env)
        elif _exists(after, env):
            _tool(["mdel", "-i", str(after), f"::/{REQUEST_PATH}"], env)
        _write_back(disk, image_format, before, after, start, work)


def write_load_requested(disk: Path, *, image_format: str = "qcow2") -> bool:
    """True when DISK's "Windows" partition holds the write-load request. Raises GuestBuildError like
    :func:`set_write_load`."""
    with tempfile.TemporaryDirectory(prefix="winarm-write-load-") as tmp:
        work = Path(tmp)
        start, size = _windows_partition(disk, image_format, work)
        part = work / "partition.img"
        _dd(disk, image_format, part, start, size)
        return _exists(part, {"MTOOLS_SKIP_CHECK": "1"})


def _exists(image: Path, env: dict[str, str]) -> bool:
    """True when the FAT IMAGE holds REQUEST_PATH."""
    folder, name = REQUEST_PATH.rsplit("/", 1)
    listing = subprocess.run(["mdir", "-b", "-i", str(image), f"::/{folder}"], capture_output=True, text=True,
                             env=_env(env), check=False)
    return any(line.rstrip().lower().endswith("/" + name.lower()) for line in listing.stdout.splitlines())


def _windows_partition(disk: Path, image_format: str, work: Path) -> tuple[int, int]:
    """Byte offset and length of the second GPT partition of DISK, which must be Microsoft basic data."""
    head = work / "gpt.img"
    _dd(disk, image_format, head, 0, 34 * _SECTOR)
    data = head.read_bytes()
    if data[_SECTOR:_SECTOR + 8] != b"EFI PART":
        raise GuestBuildError(f"{disk} has no GPT: not an installed testbed disk")
    entries_lba, count, entry_size = struct.unpack_from("<QII", data, _SECTOR + 72)
    if count < 2 or entries_lba != 2:
        raise GuestBuildError(f"{disk}: unexpected GPT (entries at LBA {entries_lba}, {count} of them)")
    entry = data[2 * _SECTOR + entry_size: 2 * _SECTOR + 2 * entry_size]
    first, last = struct.unpack_from("<QQ", entry, 32)
    if uuid.UUID(bytes_le=entry[:16]) != _BASIC_DATA or last < first:
        raise GuestBuildError(f"{disk}: its second partition is not the \"Windows\" partition (basic data)")
    return first * _SECTOR, (last - first + 1) * _SECTOR


def _dd(disk: Path, image_format: str, out: Path, start: int, size: int) -> None:
    """Copy SIZE bytes from byte START of DISK (as the guest sees it) to the raw file OUT (through the raw
    driver's offset and size: ``qemu-img dd`` takes its count as an end block in QEMU 7.2)."""
    name = str(disk).replace(",", ",,")
    opts = f"driver=raw,offset={start},size={size},file.driver={image_format},file.file.filename={name}"
    _tool(["qemu-img", "convert", "-O", "raw", "--image-opts", opts, str(out)])


def _write_back(disk: Path, image_format: str, before: Path, after: Path, start: int, work: Path) -> None:
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
        _tool(["qemu-io", "-f", image_format, *commands, str(disk)])


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


def _tool(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run ARGV; raise GuestBuildError with its last line of error output when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=_env(env or {}), check=False)
    except FileNotFoundError:
        package = "mtools" if argv[0].startswith("m") else "qemu-utils"
        raise GuestBuildError(f"{argv[0]} not found: apt-get install {package}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise GuestBuildError(f"{argv[0]} failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
