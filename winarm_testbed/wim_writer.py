"""The writer of Windows images (WIM) for test media: a valid header and the XML metadata naming editions.

The inverse of :mod:`winarm.media.wim` (the reader winarm ships), for the Windows-shaped test ISOs only: a
header, optional zero padding (sparse when written to a path) or filler (pseudo-random bytes standing in for the
image's compressed resources, so that a guest copying the file writes no zero blocks) and the uncompressed
UTF-16LE XML resource at the end, where real images keep it. Each image's ``TOTALBYTES`` (its expanded size) is
what the caller says. No file resources, no lookup table: enough for everything winarm reads.
"""

from __future__ import annotations

import hashlib
import io
import random
import xml.etree.ElementTree as ET  # only builds XML, never parses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from winarm.media.wim import (
    ARCH_NAMES,
    BOM,
    HEADER_LAYOUT,
    HEADER_SIZE,
    MAGIC,
    RESOURCE_LAYOUT,
    ResourceHeader,
    WimHeader,
)

__all__ = ["WIM_VERSION", "WritableWimHeader", "arch_number", "editions_xml", "filler", "pack_resource",
           "wim_bytes", "write_wim"]

WIM_VERSION = 0x10D00
_CHUNK = 1024 * 1024


def arch_number(arch: str | int) -> int:
    """The inverse of :func:`winarm.media.wim.arch_name`: ``arm64`` -> 12, a number (or its digits) -> itself.

    Raises :class:`ValueError` for a name that is neither known nor a number.
    """
    if isinstance(arch, int):
        return arch
    for number, name in ARCH_NAMES.items():
        if name == arch:
            return number
    if arch.isdigit():
        return int(arch)
    raise ValueError(f"unknown Windows architecture {arch!r}: use arm64, x64, x86, arm or a number")


def pack_resource(resource: ResourceHeader) -> bytes:
    """The 24 on-disk bytes of ``resource``. Raises :class:`ValueError` if a field does not fit."""
    if not 0 <= resource.size < 1 << 56 or not 0 <= resource.flags < 256:
        raise ValueError(f"resource size {resource.size} or flags {resource.flags} out of range")
    return RESOURCE_LAYOUT.pack(resource.size.to_bytes(7, "little"), resource.flags, resource.offset,
                                resource.original_size)


@dataclass(frozen=True)
class WritableWimHeader(WimHeader):
    """A :class:`winarm.media.wim.WimHeader` that can be written."""

    def pack(self) -> bytes:
        """The 208 on-disk bytes (``header_size`` is written as given, so tests can lie with it).

        Raises :class:`ValueError` if a resource header's field does not fit.
        """
        return HEADER_LAYOUT.pack(
            MAGIC,
            self.header_size,
            self.version,
            self.flags,
            self.chunk_size,
            self.guid.ljust(16, b"\x00")[:16],
            self.part_number,
            self.total_parts,
            self.image_count,
            pack_resource(self.lookup_table),
            pack_resource(self.xml_data),
            pack_resource(self.boot_metadata),
            self.boot_index,
            pack_resource(self.integrity_table),
            bytes(60),
        )


def editions_xml(editions: Sequence[str], *, build: str, arch: str | int, total_bytes: int = 0,
                 image_bytes: int | Sequence[int] = 0) -> bytes:
    """The XML metadata resource for images named ``editions`` (index 1, 2, ...), as WIM files store it:
    UTF-16LE with a byte-order mark.

    ``build`` is ``26100`` or ``26100.1742`` (build and service-pack build). ``total_bytes`` is the WIM's own
    size (the root ``TOTALBYTES``), ``image_bytes`` each image's expanded size (its ``TOTALBYTES``: one for all,
    or one per edition). Raises :class:`ValueError` for an empty edition list, a bad build, an unknown
    architecture name or an ``image_bytes`` list of another length than ``editions``.
    """
    if not editions:
        raise ValueError("a WIM needs at least one edition")
    major, _, minor = build.partition(".")
    if not major.isdigit() or (minor and not minor.isdigit()):
        raise ValueError(f"build {build!r} is not like 26100 or 26100.1742")
    sizes = [image_bytes] * len(editions) if isinstance(image_bytes, int) else list(image_bytes)
    if len(sizes) != len(editions):
        raise ValueError(f"{len(sizes)} image sizes for {len(editions)} editions")
    number = arch_number(arch)
    root = ET.Element("WIM")
    ET.SubElement(root, "TOTALBYTES").text = str(total_bytes)
    for index, (name, size) in enumerate(zip(editions, sizes, strict=True), start=1):
        image = ET.SubElement(root, "IMAGE", INDEX=str(index))
        for tag in ("DIRCOUNT", "FILECOUNT", "TOTALBYTES", "HARDLINKBYTES"):
            ET.SubElement(image, tag).text = str(size) if tag == "TOTALBYTES" else "0"
        _windows_element(image, number, major, minor)
        ET.SubElement(image, "NAME").text = name
        ET.SubElement(image, "DESCRIPTION").text = name
        ET.SubElement(image, "DISPLAYNAME").text = name
    return BOM + ET.tostring(root, encoding="unicode").encode("utf-16-le")


def _windows_element(image: ET.Element, arch: int, major: str, minor: str) -> None:
    """Append an image's ``<WINDOWS>`` section: architecture ``arch``, build ``major``, service-pack build
    ``minor`` (``0`` when empty), client edition, en-US."""
    windows = ET.SubElement(image, "WINDOWS")
    ET.SubElement(windows, "ARCH").text = str(arch)
    ET.SubElement(windows, "PRODUCTNAME").text = "Microsoft\u00ae Windows\u00ae Operating System"
    ET.SubElement(windows, "INSTALLATIONTYPE").text = "Client"
    ET.SubElement(windows, "PRODUCTTYPE").text = "WinNT"
    languages = ET.SubElement(windows, "LANGUAGES")
    ET.SubElement(languages, "LANGUAGE").text = "en-US"
    ET.SubElement(languages, "DEFAULT").text = "en-US"
    version = ET.SubElement(windows, "VERSION")
    ET.SubElement(version, "MAJOR").text = "10"
    ET.SubElement(version, "MINOR").text = "0"
    ET.SubElement(version, "BUILD").text = major
    ET.SubElement(version, "SPBUILD").text = minor or "0"
    ET.SubElement(version, "SPLEVEL").text = "0"
    ET.SubElement(windows, "SYSTEMROOT").text = "WINDOWS"


def write_wim(
    target: Path | BinaryIO,
    editions: Sequence[str],
    *,
    build: str,
    arch: str | int,
    padding: int = 0,
    size: int | None = None,
    image_bytes: int | Sequence[int] = 0,
) -> int:
    """Write a WIM with a valid header and an uncompressed XML metadata resource naming ``editions``.

    The layout is header, ``padding`` zero bytes, filler, XML (real images keep the XML at the end too). Written
    to a path, the padding is a hole (a sparse file), so a 5 GiB image costs no disk or memory; written to a
    stream, zeros are written in 1 MiB chunks. With ``size`` the file is exactly that many bytes, the room left
    before the XML filled with :func:`filler` (never a zero block); without it there is no filler.
    ``image_bytes`` is each image's ``TOTALBYTES`` (see :func:`editions_xml`). Returns the total size in bytes.
    Raises :class:`ValueError` for bad arguments (see :func:`editions_xml`; a ``size`` too small for the header,
    padding and XML) and :class:`OSError` from the file system.
    """
    if padding < 0:
        raise ValueError(f"padding {padding} is negative")
    if size is None:  # no filler: the size is the header, padding and XML, whose root TOTALBYTES is that size
        size = HEADER_SIZE + padding
        while size != (fits := HEADER_SIZE + padding + len(editions_xml(
                editions, build=build, arch=arch, total_bytes=size, image_bytes=image_bytes))):
            size = fits
    xml = editions_xml(editions, build=build, arch=arch, total_bytes=size, image_bytes=image_bytes)
    filler_bytes = size - HEADER_SIZE - padding - len(xml)
    if filler_bytes < 0:
        raise ValueError(f"size {size} is smaller than the header, {padding} bytes of padding and the XML")
    xml_offset = size - len(xml)
    header = WritableWimHeader(
        header_size=HEADER_SIZE,
        version=WIM_VERSION,
        flags=0,
        chunk_size=0,
        guid=hashlib.sha256(xml).digest()[:16],
        part_number=1,
        total_parts=1,
        image_count=len(editions),
        lookup_table=ResourceHeader(0, 0, HEADER_SIZE, 0),
        xml_data=ResourceHeader(len(xml), 0, xml_offset, len(xml)),
    )
    if isinstance(target, Path):
        with target.open("wb") as handle:
            _write_parts(handle, header.pack(), padding, filler_bytes, xml, sparse=True)
    else:
        _write_parts(target, header.pack(), padding, filler_bytes, xml, sparse=False)
    return size


def _write_parts(handle: BinaryIO, header: bytes, padding: int, filler_bytes: int, xml: bytes, *,
                 sparse: bool) -> None:
    """Write a WIM's parts in order: the header, ``padding`` zeros (a hole when ``sparse``), filler, the XML."""
    handle.write(header)
    if sparse:
        handle.seek(HEADER_SIZE + padding)
    else:
        chunk = bytes(min(padding, _CHUNK))
        left = padding
        while left > 0:
            step = min(left, len(chunk))
            handle.write(chunk[:step] if step < len(chunk) else chunk)
            left -= step
    _write_filler(handle, filler_bytes)
    handle.write(xml)


def filler(size: int, *, seed: int = 0x57494D) -> bytes:
    """``size`` pseudo-random bytes, the same for the same ``seed``: what stands in for an image's compressed
    data (no zero blocks, which QEMU would turn into zero writes, and nothing a file system could shrink)."""
    return random.Random(seed).randbytes(size)


def _write_filler(handle: BinaryIO, size: int) -> None:
    """Write ``size`` bytes of :func:`filler`, 1 MiB at a time (each MiB its own seed)."""
    for number, offset in enumerate(range(0, size, _CHUNK)):
        handle.write(filler(min(_CHUNK, size - offset), seed=number))


def wim_bytes(editions: Sequence[str], *, build: str = "26100", arch: str | int = "arm64", padding: int = 0,
              image_bytes: int | Sequence[int] = 0) -> bytes:
    """A small WIM in memory (see :func:`write_wim`); for tests that corrupt it byte by byte."""
    buffer = io.BytesIO()
    write_wim(buffer, editions, build=build, arch=arch, padding=padding, image_bytes=image_bytes)
    return buffer.getvalue()
