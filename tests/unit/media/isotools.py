"""Building broken Windows images and ISOs for the reader's tests, and a file that counts what is read from it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from winarm.errors import UserError
from winarm.media.iso import inspect_iso
from winarm.media.wim import HEADER_SIZE, ResourceHeader
from winarm_testbed.wim_image import build_bridge_iso
from winarm_testbed.wim_writer import WritableWimHeader as WimHeader
from winarm_testbed.wim_writer import wim_bytes

GiB = 1024**3
EDITIONS = ("Windows 11 Home", "Windows 11 Pro")
EDITION_BYTES = (7_861_235_712, 9_614_917_632)
"""The editions' TOTALBYTES on the good ISO: different, so a reader that mixes them up is caught."""
ARM64_MEDIA = "winarm needs Windows for ARM64 (arm64) media"


def refused(path: Path, *, require_arm64: bool = True) -> str:
    """The one-line message inspect_iso gives for ``path``; fails the test if it returns or raises another type."""
    with pytest.raises(UserError) as caught:
        inspect_iso(path, require_arm64=require_arm64)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message


def iso_with_wim(isos: Path, name: str, wim: bytes) -> Path:
    return build_bridge_iso(isos / name, extra_files={"sources/install.wim": wim})


def wim_with_xml(xml: bytes, *, images: int, xml_size: int | None = None, padding: int = 0) -> bytes:
    size = len(xml) if xml_size is None else xml_size
    header = WimHeader(
        header_size=HEADER_SIZE,
        version=0x10D00,
        flags=0,
        chunk_size=0,
        guid=b"g" * 16,
        part_number=1,
        total_parts=1,
        image_count=images,
        lookup_table=ResourceHeader(0, 0, 0, 0),
        xml_data=ResourceHeader(size, 0, HEADER_SIZE + padding, size),
    )
    return header.pack() + bytes(padding) + xml


def patched(wim: bytes, offset: int, value: bytes) -> bytes:
    return wim[:offset] + value + wim[offset + len(value) :]


GOOD_WIM = wim_bytes(EDITIONS)


class CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes it hands out."""

    def __init__(self, path: Path) -> None:
        self.inner = io.FileIO(path, "rb")
        self.bytes_read = 0
        self.reads = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.inner.readinto(buffer)
        self.bytes_read += count or 0
        self.reads += 1
        return int(count or 0)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def close(self) -> None:
        self.inner.close()
        super().close()
