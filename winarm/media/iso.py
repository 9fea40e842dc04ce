"""What a Windows install ISO holds, read without reading the image: architecture, install image, editions.

A Windows ISO is a "UDF bridge": its ISO 9660 tree holds only a README and the real tree is UDF. ARM64 media
carry ``efi/boot/bootaa64.efi`` (x64 media ``bootx64.efi``) and the editions are images inside
``sources/install.wim`` or ``sources/install.esd``. :func:`inspect_iso` opens the ISO with pycdlib (which
reads only the volume and directory descriptors), then reads the install image's 208-byte header and its XML
metadata resource by seeking inside the file: a few hundred KiB of a 5 GiB ISO.

An ``Autounattend.xml`` at the ISO's root may be taken by Setup instead of winarm's answer file (Microsoft's
search order: :mod:`winarm.media.iso_answer`); :attr:`IsoInfo.answer_files` names it, found in any case in the UDF,
Joliet and ISO 9660 trees alike.

Every problem with the file -- missing, unreadable, not an ISO, truncated, no install image, wrong
architecture, a broken image header or XML -- is reported as one :class:`~winarm.errors.UserError` that names
the file and says what to do. Nothing else escapes, whatever bytes the file holds.
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from winarm.errors import UserError
from winarm.media.wim import HEADER_SIZE, WimError, parse_header, parse_xml

__all__ = ["ANSWER_FILE", "BOOT_LOADERS", "INSTALL_IMAGES", "Edition", "InstallImage", "IsoInfo", "inspect_iso"]

SECTOR = 2048
FIRST_DESCRIPTOR = 16
MAX_DESCRIPTORS = 64
INSTALL_IMAGES = ("sources/install.wim", "sources/install.esd")
BOOT_LOADERS: dict[str, str] = {
    "efi/boot/bootaa64.efi": "arm64",
    "efi/boot/bootx64.efi": "x64",
    "efi/boot/bootia32.efi": "x86",
    "efi/boot/bootarm.efi": "arm",
}
"""The removable-media EFI loader paths (UEFI spec) and the architecture each one implies, first wins."""

ANSWER_FILE = "autounattend.xml"
"""The answer file Setup's windowsPE pass looks for at the root of removable media (any case)."""

FIX_MEDIA = "give a Windows 11 or 10 for ARM64 install ISO"
FIX_DOWNLOAD = "download the ISO again"


@dataclass(frozen=True)
class Edition:
    """One installable edition: its 1-based image index, its name, build (``26100`` or ``26100.1742``),
    architecture (``arm64``, ``x64``, ``x86``, ``arm``, another ``<ARCH>`` number, or ``unknown``), expanded
    size in bytes (the WIM XML's ``TOTALBYTES``; None when the image gives none) and UI languages with the default
    one (the WIM XML's ``LANGUAGES``; empty and None when the image names none: unknown, so nothing is refused)."""

    index: int
    name: str
    build: str
    arch: str
    total_bytes: int | None = None
    languages: tuple[str, ...] = ()
    default_language: str | None = None

    @property
    def build_number(self) -> int | None:
        """The major build (``26100`` of ``26100.1742``), None when the image names no build."""
        major = self.build.split(".")[0]
        return int(major) if major.isascii() and major.isdigit() else None

    def as_json(self) -> dict[str, Any]:
        """``{"index", "name", "build", "arch", "total_bytes", "languages", "default_language"}``."""
        return {"index": self.index, "name": self.name, "build": self.build, "arch": self.arch,
                "total_bytes": self.total_bytes, "languages": list(self.languages),
                "default_language": self.default_language}


@dataclass(frozen=True)
class InstallImage:
    """What applying one edition costs: the edition's name and index, its expanded size (``total_bytes``, about
    what Setup writes to the disk in windowsPE) and the size of the install image file on the ISO
    (``wim_bytes``, what it reads), and the edition's UI languages (empty when unknown). Made by
    :meth:`IsoInfo.install_image`; both sizes are positive."""

    edition: str
    index: int
    total_bytes: int
    wim_bytes: int
    languages: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """``{"edition", "index", "total_bytes", "wim_bytes", "languages"}``."""
        return {"edition": self.edition, "index": self.index, "total_bytes": self.total_bytes,
                "wim_bytes": self.wim_bytes, "languages": list(self.languages)}


_PLAIN_PRO = re.compile(r"\bPro\s*$")
_ANY_PRO = re.compile(r"\bPro\b")


@dataclass(frozen=True)
class IsoInfo:
    """What :func:`inspect_iso` found: the media's architecture, the install image path, its editions, its size
    in bytes (0 when not known) and the answer files at the ISO's root (their names as recorded, without an ISO
    9660 version: ``Autounattend.xml``; empty when there is none, at most one today)."""

    arch: str
    image: str
    editions: tuple[Edition, ...]
    image_bytes: int = 0
    answer_files: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """``{"arch": ..., "image": "sources/install.wim", "image_bytes": n, "answer_files": [...], "editions":
        [{"index", "name", "build", "arch", "total_bytes"}]}``."""
        return {"arch": self.arch, "image": self.image, "image_bytes": self.image_bytes,
                "answer_files": list(self.answer_files), "editions": [e.as_json() for e in self.editions]}

    def install_image(self, edition: Edition) -> InstallImage | None:
        """What applying ``edition`` reads and writes, or None when its size or the image's is not known."""
        if not edition.total_bytes or self.image_bytes <= 0:
            return None
        return InstallImage(edition.name, edition.index, edition.total_bytes, self.image_bytes, edition.languages)

    def default_edition(self) -> Edition:
        """The edition to install when none is named: the first plain "Pro" (a name ending in the word Pro,
        so not "Pro N" or "Pro Education"), else the first name with the word Pro, else the first edition."""
        for pattern in (_PLAIN_PRO, _ANY_PRO):
            for edition in self.editions:
                if pattern.search(edition.name):
                    return edition
        return self.editions[0]


def _open(path: Path) -> BinaryIO:
    """Open ``path`` for reading (a seam for tests that count the bytes read)."""
    return path.open("rb")


def _fail_open(path: Path, error: OSError) -> UserError:
    where = repr(str(path))
    if isinstance(error, FileNotFoundError):
        return UserError(f"ISO {where} does not exist: {FIX_MEDIA}")
    if isinstance(error, IsADirectoryError):
        return UserError(f"ISO {where} is a directory, not a file: {FIX_MEDIA}")
    if isinstance(error, PermissionError):
        return UserError(f"ISO {where} is not readable (permission denied): check its permissions")
    return UserError(f"ISO {where} cannot be read ({error.strerror or type(error).__name__}): {FIX_MEDIA}")


def _read_at(fp: BinaryIO, offset: int, size: int) -> bytes:
    fp.seek(offset)
    return fp.read(size)


def _check_volume(fp: BinaryIO, path: Path, size: int) -> None:
    """Find the ISO 9660 primary volume descriptor; refuse a file that has none or is shorter than it says."""
    where = repr(str(path))
    not_iso = f"{where} is not an ISO image (no ISO 9660 volume descriptor): {FIX_MEDIA}"
    if size < (FIRST_DESCRIPTOR + 1) * SECTOR:
        raise UserError(f"{where} is not an ISO image (only {size} bytes): {FIX_MEDIA}")
    for sector in range(FIRST_DESCRIPTOR, FIRST_DESCRIPTOR + MAX_DESCRIPTORS):
        descriptor = _read_at(fp, sector * SECTOR, SECTOR)
        if len(descriptor) < SECTOR or descriptor[1:6] != b"CD001":
            break
        if descriptor[0] == 255:
            break
        if descriptor[0] == 1:
            space_size = struct.unpack_from("<I", descriptor, 80)[0]
            block_size = struct.unpack_from("<H", descriptor, 128)[0]
            if block_size not in (512, 1024, 2048):
                raise UserError(f"{where} is not an ISO image (logical block size {block_size}): {FIX_MEDIA}")
            expected = space_size * block_size
            if size < expected:
                raise UserError(
                    f"ISO {where} is truncated: it is {size} bytes but its volume is {expected} bytes; {FIX_DOWNLOAD}"
                )
            return
    raise UserError(not_iso)


@dataclass(frozen=True)
class _Found:
    key: str  # the pycdlib keyword: udf_path, joliet_path or iso_path
    path: str  # the path as recorded on the ISO
    logical: str  # the lower-case path we looked for


class _Tree:
    """Case-insensitive lookups in one of the ISO's directory trees (UDF, Joliet or ISO 9660)."""

    def __init__(self, iso: Any, key: str) -> None:
        self.iso = iso
        self.key = key

    def _children(self, directory: str) -> Iterator[tuple[str, str, bool]]:
        """(normalized lower-case name, name as recorded, is a directory) for each entry of ``directory``."""
        for child in self.iso.list_children(**{self.key: directory}):
            if child is None or (self.key != "udf_path" and (child.is_dot() or child.is_dotdot())):
                continue
            raw: bytes = child.file_identifier()
            if self.key == "udf_path":
                encoding = child.file_ident.encoding if child.file_ident is not None else "utf-8"
            elif self.key == "joliet_path":
                encoding = "utf-16_be"
            else:
                encoding = "latin-1"
            recorded = raw.decode(encoding, errors="replace")
            name = recorded
            if self.key == "iso_path":
                name = name.split(";", 1)[0].rstrip(".")
            yield name.lower(), recorded, bool(child.is_dir())

    def find(self, logical: str) -> _Found | None:
        """The file at ``logical`` (a lower-case relative path), matched component by component ignoring case."""
        current = ""
        parts = logical.split("/")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            match = None
            for name, recorded, is_dir in self._children(current or "/"):
                if name == part and is_dir != last:
                    match = recorded
                    break
            if match is None:
                return None
            current = f"{current}/{match}"
        return _Found(self.key, current, logical)


def _root_answer_files(trees: list[_Tree]) -> tuple[str, ...]:
    """The answer file at the root of the ISO, named as the first of ``trees`` that holds it records it (UDF,
    then Joliet, then ISO 9660: the order Windows prefers them in); empty when no tree has a file named
    Autounattend.xml in any case there."""
    for tree in trees:
        for name, recorded, is_dir in tree._children("/"):
            if name == ANSWER_FILE and not is_dir:
                return (recorded.split(";", 1)[0] if tree.key == "iso_path" else recorded,)
    return ()


def _trees(iso: Any) -> list[_Tree]:
    trees = []
    if iso.has_udf():
        trees.append(_Tree(iso, "udf_path"))
    if iso.has_joliet():
        trees.append(_Tree(iso, "joliet_path"))
    trees.append(_Tree(iso, "iso_path"))
    return trees


def _check_contiguous(iso: Any, found: _Found, where: str) -> None:
    """pycdlib reads a UDF file as one run from its first extent: refuse a fragmented one rather than misread it."""
    if found.key != "udf_path":
        return
    entry = iso.get_record(udf_path=found.path)
    expected_block: int | None = None
    for descriptor in getattr(entry, "alloc_descs", []):
        block = getattr(descriptor, "log_block_num", None)
        length = getattr(descriptor, "extent_length", None)
        if not isinstance(block, int) or not isinstance(length, int):
            return
        length &= 0x3FFFFFFF
        if expected_block is not None and block != expected_block:
            raise UserError(
                f"ISO {where}: {found.logical} is stored in pieces that winarm cannot read in order; "
                "rebuild the ISO with a standard tool or use an original Microsoft ISO"
            )
        expected_block = block + -(-length // iso.logical_block_size)


def _read_editions(iso: Any, found: _Found, where: str) -> tuple[tuple[Edition, ...], int]:
    """Read the header and the XML resource of the install image, nothing else: its editions and its size."""
    broken = f"ISO {where}: {found.logical} is not a readable Windows image"
    _check_contiguous(iso, found, where)
    with iso.open_file_from_iso(**{found.key: found.path}) as image:
        length = image.seek(0, 2)
        image.seek(0)
        head = image.read(HEADER_SIZE)
        try:
            header = parse_header(head, length)
        except WimError as error:
            raise UserError(f"{broken} ({error}); {FIX_DOWNLOAD}") from None
        image.seek(header.xml_data.offset)
        xml = image.read(header.xml_data.size)
        if len(xml) != header.xml_data.size:
            raise UserError(f"ISO {where} is truncated inside {found.logical}; {FIX_DOWNLOAD}")
    try:
        editions = parse_xml(xml, header.image_count)
    except WimError as error:
        raise UserError(f"{broken} ({error}); {FIX_DOWNLOAD}") from None
    return tuple(Edition(e.index, e.name, e.build, e.arch, e.total_bytes, e.languages, e.default_language)
                 for e in editions), length


def _media_arch(boot_arch: str | None, editions: tuple[Edition, ...]) -> str:
    """The WIM's architecture when it names one (the default edition's, if editions disagree), else the boot
    loader's, else ``unknown``."""
    arches = {e.arch for e in editions if e.arch != "unknown"}
    if len(arches) == 1:
        return arches.pop()
    if arches:
        return IsoInfo("", "", editions).default_edition().arch
    return boot_arch or "unknown"


def _inspect_open(iso: Any, where: str) -> IsoInfo:
    trees = _trees(iso)
    image: _Found | None = None
    for tree in trees:
        for candidate in INSTALL_IMAGES:
            image = tree.find(candidate)
            if image is not None:
                break
        if image is not None:
            break
    if image is None:
        raise UserError(
            f"ISO {where} has no sources/install.wim or sources/install.esd, so it is not Windows install media: "
            f"{FIX_MEDIA}"
        )
    boot_arch: str | None = None
    for tree in sorted(trees, key=lambda t: t.key != image.key):
        for loader, arch in BOOT_LOADERS.items():
            if tree.find(loader) is not None:
                boot_arch = arch
                break
        if boot_arch is not None:
            break
    editions, size = _read_editions(iso, image, where)
    return IsoInfo(_media_arch(boot_arch, editions), image.logical, editions, size, _root_answer_files(trees))


def _arch_phrase(arch: str) -> str:
    if arch == "unknown":
        return "names no architecture (no EFI boot loader, no <ARCH> in its image)"
    if arch.isdigit():
        return f"is for Windows processor architecture {arch}"
    return f"is an {arch} ISO"


def inspect_iso(path: Path, *, require_arm64: bool = True) -> IsoInfo:
    """Read the architecture, install image (its path and size) and editions of the Windows install ISO at
    ``path``.

    Reads only the ISO's volume and directory descriptors and the install image's header and XML metadata.
    The architecture is the install image's (from ``<ARCH>``), falling back to the EFI boot loader's name when
    the image names none. Raises :class:`UserError` (one line naming the file and the fix) for a missing or
    unreadable file, a file that is not an ISO, a truncated ISO, an ISO without an install image, a broken
    install image header or XML, and -- when ``require_arm64`` -- an ISO that is not for arm64. Raises nothing
    else, whatever the file holds.
    """
    where = repr(str(path))
    try:
        fp = _open(path)
    except OSError as error:
        raise _fail_open(path, error) from None
    try:
        import pycdlib

        try:
            size = fp.seek(0, 2)
            _check_volume(fp, path, size)
            iso = pycdlib.PyCdlib()
            try:
                iso.open_fp(fp)
            except UserError:
                raise
            except Exception as error:  # pycdlib raises many kinds for bad bytes: all mean "not readable"
                reason = " ".join(str(error).split())[:120] or type(error).__name__
                raise UserError(f"{where} is not an ISO image winarm can read ({reason}): {FIX_MEDIA}") from None
            try:
                info = _inspect_open(iso, where)
            finally:
                with contextlib.suppress(Exception):  # closing a half-parsed ISO may fail; the answer is known
                    iso.close()
        except UserError:
            raise
        except OSError as error:
            raise UserError(f"ISO {where} cannot be read ({error.strerror or error}): {FIX_MEDIA}") from None
        except Exception as error:  # any other failure on hostile bytes is still a bad ISO, not a crash
            reason = " ".join(str(error).split())[:120] or type(error).__name__
            raise UserError(f"ISO {where} has a damaged directory tree or image ({reason}): {FIX_DOWNLOAD}") from None
    finally:
        fp.close()
    if require_arm64 and info.arch != "arm64":
        raise UserError(f"ISO {where} {_arch_phrase(info.arch)}: winarm needs Windows for ARM64 (arm64) media")
    return info
