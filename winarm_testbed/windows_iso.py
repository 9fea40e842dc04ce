"""The Windows-shaped test ISO: the test guest dressed as Windows 11 for ARM64 install media.

Laid out like Microsoft's media (a "UDF bridge"): the ISO 9660 tree holds only ``README.TXT``, the real
tree is UDF:
```
efi/boot/bootaa64.efi              the guest's standalone GRUB (kernel and initramfs in its memdisk)
efi/microsoft/boot/efisys.bin      the El Torito EFI boot image (the guest's FAT image, same bytes)
boot/bcd                           a placeholder
sources/install.wim                a valid WIM header and XML: ARM64, build 26100, two editions; filler between
sources/winarm-seed.img            what the guest "applies": a GPT disk image, ESP + a FAT "Windows" partition
sources/winarm-hang                only with ``hang``: the guest stops at the top of windowsPE (tests of the
                                   stall watch)
efi/boot/winarm-drop-key           only with ``drop_key``: the CD's loader (GRUB, which reads the CD's UDF tree)
                                   drops the first key pressed at its prompt (tests of the retried key)
efi/boot/winarm-deaf-prompt        only with ``deaf_prompt``: the CD's loader takes no key at its prompt and goes
                                   back to the firmware (tests of the retried CD boot)
```
The guest's apply (windowsPE) writes the seed onto the disk, then the whole ``install.wim`` right after it (into
the Windows partition's free space): each edition's ``TOTALBYTES`` in the WIM XML is exactly those bytes, the
seed's size plus the WIM's, as a real edition's ``TOTALBYTES`` is about what Setup's apply writes. The WIM is
:data:`WIM_MIB` MiB of pseudo-random filler (not zeros, which QEMU would turn into zero writes), so the apply
takes a few seconds under TCG and its progress is seen rising.
The El Torito entry (platform EFI, no emulation) boots the guest's FAT image, as on the plain guest ISO, so
AAVMF boots it from a USB CD the same way. The image (about 40 MiB: the kernel is stored uncompressed) is
larger than the 32 MiB an El Torito entry can count: like xorriso, the entry then records a load size of 0,
which EDK2 reads as "to the end of the medium"; the FAT file system knows its own size.

With an answer medium (``Autounattend.xml``) attached, the guest plays Windows Setup's passes; see
``init.sh``. Nothing here needs root: pycdlib writes the ISO, mtools reads the FAT image.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from winarm_testbed.guest import build_guest_efi_image
from winarm_testbed.images import make_seed
from winarm_testbed.tools import GuestBuildError, locked, run
from winarm_testbed.wim_image import build_bridge_iso

__all__ = ["BUILD", "DEAF_PROMPT_PATH", "DROP_KEY_PATH", "EDITIONS", "HANG_PATH", "ISO_MODULES", "ISO_NAME",
           "SEED_PATH", "build_windows_testbed"]

ISO_NAME = "winarm-windows-testbed.iso"
EDITIONS = ("Windows 11 Home", "Windows 11 Pro")
BUILD = "26100"
SEED_PATH = "sources/winarm-seed.img"
"""Where the guest finds the image it applies (read from the UDF tree; init.sh knows this path)."""
HANG_PATH = "sources/winarm-hang"
"""With this file on the medium the guest prints ``WINARM-EVENT hang`` at the top of windowsPE and then does
nothing more: no disk I/O, no output, the screen unchanged (init.sh knows this path)."""
DROP_KEY_PATH = "efi/boot/winarm-drop-key"
"""With this file on the CD (grub.cfg looks for it) the CD's prompt drops the first key: a lost key press."""
DEAF_PROMPT_PATH = "efi/boot/winarm-deaf-prompt"
"""With this file on the CD the CD's prompt takes no key and its loader goes back to the firmware: a CD that never
boots."""
ISO_MODULES = ("windows_iso.py", "wim_writer.py", "wim_image.py", "images.py")
"""The modules of this package that turn the guest into the Windows-shaped ISO (its cache key hashes them)."""
DATA_MIB = 128
"""Size of the seed's "Windows" partition; the system disk must be at least this plus about 42 MiB."""
WIM_MIB = 80
"""The size of ``install.wim`` (without ``wim_padding``): what the apply reads from the ISO and writes to the
disk after the seed, inside the Windows partition."""
_MIB = 1024 * 1024
VOLUME_ID = "CCCOMA_A64FRE_EN-US_DV9"
README = (
    b"This disc contains a \"UDF\" file system and requires an operating system\r\n"
    b"that supports the ISO-13346 \"UDF\" file system specification.\r\n"
    b"(winarm test media: the winarm test guest dressed as Windows 11 for ARM64.)\r\n"
)


def build_windows_testbed(
    cache_dir: Path,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
    wim_padding: int = 0,
    hang: bool = False,
    drop_key: bool = False,
    deaf_prompt: bool = False,
) -> Path:
    """Build (or reuse from cache) the Windows-shaped test ISO and return its path.

    Built from the test guest (``build_guest_efi_image``, itself cached), into
    ``cache_dir/windows-<key>/winarm-windows-testbed.iso`` where the key hashes the guest build, this module,
    the WIM writer and ``wim_padding`` (zero bytes before the WIM's XML, to give ``install.wim`` a realistic
    size; the ISO is written sparsely, so the padding costs no disk; the guest cannot apply such an image, which
    no longer fits its Windows partition: it is for reading) and ``hang`` (:data:`HANG_PATH` on the medium: a
    separate ISO whose guest freezes in windowsPE) and ``drop_key`` (:data:`DROP_KEY_PATH`: a separate ISO whose
    CD prompt drops the first key pressed) and ``deaf_prompt`` (:data:`DEAF_PROMPT_PATH`: one whose CD never
    boots). Idempotent and fast on a cache hit;
    ``force`` rebuilds the ISO (not the guest). Written atomically (temp file + rename) under a lock.

    Raises GuestBuildError (one line) when the guest cannot be built, a host tool fails, ``wim_padding``
    is negative, or the cache directory cannot be written.
    """
    if wim_padding < 0:
        raise GuestBuildError(f"wim_padding {wim_padding} is negative")
    cache_dir = Path(cache_dir)
    efi_image = build_guest_efi_image(cache_dir, log=log)
    marks = {path: text for path, text, wanted in (
        (HANG_PATH, b"winarm test: the guest hangs at the top of windowsPE\r\n", hang),
        (DROP_KEY_PATH, b"winarm test: the CD's loader drops the first key pressed at its prompt\r\n", drop_key),
        (DEAF_PROMPT_PATH, b"winarm test: the CD's loader takes no key at its prompt\r\n", deaf_prompt)) if wanted}
    try:
        iso = cache_dir / f"windows-{_cache_key(efi_image, wim_padding, marks)}" / ISO_NAME
        if iso.is_file() and not force:
            return iso
        with locked(cache_dir / ".lock-windows"):
            if iso.is_file() and not force:
                return iso
            started = time.monotonic()
            log(f"testbed: building {iso}")
            _build(efi_image, iso, wim_padding, marks)
            log(f"testbed: built {iso.name} in {time.monotonic() - started:.1f} s")
            return iso
    except (OSError, ValueError) as exc:
        raise GuestBuildError(f"cannot build the Windows test ISO in {cache_dir}: {exc}") from exc


def _cache_key(efi_image: Path, wim_padding: int, marks: dict[str, bytes]) -> str:
    """Short hash of the guest build (its cache directory is named by its own key), of the modules that turn
    it into this ISO (this one, the ISO and WIM writers, the seed disk's, and winarm's WIM reader, whose layout
    the writer packs), pycdlib's version, the padding and the marker files (hang, drop-key, deaf-prompt)."""
    from importlib.metadata import version

    from winarm.media import wim

    digest = hashlib.sha256()
    digest.update(f"{efi_image.parent.name}\npadding={wim_padding}\npycdlib={version('pycdlib')}\n".encode())
    for path in sorted(marks):
        digest.update(f"{path}\n".encode())
    for module_file in (*(Path(__file__).with_name(name) for name in ISO_MODULES), Path(wim.__file__)):
        digest.update(module_file.read_bytes())
    return digest.hexdigest()[:12]


def _build(efi_image: Path, iso: Path, wim_padding: int, marks: dict[str, bytes]) -> None:
    """Write the ISO to ISO from the guest's EFI image (through a temp file and a rename), with the marker files
    ``marks`` (path in the CD's tree: bytes) that change how the guest behaves.

    Raises GuestBuildError when mtools or sfdisk fail, OSError from the file system.
    """
    iso.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=iso.parent) as tmp:
        work = Path(tmp)
        loader = work / "bootaa64.efi"
        run(["mcopy", "-n", "-i", str(efi_image), "::/EFI/BOOT/BOOTAA64.EFI", str(loader)],
             env={"MTOOLS_SKIP_CHECK": "1"})
        seed = work / "seed.img"
        make_seed(efi_image, seed, data_mib=DATA_MIB)
        extra: dict[str, bytes | Path] = {"efi/boot/bootaa64.efi": loader, SEED_PATH: seed, **marks}
        wim_size = wim_padding + WIM_MIB * _MIB
        applied = _applied_bytes(efi_image, seed, wim_size, must_fit=not wim_padding)
        tmp_iso = work / ISO_NAME
        build_bridge_iso(
            tmp_iso,
            editions=EDITIONS,
            build=BUILD,
            arch="arm64",
            wim_padding=wim_padding,
            wim_size=wim_size,
            image_bytes=applied,
            extra_files=extra,
            efi_boot_image=efi_image,
            volume_id=VOLUME_ID,
            readme=README,
            hide_boot_image=True,
        )
        os.replace(tmp_iso, iso)


def _applied_bytes(efi_image: Path, seed: Path, wim_size: int, *, must_fit: bool) -> int:
    """What the guest's apply writes: the seed, then ``install.wim`` (``wim_size`` bytes) from the seed's end,
    in whole MiB (the guest writes with O_DIRECT). Raises GuestBuildError when the seed does not end on a MiB
    or, with ``must_fit``, the WIM would not fit in the Windows partition (which ends after 1 MiB, the ESP and
    DATA_MIB MiB)."""
    seed_size = seed.stat().st_size
    if seed_size % _MIB or wim_size % _MIB:
        raise GuestBuildError(f"the seed ({seed_size} bytes) or install.wim ({wim_size}) is not whole MiB")
    partition_end = _MIB + efi_image.stat().st_size + DATA_MIB * _MIB
    if must_fit and seed_size + wim_size > partition_end:
        raise GuestBuildError(f"install.wim ({wim_size} bytes) does not fit in the seed's Windows partition")
    return seed_size + wim_size
