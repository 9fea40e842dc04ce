"""Builder of the winarm test guest: a small real arm64 Linux, as a bootable ISO, from Debian packages.

The ISO boots a standalone GRUB from its El Torito EFI image (``efi.img``, also visible in the ISO tree).
Loaded from the CD, GRUB prints ``Press any key to boot from CD or DVD``: on a key it boots Linux with
``winarm.boot=cd``, which copies ``seed.img`` (a GPT disk image whose EFI System Partition is the same
FAT image) onto the virtio-blk disk and reboots; with no key GRUB exits back to the firmware. Loaded from
the disk, GRUB boots Linux with ``winarm.boot=disk`` at once, which checks its FAT file systems (fsck.fat
from dosfstools), waits for the ACPI power button and powers off. ``init.sh`` prints a line
``WINARM-PHASE <name>`` on the serial console at each step.

Nothing here needs root or loop devices: the cpio archive is written in Python, the FAT image with
mtools, the partition table with sfdisk on a plain file. This module puts the build together and keys its
cache; the steps live beside it: ``packages`` (apt resolution, download), ``initramfs`` (with ``cpio`` and
``elf``), ``images`` (FAT, GPT seed) and ``tools`` (host tools, the lock, :class:`GuestBuildError`).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from winarm.errors import UserError
from winarm_testbed.images import make_fat, make_seed
from winarm_testbed.initramfs import guest_scripts, write_initramfs
from winarm_testbed.packages import Package, download, resolve_packages
from winarm_testbed.tools import GuestBuildError, check_tools, locked, run

__all__ = ["EFI_IMAGE_NAME", "ISO_NAME", "build_guest", "build_guest_efi_image", "cache_key", "guest_inputs"]

ISO_NAME = "winarm-testguest.iso"
EFI_IMAGE_NAME = "efi.img"

_HERE = Path(__file__).resolve().parent
_GRUB_CFG = _HERE / "grub.cfg"
_BUILDER_MODULES = ("guest.py", "packages.py", "initramfs.py", "cpio.py", "elf.py", "images.py", "tools.py")
"""The modules whose code makes the guest's bytes (the cache key hashes them with the guest's own files)."""
_MIB = 1024 * 1024


def build_guest(cache_dir: Path, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Build (or reuse from cache) the test guest ISO and return its path.

    Idempotent: a second call with the same inputs (package versions in the apt lists and the files of
    :func:`guest_inputs`) returns the cached ISO in milliseconds without rebuilding. ``force``
    rebuilds anyway (downloaded .debs are still reused). The ISO is moved into place last, by a rename, at
    ``cache_dir/guest-<key>/winarm-testguest.iso``; concurrent builders serialise on a lock.

    Raises GuestBuildError (one line) when a host tool is missing, the arm64 packages are not in the
    apt lists, a download or tool fails, or the cache directory cannot be written.
    """
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        packages = resolve_packages(cache_dir)
        iso = cache_dir / f"guest-{cache_key(packages, guest_inputs())}" / ISO_NAME
        if iso.is_file() and not force:
            return iso
        check_tools()
        with locked(cache_dir / ".lock"):
            if iso.is_file() and not force:
                return iso
            started = time.monotonic()
            log(f"testguest: building {iso} ({', '.join(f'{p.name} {p.version}' for p in packages)})")
            _build(cache_dir, packages, iso, log)
            log(f"testguest: built {iso.name} ({iso.stat().st_size // _MIB} MiB) "
                f"in {time.monotonic() - started:.1f} s")
            return iso
    except (OSError, UserError) as exc:
        raise GuestBuildError(f"cannot build the test guest in {cache_dir}: {exc}") from exc


def build_guest_efi_image(cache_dir: Path, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Build (or reuse) the test guest and return its EFI boot image: the FAT image holding GRUB, the kernel
    and the initramfs at ``/EFI/BOOT/BOOTAA64.EFI``, the same bytes as the guest ISO's El Torito image.

    The image is kept beside the ISO (``cache_dir/guest-<key>/efi.img``) and shares its cache key, so it
    changes whenever the guest does; callers must treat it as read-only. Raises GuestBuildError like
    build_guest.
    """
    iso = build_guest(cache_dir, force=force, log=log)
    image = iso.parent / EFI_IMAGE_NAME
    if not image.is_file():  # a cache entry written before the image was kept: build it again
        iso = build_guest(cache_dir, force=True, log=log)
        image = iso.parent / EFI_IMAGE_NAME
        if not image.is_file():
            raise GuestBuildError(f"the guest build left no {image}")
    return image


def guest_inputs() -> list[Path]:
    """Every file of this package the guest is made from: what runs in the guest (init.sh and its awk
    programs), grub.cfg, and the modules that build it. The cache key hashes them all."""
    return [*guest_scripts(), _GRUB_CFG, *(_HERE / name for name in _BUILDER_MODULES)]


def cache_key(packages: Sequence[Package], inputs: Sequence[Path]) -> str:
    """Short hash of the package versions and of the names and bytes of the files INPUTS.

    Raises OSError when an input cannot be read.
    """
    digest = hashlib.sha256()
    for pkg in packages:
        digest.update(f"{pkg.name}={pkg.version}\n".encode())
    for path in inputs:
        data = path.read_bytes()
        digest.update(f"{path.name}:{len(data)}\n".encode() + data)
    return digest.hexdigest()[:12]


def _build(cache_dir: Path, packages: Sequence[Package], iso: Path, log: Callable[[str], None]) -> None:
    """Build the whole guest in a scratch directory under cache_dir, then move the EFI image and the ISO
    (last: it marks the cache entry complete) into ISO's folder.

    Raises GuestBuildError on any failing step, OSError from the file system.
    """
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache_dir) as tmp:
        work = Path(tmp)
        root = work / "extract"
        for deb in download(cache_dir / "debs", packages, log):
            run(["dpkg", "-x", str(deb), str(root)])
        kernel_pkg = next(p.name for p in packages if p.name.startswith("linux-image-"))
        kver = kernel_pkg.removeprefix("linux-image-")
        vmlinuz = root / "boot" / f"vmlinuz-{kver}"
        if not vmlinuz.is_file():
            raise GuestBuildError(f"{kernel_pkg} has no /boot/vmlinuz-{kver}")

        log("testguest: initramfs")
        initrd = work / "initrd.gz"
        write_initramfs(root, kver, work / "initroot", initrd)

        log("testguest: GRUB, EFI image, seed disk, ISO")
        efi_binary = _grub(root, kver, vmlinuz, initrd, work)
        stage = work / "iso"
        stage.mkdir()
        make_fat(efi_binary, stage / EFI_IMAGE_NAME)
        make_seed(stage / EFI_IMAGE_NAME, stage / "seed.img")
        built = work / ISO_NAME
        run(["xorriso", "-as", "mkisofs", "-o", str(built), "-V", "WINARM_TESTGUEST", "-r", "-J",
             "-e", EFI_IMAGE_NAME, "-no-emul-boot", str(stage)])
        # The EFI image is kept beside the ISO (build_guest_efi_image); both renames stay on cache_dir's
        # file system, and the ISO's comes last.
        iso.parent.mkdir(parents=True, exist_ok=True)
        (stage / EFI_IMAGE_NAME).replace(iso.parent / EFI_IMAGE_NAME)
        built.replace(iso)


def _grub(root: Path, kver: str, vmlinuz: Path, initrd: Path, work: Path) -> Path:
    """Write a standalone GRUB for arm64 EFI (grub.cfg, the kernel and INITRD in its memdisk) into WORK and
    return its path. Raises GuestBuildError when grub-mkstandalone fails."""
    grub_cfg = work / "grub.cfg"
    grub_cfg.write_text(_render(_GRUB_CFG.read_text(), {"KERNEL_VERSION": kver}))
    efi_binary = work / "BOOTAA64.EFI"
    run(["grub-mkstandalone", "-O", "arm64-efi", "-d", str(root / "usr/lib/grub/arm64-efi"),
         "-o", str(efi_binary), "--locales=", "--fonts=", "--themes=",
         f"boot/grub/grub.cfg={grub_cfg}", f"boot/vmlinuz={vmlinuz}", f"boot/initrd.gz={initrd}"])
    return efi_binary


def _render(template: str, values: Mapping[str, str]) -> str:
    """Replace each @NAME@ in TEMPLATE by values[NAME]; raise GuestBuildError on an unknown name."""
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise GuestBuildError(f"unknown placeholder @{name}@ in a testbed template")
        return values[name]
    return re.sub(r"@([A-Z_]+)@", sub, template)
