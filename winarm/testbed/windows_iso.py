"""The Windows-shaped test ISO: the test guest dressed as Windows 11 for ARM64 install media.

Laid out like Microsoft's media (a "UDF bridge"): the ISO 9660 tree holds only ``README.TXT``, the real
tree is UDF:
```
efi/boot/bootaa64.efi              the guest's standalone GRUB (kernel and initramfs in its memdisk)
efi/microsoft/boot/efisys.bin      the El Torito EFI boot image (the guest's FAT image, same bytes)
boot/bcd                           a placeholder
sources/install.wim                a valid WIM header and XML: ARM64, build 26100, two editions
sources/winarm-seed.img            what the guest "applies": a GPT disk image, ESP + a FAT "Windows" partition
```
The El Torito entry (platform EFI, no emulation) boots the guest's FAT image, as on the plain guest ISO, so
AAVMF boots it from a USB CD the same way. The image (about 40 MiB: the kernel is stored uncompressed) is
larger than the 32 MiB an El Torito entry can count: like xorriso, the entry then records a load size of 0,
which EDK2 reads as "to the end of the medium"; the FAT file system knows its own size.

With an answer medium (``Autounattend.xml``) attached, the guest plays Windows Setup's passes; see
``init.sh``. Nothing here needs root: pycdlib writes the ISO, mtools reads the FAT image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..wim import write_wim
from .guest import GuestBuildError, _locked, _run, build_guest_efi_image, make_seed

__all__ = ["BUILD", "EDITIONS", "ISO_NAME", "SEED_PATH", "build_windows_testbed"]

ISO_NAME = "winarm-windows-testbed.iso"
EDITIONS = ("Windows 11 Home", "Windows 11 Pro")
BUILD = "26100"
SEED_PATH = "sources/winarm-seed.img"
"""Where the guest finds the image it applies (read from the UDF tree; init.sh knows this path)."""
DATA_MIB = 128
"""Size of the seed's "Windows" partition; the system disk must be at least this plus about 42 MiB."""
VOLUME_ID = "CCCOMA_A64FRE_EN-US_DV9"
README = (
    b"This disc contains a \"UDF\" file system and requires an operating system\r\n"
    b"that supports the ISO-13346 \"UDF\" file system specification.\r\n"
    b"(winarm test media: the winarm test guest dressed as Windows 11 for ARM64.)\r\n"
)
_EL_TORITO_FILE = "/EFISYS.BIN;1"
_EL_TORITO_MAX_SECTORS = 0xFFFF
_MIB = 1024 * 1024


def build_windows_testbed(
    cache_dir: Path,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
    wim_padding: int = 0,
) -> Path:
    """Build (or reuse from cache) the Windows-shaped test ISO and return its path.

    Built from the test guest (``build_guest_efi_image``, itself cached), into
    ``cache_dir/windows-<key>/winarm-windows-testbed.iso`` where the key hashes the guest build, this module,
    the WIM writer and ``wim_padding`` (zero bytes before the WIM's XML, to give ``install.wim`` a realistic
    size; the ISO is written sparsely, so the padding costs no disk). Idempotent and fast on a cache hit;
    ``force`` rebuilds the ISO (not the guest). Written atomically (temp file + rename) under a lock.

    Raises GuestBuildError (one line) when the guest cannot be built, a host tool fails, ``wim_padding``
    is negative, or the cache directory cannot be written.
    """
    if wim_padding < 0:
        raise GuestBuildError(f"wim_padding {wim_padding} is negative")
    cache_dir = Path(cache_dir)
    efi_image = build_guest_efi_image(cache_dir, log=log)
    try:
        iso = cache_dir / f"windows-{_cache_key(efi_image, wim_padding)}" / ISO_NAME
        if iso.is_file() and not force:
            return iso
        with _locked(cache_dir / ".lock-windows"):
            if iso.is_file() and not force:
                return iso
            started = time.monotonic()
            log(f"testbed: building {iso}")
            _build(efi_image, iso, wim_padding)
            log(f"testbed: built {iso.name} in {time.monotonic() - started:.1f} s")
            return iso
    except (OSError, ValueError) as exc:
        raise GuestBuildError(f"cannot build the Windows test ISO in {cache_dir}: {exc}") from exc


def _cache_key(efi_image: Path, wim_padding: int) -> str:
    """Short hash of the guest build (its cache directory is named by its own key), of this module and
    the WIM writer, and of the padding."""
    from importlib.metadata import version

    from .. import wim

    digest = hashlib.sha256()
    digest.update(f"{efi_image.parent.name}\npadding={wim_padding}\npycdlib={version('pycdlib')}\n".encode())
    for module_file in (Path(__file__), Path(wim.__file__), Path(__file__).with_name("guest.py")):
        digest.update(module_file.read_bytes())
    return digest.hexdigest()[:12]


def _build(efi_image: Path, iso: Path, wim_padding: int) -> None:
    """Write the ISO to ISO from the guest's EFI image (through a temp file and a rename).

    Raises GuestBuildError when mtools or sfdisk fail, OSError from the file system.
    """
    iso.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=iso.parent) as tmp:
        work = Path(tmp)
        loader = work / "bootaa64.efi"
        _run(["mcopy", "-n", "-i", str(efi_image), "::/EFI/BOOT/BOOTAA64.EFI", str(loader)],
             env={"MTOOLS_SKIP_CHECK": "1"})
        seed = work / "seed.img"
        make_seed(efi_image, seed, data_mib=DATA_MIB)
        wim = work / "install.wim"
        write_wim(wim, EDITIONS, build=BUILD, arch="arm64", padding=wim_padding)
        files: dict[str, bytes | Path] = {
            "boot/bcd": b"winarm test media: placeholder boot configuration\n",
            "efi/boot/bootaa64.efi": loader,
            "sources/install.wim": wim,
            SEED_PATH: seed,
        }
        tmp_iso = work / ISO_NAME
        _write_bridge(tmp_iso, files, efi_image)
        os.replace(tmp_iso, iso)


def _write_bridge(out: Path, files: dict[str, bytes | Path], efi_image: Path) -> None:
    """Write OUT: a UDF bridge whose ISO 9660 tree holds only README.TXT, whose UDF tree holds FILES
    (``/``-separated relative paths) and ``efi/microsoft/boot/efisys.bin``, and whose El Torito EFI entry
    boots EFI_IMAGE. Zero runs are written as holes.

    Raises OSError from the file system, pycdlib's exceptions for invalid names.
    """
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=VOLUME_ID, udf="2.60")
    with contextlib.ExitStack() as stack:
        iso.add_fp(io.BytesIO(README), len(README), iso_path="/README.TXT;1")
        made: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    iso.add_directory(udf_path=f"/{directory}")
            content = files[name]
            fp: BinaryIO
            if isinstance(content, Path):
                fp = stack.enter_context(content.open("rb"))
                length = content.stat().st_size
            else:
                fp, length = io.BytesIO(content), len(content)
            iso.add_fp(fp, length, udf_path=f"/{name}")

        size = efi_image.stat().st_size
        sectors = -(-size // 512)
        iso.add_fp(stack.enter_context(efi_image.open("rb")), size, iso_path=_EL_TORITO_FILE)
        iso.add_eltorito(_EL_TORITO_FILE, bootcatfile="/BOOT.CAT;1", platform_id=0xEF, media_name="noemul",
                         boot_load_size=sectors if sectors <= _EL_TORITO_MAX_SECTORS else 0)
        for directory in ("efi/microsoft", "efi/microsoft/boot"):
            iso.add_directory(udf_path=f"/{directory}")
        iso.add_hard_link(iso_old_path=_EL_TORITO_FILE, udf_new_path="/efi/microsoft/boot/efisys.bin")
        # Hidden from the ISO 9660 tree, as on Microsoft's media; El Torito and UDF still point at them.
        iso.rm_hard_link(iso_path=_EL_TORITO_FILE)
        iso.rm_hard_link(iso_path="/BOOT.CAT;1")
        with _SparseWriter(out) as handle:
            iso.write_fp(handle, blocksize=_MIB)
            handle.finish(iso.pvd.space_size * iso.logical_block_size)
        iso.close()


class _SparseWriter(io.FileIO):
    """A write-only file that turns whole zero blocks into holes (a padded install.wim is mostly zeros)."""

    def __init__(self, path: Path) -> None:
        """Create (or truncate) PATH for writing."""
        super().__init__(path, "wb")
        self._zero = bytes(_MIB)

    def write(self, data: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
        """Write DATA, or skip over it when it is a block of at least 4 KiB of zeros."""
        size = len(data)
        if size >= 4096 and (self._zero[:size] == data if size <= _MIB else not any(data)):
            self.seek(size, os.SEEK_CUR)
            return size
        return super().write(data)

    def finish(self, length: int) -> None:
        """Extend the file to LENGTH bytes when it ends in a hole."""
        if self.seek(0, os.SEEK_END) < length:
            self.truncate(length)
