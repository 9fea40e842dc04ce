"""The two parts of a Windows image (WIM/ESD) that name its editions: the fixed header and the XML metadata.

A WIM file starts with a 208-byte header (all integers little-endian)::

    +0x00  magic "MSWIM\\0\\0\\0"          +0x28  part number, total parts (u16 each)
    +0x08  header size (u32, 208)          +0x2c  image count (u32)
    +0x0c  version (u32)                   +0x30  lookup table resource header (24 bytes)
    +0x10  flags (u32)                     +0x48  XML data resource header (24 bytes)
    +0x14  chunk size (u32)                +0x60  boot metadata resource header (24 bytes)
    +0x18  GUID (16 bytes)                 +0x78  boot index (u32)
                                           +0x7c  integrity table resource header (24 bytes), then 60 unused

A resource header is 7 bytes of size in the file, 1 byte of flags, an 8-byte offset and an 8-byte original
(uncompressed) size. The XML data resource is uncompressed UTF-16LE text with a byte-order mark: ``<WIM>``
holding one ``<IMAGE INDEX="n">`` per image with ``<NAME>``, ``<WINDOWS><ARCH>`` (a Windows processor
architecture number: 12 ARM64, 9 x64, 0 x86, 5 ARM), ``<WINDOWS><VERSION><BUILD>``, ``<WINDOWS><LANGUAGES>``
(``<LANGUAGE>`` per UI language the image holds, and ``<DEFAULT>``) and ``<TOTALBYTES>`` (the image's expanded
size: about what applying it writes to the disk).

Parsing is bounded: the header is one fixed-size read and the XML resource is refused above
:data:`MAX_XML_SIZE`. Everything wrong with the bytes raises :class:`WimError`; the caller names the file.
This is the reader only: the test media's writer lives in ``winarm_testbed.wim_writer``.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET  # only for its types and ParseError; parsing goes through defusedxml
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _safe_fromstring

__all__ = [
    "ARCH_NAMES",
    "HEADER_LAYOUT",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_XML_SIZE",
    "RESOURCE_LAYOUT",
    "ResourceHeader",
    "WimEdition",
    "WimError",
    "WimHeader",
    "arch_name",
    "parse_header",
    "parse_xml",
]

MAGIC = b"MSWIM\x00\x00\x00"
HEADER_SIZE = 208
MAX_HEADER_SIZE = 4096
"""A header claiming more than this is refused (real ones are exactly 208 bytes)."""
MAX_XML_SIZE = 16 * 1024 * 1024
"""The XML metadata of a real install image is tens of KiB; anything over 16 MiB is refused unread."""
MAX_IMAGES = 1000
MAX_SIZE_DIGITS = 15
"""A TOTALBYTES of more digits (a petabyte and up) is refused: no Windows image comes near it."""
MAX_LANGUAGES = 256
"""An image listing more UI languages than this is refused (Windows has about a hundred)."""
LANGUAGE_TAG_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
"""What a ``<LANGUAGE>`` or ``<DEFAULT>`` must look like (``en-US``, ``sr-Latn-RS``); anything else is skipped."""

RESHDR_FLAG_COMPRESSED = 0x04
BOM = b"\xff\xfe"

ARCH_NAMES: dict[int, str] = {12: "arm64", 9: "x64", 0: "x86", 5: "arm"}
"""Windows PROCESSOR_ARCHITECTURE numbers as they appear in ``<ARCH>``."""

HEADER_LAYOUT = struct.Struct("<8sIIII16sHHI24s24s24sI24s60s")
"""The header's fields on disk, in the order of the table above."""
RESOURCE_LAYOUT = struct.Struct("<7sBQQ")
"""A resource header on disk: size (7 bytes), flags, offset, original size."""
assert HEADER_LAYOUT.size == HEADER_SIZE
assert RESOURCE_LAYOUT.size == 24


class WimError(ValueError):
    """The bytes are not a WIM header or XML metadata winarm can read; the message says what is wrong."""


def arch_name(number: int) -> str:
    """``12`` -> ``arm64``, ``9`` -> ``x64``, ``0`` -> ``x86``, ``5`` -> ``arm``; any other number as digits."""
    return ARCH_NAMES.get(number, str(number))


@dataclass(frozen=True)
class ResourceHeader:
    """Where a resource lives in the WIM file: ``size`` bytes at ``offset``, ``original_size`` once expanded."""

    size: int
    flags: int
    offset: int
    original_size: int

    @property
    def compressed(self) -> bool:
        """Whether the resource is stored compressed."""
        return bool(self.flags & RESHDR_FLAG_COMPRESSED)

    @classmethod
    def unpack(cls, data: bytes) -> ResourceHeader:
        """Decode 24 on-disk bytes (any values: they are checked by the caller)."""
        size, flags, offset, original = RESOURCE_LAYOUT.unpack(data)
        return cls(int.from_bytes(size, "little"), flags, offset, original)


EMPTY_RESOURCE = ResourceHeader(0, 0, 0, 0)


@dataclass(frozen=True)
class WimHeader:
    """The fields of a WIM header that winarm reads."""

    header_size: int
    version: int
    flags: int
    chunk_size: int
    guid: bytes
    part_number: int
    total_parts: int
    image_count: int
    lookup_table: ResourceHeader
    xml_data: ResourceHeader
    boot_metadata: ResourceHeader = EMPTY_RESOURCE
    boot_index: int = 0
    integrity_table: ResourceHeader = EMPTY_RESOURCE


def parse_header(data: bytes, file_size: int) -> WimHeader:
    """Decode and check the first :data:`HEADER_SIZE` bytes of a WIM file of ``file_size`` bytes.

    Promises on return: the magic is right, the header size is sane, there is at least one image, and the XML
    data resource is uncompressed, non-empty, of even length, at most :data:`MAX_XML_SIZE` bytes and lies
    after the header and within the file. Raises :class:`WimError` naming the first broken field.
    """
    if len(data) < HEADER_SIZE:
        raise WimError(f"the file is {len(data)} bytes, shorter than a WIM header ({HEADER_SIZE})")
    fields = HEADER_LAYOUT.unpack_from(data)
    magic, header_size, version, flags, chunk_size, guid, part, parts, count = fields[:9]
    if magic != MAGIC:
        raise WimError(f"no WIM signature (found {magic[:8]!r}, expected 'MSWIM')")
    if not HEADER_SIZE <= header_size <= MAX_HEADER_SIZE:
        raise WimError(f"the header size {header_size} is not {HEADER_SIZE}")
    if count < 1 or count > MAX_IMAGES:
        raise WimError(f"the header claims {count} images")
    header = WimHeader(
        header_size=header_size,
        version=version,
        flags=flags,
        chunk_size=chunk_size,
        guid=guid,
        part_number=part,
        total_parts=parts,
        image_count=count,
        lookup_table=ResourceHeader.unpack(fields[9]),
        xml_data=ResourceHeader.unpack(fields[10]),
        boot_metadata=ResourceHeader.unpack(fields[11]),
        boot_index=fields[12],
        integrity_table=ResourceHeader.unpack(fields[13]),
    )
    xml = header.xml_data
    if xml.compressed:
        raise WimError("the XML metadata is compressed, which no known Windows image does")
    if xml.original_size != xml.size:
        raise WimError(f"the XML metadata sizes disagree ({xml.size} stored, {xml.original_size} original)")
    if xml.size == 0 or xml.size % 2:
        raise WimError(f"the XML metadata size {xml.size} is not a UTF-16 text length")
    if xml.size > MAX_XML_SIZE:
        raise WimError(f"the XML metadata is {xml.size} bytes, over the {MAX_XML_SIZE // (1024 * 1024)} MiB limit")
    if xml.offset < header_size or xml.offset + xml.size > file_size:
        raise WimError(
            f"the XML metadata ({xml.size} bytes at offset {xml.offset}) lies outside the {file_size}-byte file"
        )
    return header


@dataclass(frozen=True)
class WimEdition:
    """One image of a WIM as its XML metadata describes it."""

    index: int
    name: str
    build: str
    arch_number: int | None
    """The ``<ARCH>`` number, None when the image has no ``<WINDOWS>`` section."""
    total_bytes: int | None = None
    """The image's ``<TOTALBYTES>``, its expanded size in bytes; None when the image gives none (or 0)."""
    languages: tuple[str, ...] = ()
    """The UI languages of ``<WINDOWS><LANGUAGES>``, in the XML's order, without repeats; empty when the image
    names none (unknown: then nothing is refused for want of a language)."""
    default_language: str | None = None
    """``<LANGUAGES><DEFAULT>``, else the first language; None when the image names none."""

    @property
    def arch(self) -> str:
        """``arm64``, ``x64``, ``x86``, ``arm``, another number as digits, or ``unknown``."""
        return "unknown" if self.arch_number is None else arch_name(self.arch_number)


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _number(text: str, what: str, *, digits: int = 9) -> int:
    """``text`` as a non-negative integer of at most ``digits`` digits. Raises :class:`WimError` naming
    ``what`` otherwise."""
    if not text.isascii() or not text.isdigit() or len(text) > digits:
        raise WimError(f"{what} {text[:40]!r} is not a number")
    return int(text)


def parse_xml(data: bytes, image_count: int) -> tuple[WimEdition, ...]:
    """Decode the XML metadata resource into editions, sorted by index (with each image's TOTALBYTES).

    ``data`` is the raw resource: UTF-16LE, normally with a byte-order mark. DTDs and entities are refused
    (defusedxml). Promises on return: exactly ``image_count`` images with the indexes 1..n, each with a
    non-empty name. Raises :class:`WimError` for anything else (a TOTALBYTES that is not a number included).
    """
    root = _xml_root(data)
    editions: dict[int, WimEdition] = {}
    for image in root.findall("IMAGE"):
        index = _number(image.get("INDEX", "").strip(), "an image INDEX")
        if index in editions:
            raise WimError(f"image index {index} appears twice in the XML metadata")
        editions[index] = _edition(image, index)
    if len(editions) != image_count:
        raise WimError(f"the XML metadata lists {len(editions)} images but the header says {image_count}")
    if sorted(editions) != list(range(1, image_count + 1)):
        raise WimError(f"the image indexes {sorted(editions)[:10]} are not 1 to {image_count}")
    return tuple(editions[i] for i in sorted(editions))


def _xml_root(data: bytes) -> ET.Element:
    """The ``<WIM>`` element of the raw XML resource ``data``. Raises :class:`WimError` when it is too large,
    not UTF-16, not well-formed, uses a DTD or entities, or has another root."""
    if len(data) > MAX_XML_SIZE:
        raise WimError(f"the XML metadata is {len(data)} bytes, over the limit")
    body = data[2:] if data.startswith(BOM) else data
    try:
        text = body.decode("utf-16-le")
    except UnicodeDecodeError as error:
        raise WimError(f"the XML metadata is not UTF-16 text ({error.reason} at byte {error.start})") from None
    text = text.rstrip("\x00").strip()
    try:
        root = _safe_fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except ET.ParseError as error:
        raise WimError(f"the XML metadata is not well-formed XML ({error})") from None
    except DefusedXmlException as error:
        raise WimError(f"the XML metadata uses a forbidden XML feature ({type(error).__name__})") from None
    except (ValueError, RecursionError) as error:
        raise WimError(f"the XML metadata cannot be parsed ({type(error).__name__})") from None
    if root.tag != "WIM":
        raise WimError(f"the XML metadata's root is <{str(root.tag)[:40]}>, not <WIM>")
    return root


def _edition(image: ET.Element, index: int) -> WimEdition:
    """The edition one ``<IMAGE>`` element (of index ``index``) describes. Raises :class:`WimError` when it has
    no name or a number that is not one."""
    name = _text(image.find("NAME")) or _text(image.find("DISPLAYNAME"))
    if not name:
        raise WimError(f"image {index} has no NAME in the XML metadata")
    windows = image.find("WINDOWS")
    arch: int | None = None
    build = ""
    languages: tuple[str, ...] = ()
    default: str | None = None
    if windows is not None:
        arch_text = _text(windows.find("ARCH"))
        arch = _number(arch_text, f"image {index}'s ARCH") if arch_text else None
        build = _build(windows, index)
        languages, default = _languages(windows, index)
    total_text = _text(image.find("TOTALBYTES"))
    total = _number(total_text, f"image {index}'s TOTALBYTES", digits=MAX_SIZE_DIGITS) if total_text else 0
    return WimEdition(index=index, name=" ".join(name.split()), build=build, arch_number=arch,
                      total_bytes=total or None, languages=languages, default_language=default)


def _languages(windows: ET.Element, index: int) -> tuple[tuple[str, ...], str | None]:
    """``(languages, default)`` from the ``<LANGUAGES>`` of an image's ``<WINDOWS>``: ``((), None)`` when it names
    none. A value that is not a language tag is skipped (a language winarm cannot name is one it cannot choose);
    a DEFAULT that is not among the LANGUAGE entries is added to them; without a usable DEFAULT the first entry
    is the default. Raises :class:`WimError` when the image lists over :data:`MAX_LANGUAGES` languages."""
    section = windows.find("LANGUAGES")
    if section is None:
        return (), None
    entries = section.findall("LANGUAGE")
    if len(entries) > MAX_LANGUAGES:
        raise WimError(f"image {index} lists {len(entries)} languages, over the limit of {MAX_LANGUAGES}")
    found: dict[str, str] = {}
    for tag in (_text(entry) for entry in entries):
        if LANGUAGE_TAG_RE.fullmatch(tag):
            found.setdefault(tag.lower(), tag)
    default_tag = _text(section.find("DEFAULT"))
    default = found.setdefault(default_tag.lower(), default_tag) if LANGUAGE_TAG_RE.fullmatch(default_tag) else None
    tags = tuple(found.values())
    return tags, default if default is not None else (tags[0] if tags else None)


def _build(windows: ET.Element, index: int) -> str:
    """``26100`` or ``26100.1742`` from the ``<VERSION>`` of an image's ``<WINDOWS>`` ("" when it names no build).
    Raises :class:`WimError` when BUILD or SPBUILD is not a number."""
    build = _text(windows.find("VERSION/BUILD"))
    if build:
        _number(build, f"image {index}'s BUILD")
        spbuild = _text(windows.find("VERSION/SPBUILD"))
        if spbuild and spbuild != "0":
            _number(spbuild, f"image {index}'s SPBUILD")
            build = f"{build}.{spbuild}"
    return build
