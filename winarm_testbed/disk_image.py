"""The testbed guest's system disk seen from the host: its GPT partitions, read out of the image, and checked
with the host's own ``fsck.fat -n``, reported the way the guest reports its boot-time check (``init.sh``).

Nothing here needs root, loop devices or NBD, and nothing writes to the image: a partition is copied out with
``qemu-img convert`` (the raw driver's offset and size select it). The image must not be in use by a running VM.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winarm.qemu.disk import virtual_size
from winarm_testbed.tools import GuestBuildError

__all__ = ["FsckResult", "Partition", "classify", "fsck_image", "findings", "gpt_problems", "partitions",
           "read_partition"]

SECTOR = 512
_FAT_SIGNATURES = ((54, b"FAT"), (82, b"FAT"))  # FAT12/16, FAT32: the file system type field of the boot sector
_DIRTY = "dirty bit set (not properly unmounted)"
_SKIP = (
    re.compile(r"^fsck\.fat \d"),
    re.compile(r"^Leaving filesystem unchanged"),
    re.compile(r"^\*\*\* Filesystem was changed"),
    re.compile(r"^Writing changes"),
    re.compile(r": \d+ files, \d+/\d+ clusters$"),
    re.compile(r"^ *Automatically removing dirty bit"),
)


@dataclass(frozen=True)
class Partition:
    """One GPT partition: its number (1 for vda1), type GUID, byte offset and length on the disk."""

    number: int
    type_guid: uuid.UUID
    start: int
    size: int

    @property
    def name(self) -> str:
        """The guest's name of the partition (vda1, vda2, ...)."""
        return f"vda{self.number}"


@dataclass(frozen=True)
class FsckResult:
    """The host's ``fsck.fat -n`` of one FAT partition: its exit status and findings (empty when clean)."""

    partition: str
    status: int
    findings: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return self.status == 0


def partitions(disk: Path, image_format: str = "qcow2") -> list[Partition]:
    """The GPT partitions of DISK, in table order. Raises GuestBuildError when it has no GPT or a tool fails."""
    with tempfile.TemporaryDirectory(prefix="winarm-disk-") as tmp:
        head = Path(tmp) / "gpt.img"
        _convert(disk, image_format, head, 0, 34 * SECTOR)
        data = head.read_bytes()
    if data[SECTOR:SECTOR + 8] != b"EFI PART":
        raise GuestBuildError(f"{disk} has no GPT: not an installed testbed disk")
    entries_lba, count, entry_size = struct.unpack_from("<QII", data, SECTOR + 72)
    if entries_lba != 2 or entry_size != 128:
        raise GuestBuildError(f"{disk}: unexpected GPT (entries at LBA {entries_lba}, {entry_size} bytes each)")
    count = min(count, (len(data) - 2 * SECTOR) // entry_size)
    found = []
    for index in range(count):
        entry = data[2 * SECTOR + index * entry_size: 2 * SECTOR + (index + 1) * entry_size]
        type_guid = uuid.UUID(bytes_le=entry[:16])
        first, last = struct.unpack_from("<QQ", entry, 32)
        if type_guid.int == 0 or last < first:
            continue
        found.append(Partition(index + 1, type_guid, first * SECTOR, (last - first + 1) * SECTOR))
    return found


def _header_problems(data: bytes, at: int, lba: int, other: int, what: str) -> list[str]:
    """What is wrong with the GPT header at byte ``at`` of ``data`` (read from LBA ``lba``; the other header
    expected at LBA ``other``): its signature, CRC, own and alternate LBAs."""
    header = bytearray(data[at:at + 92])
    if header[:8] != b"EFI PART":
        return [f"{what} header: no GPT signature at LBA {lba}"]
    problems = []
    stored = struct.unpack_from("<I", header, 16)[0]
    header[16:20] = bytes(4)
    if zlib.crc32(bytes(header)) != stored:
        problems.append(f"{what} header: CRC mismatch")
    mine, alternate = struct.unpack_from("<QQ", header, 24)
    if (mine, alternate) != (lba, other):
        problems.append(f"{what} header: at LBA {mine}, other at {alternate}; expected {lba} and {other}")
    return problems


def _entries_problem(disk: Path, image_format: str, header: bytes, what: str, tmp: Path) -> str | None:
    """The entries array the GPT header ``header`` names, read and checked against its CRC; None when it matches."""
    entries_lba, count, size, stored = struct.unpack_from("<QIII", header, 72)
    out = tmp / f"{what}-entries.img"
    _convert(disk, image_format, out, entries_lba * SECTOR, count * size)
    return None if zlib.crc32(out.read_bytes()) == stored else f"{what} entries: CRC mismatch"


def gpt_problems(disk: Path, image_format: str = "qcow2", size: int | None = None) -> list[str]:
    """What is wrong with DISK's GPT, both copies: headers (signature, CRC, their LBAs: the backup on the
    disk's last LBA, given its SIZE in bytes or read from the image), entry arrays (CRC), and the two disagreeing
    on the partitions or usable range. Empty when the GPT is whole. Raises GuestBuildError when a tool fails."""
    last = (size if size is not None else virtual_size(disk, image_format)) // SECTOR - 1
    with tempfile.TemporaryDirectory(prefix="winarm-gpt-") as tmp:
        primary_file, backup_file = Path(tmp) / "primary.img", Path(tmp) / "backup.img"
        _convert(disk, image_format, primary_file, SECTOR, SECTOR)
        _convert(disk, image_format, backup_file, last * SECTOR, SECTOR)
        primary, backup = primary_file.read_bytes(), backup_file.read_bytes()
        problems = _header_problems(primary, 0, 1, last, "primary") + _header_problems(backup, 0, last, 1, "backup")
        if problems:
            return problems
        for header, what in ((primary, "primary"), (backup, "backup")):
            problem = _entries_problem(disk, image_format, header, what, Path(tmp))
            if problem is not None:
                problems.append(problem)
    if primary[40:56] != backup[40:56] or primary[80:92] != backup[80:92]:
        problems.append("the primary and backup headers disagree on the usable LBAs or the entries")
    return problems


def read_partition(disk: Path, part: Partition, out: Path, image_format: str = "qcow2") -> None:
    """Copy PART of DISK to the raw file OUT. Raises GuestBuildError when qemu-img fails."""
    _convert(disk, image_format, out, part.start, part.size)


def fsck_image(disk: Path, image_format: str = "qcow2") -> list[FsckResult]:
    """``fsck.fat -n`` (the host's) of every FAT partition of DISK, in table order.

    Raises GuestBuildError when the disk cannot be read or fsck.fat is missing or cannot check (status 2+).
    """
    results = []
    with tempfile.TemporaryDirectory(prefix="winarm-fsck-") as tmp:
        for part in partitions(disk, image_format):
            raw = Path(tmp) / f"{part.name}.img"
            read_partition(disk, part, raw, image_format)
            with raw.open("rb") as handle:
                boot = handle.read(SECTOR)
            if not any(boot[at:at + len(sig)] == sig for at, sig in _FAT_SIGNATURES):
                raw.unlink()
                continue
            try:
                proc = subprocess.run(["fsck.fat", "-n", str(raw)], capture_output=True, text=True,
                                      stdin=subprocess.DEVNULL, check=False,
                                      env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
                                           "LC_ALL": "C"})  # names converted as in the guest (C locale)
            except FileNotFoundError:
                raise GuestBuildError("fsck.fat not found: apt-get install dosfstools") from None
            raw.unlink()
            if proc.returncode >= 2:
                last = (proc.stderr or proc.stdout).strip().splitlines()
                raise GuestBuildError(f"fsck.fat of {part.name} failed (status {proc.returncode}): "
                                      f"{last[-1] if last else ''}")
            results.append(FsckResult(part.name, proc.returncode, tuple(findings(proc.stdout + proc.stderr))))
    return results


def findings(output: str) -> list[str]:
    """What fsck.fat printed, as the guest reports it (``fsck_findings`` in init.sh): one entry a line,
    without its banner, the closing counts and its notes on what it did; the dirty-bit warning shortened."""
    out = []
    for raw in output.splitlines():
        if any(p.search(raw) for p in _SKIP):
            continue
        line = raw.strip()
        if not line:
            continue
        if line.startswith("Dirty bit is set."):
            line = _DIRTY
        out.append(line)
    return out


def classify(finding: str) -> str:
    """The kind of one fsck.fat finding, as far as a crash of a FAT file system explains it:

    - ``dirty-bit``: the volume was mounted read-write (Linux sets the bit at mount, clears it at unmount);
    - ``lost-clusters``: clusters allocated in the FAT that no file owns (the FAT written, the directory
      entry not), or the free-cluster count of FAT32's FSINFO out of date;
    - ``fat-copies-differ``: the two FAT copies disagree (one was written, the other not yet);
    - ``size-vs-chain``: a file's size and its cluster chain disagree (one of the two was written);
    - ``dir-unwritten``: a new directory's entry is in its parent but its first cluster does not hold its
      ``.`` and ``..`` entries (the parent written, the new cluster not);
    - ``path``: a file name that the next finding is about;
    - ``other``: anything else (cross-linked files, broken directories, a broken boot sector: what a crash
      of FAT's own writes cannot explain).
    """
    text = finding.lower()
    return next((kind for kind, matches in _KINDS if matches(finding, text)), "other")


_KINDS: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("dirty-bit", lambda finding, text: finding == _DIRTY or text.startswith("dirty bit")),
    ("path", lambda finding, text: finding.startswith("/") and " " not in finding),
    ("lost-clusters", lambda finding, text: "reclaimed" in text and "unused cluster" in text
                                           or "free cluster summary" in text),
    ("fat-copies-differ", lambda finding, text: "fats differ" in text),
    ("size-vs-chain", lambda finding, text: ("file size is" in text and "cluster chain length" in text)
                                           or text.startswith("truncating file")
                                           or "contains a free cluster" in text or "assuming eof" in text),
    ("dir-unwritten", lambda finding, text: text.startswith("expected a valid '.") and "entry in the" in text),
)
"""The kinds of :func:`classify` in the order they are tried: each with a test of the finding and of its lower
case text."""


def _convert(disk: Path, image_format: str, out: Path, start: int, size: int) -> None:
    """Copy SIZE bytes from byte START of DISK (as the guest sees it) to the raw file OUT, through the raw
    driver's offset and size (``qemu-img dd`` takes its count as an end block in QEMU 7.2)."""
    name = str(disk).replace(",", ",,")
    opts = f"driver=raw,offset={start},size={size},file.driver={image_format},file.file.filename={name}"
    run_tool(["qemu-img", "convert", "-O", "raw", "--image-opts", opts, str(out)])


def run_tool(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run ARGV; raise GuestBuildError with its last line of error output when it fails or is missing."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    except FileNotFoundError:
        package = "mtools" if argv[0].startswith("m") else "qemu-utils"
        raise GuestBuildError(f"{argv[0]} not found: apt-get install {package}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise GuestBuildError(f"{argv[0]} failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
