"""The writer of Windows images (WIM) for test media: a valid header and the XML metadata naming editions.

The inverse of :mod:`winarm.media.wim` (the reader winarm ships), for the Windows-shaped test ISOs only: a
header, optional zero padding (sparse when written to a path) and the uncompressed UTF-16LE XML resource at the
end, where real images keep it. No file resources, no lookup table: enough for everything winarm reads.
"""

from __future__ import annotations

import hashlib
import io
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

__all__ = ["WIM_VERSION", "WritableWimHeader", "arch_number", "editions_xml", "pack_resource", "wim_bytes",
           "write_wim"]

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


def editions_xml(editions: Sequence[str], *, build: str, arch: str | int, total_bytes: int = 0) -> bytes:
    """The XML metadata resource for images named ``editions`` (index 1, 2, ...), as WIM files store it:
    UTF-16LE with a byte-order mark.

    ``build`` is ``26100`` or ``26100.1742`` (build and service-pack build). Raises :class:`ValueError` for an
    empty edition list, a bad build or an unknown architecture name.
    """
    if not editions:
        raise ValueError("a WIM needs at least one edition")
    major, _, minor = build.partition(".")
    if not major.isdigit() or (minor and not minor.isdigit()):
        raise ValueError(f"build {build!r} is not like 26100 or 26100.1742")
    number = arch_number(arch)
    root = ET.Element("WIM")
    ET.SubElement(root, "TOTALBYTES").text = str(total_bytes)
    for index, name in enumerate(editions, start=1):
        image = ET.SubElement(root, "IMAGE", INDEX=str(index))
        for tag in ("DIRCOUNT", "FILECOUNT", "TOTALBYTES", "HARDLINKBYTES"):
            ET.SubElement(image, tag).text = "0"
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
) -> int:
    """Write a WIM with a valid header and an uncompressed XML metadata resource naming ``editions``.

    The layout is header, ``padding`` zero bytes, XML (real images keep the XML at the end too). Written to a
    path, the padding is a hole (a sparse file), so a 5 GiB image costs no disk or memory; written to a stream,
    zeros are written in 1 MiB chunks. Returns the total size in bytes. Raises :class:`ValueError` for bad
    arguments (see :func:`editions_xml`) and :class:`OSError` from the file system.
    """
    if padding < 0:
        raise ValueError(f"padding {padding} is negative")
    xml_offset = HEADER_SIZE + padding
    probe = editions_xml(editions, build=build, arch=arch)
    xml = editions_xml(editions, build=build, arch=arch, total_bytes=xml_offset + len(probe))
    total = xml_offset + len(xml)
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
            handle.write(header.pack())
            handle.seek(xml_offset)
            handle.write(xml)
        return total
    target.write(header.pack())
    chunk = bytes(min(padding, _CHUNK))
    left = padding
    while left > 0:
        step = min(left, len(chunk))
        target.write(chunk[:step] if step < len(chunk) else chunk)
        left -= step
    target.write(xml)
    return total


def wim_bytes(editions: Sequence[str], *, build: str = "26100", arch: str | int = "arm64", padding: int = 0) -> bytes:
    """A small WIM in memory (see :func:`write_wim`); for tests that corrupt it byte by byte."""
    buffer = io.BytesIO()
    write_wim(buffer, editions, build=build, arch=arch, padding=padding)
    return buffer.getvalue()
