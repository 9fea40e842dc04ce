"""The VM's screen: taken through QMP ``screendump`` (QEMU 7.2 writes a binary PPM), hashed for change detection
and saved as PNG.

QEMU writes the PPM into a folder winarm owns (the run directory); it is read and deleted at once. The pixels
are the guest's to choose, so nothing here trusts them beyond their size: a PPM whose header and length do not
agree is refused. Pillow (imported only when a PNG is made) encodes the PNG; the hash needs no library.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winarm.errors import RuntimeFailure
from winarm.files import write_atomic

Execute = Callable[[str, dict[str, Any] | None], Awaitable[Any]]
"""A QMP command runner (``Machine.execute``): raises :class:`RuntimeFailure` when QEMU refuses or is gone."""

_PPM_HEADER = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s")
MAX_PIXELS = 16384 * 16384
"""More pixels than any display QEMU offers a guest: a PPM claiming more is refused rather than allocated."""


@dataclass(frozen=True)
class Frame:
    """One screen: ``width`` x ``height`` pixels, ``pixels`` packed RGB (3 bytes each, rows top to bottom)."""

    width: int
    height: int
    pixels: bytes

    @property
    def digest(self) -> str:
        """A short hash of the size and the pixels: equal for equal screens, different (almost surely) when a
        single pixel changed. About 1 ms for 800x600."""
        hasher = hashlib.blake2b(digest_size=16)
        hasher.update(f"{self.width}x{self.height}\n".encode())
        hasher.update(self.pixels)
        return hasher.hexdigest()

    def png(self) -> bytes:
        """The screen as PNG bytes (encoded by Pillow)."""
        from PIL import Image

        image = Image.frombytes("RGB", (self.width, self.height), self.pixels)
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=False)
        return out.getvalue()


def parse_ppm(data: bytes) -> Frame:
    """The frame in a binary PPM (P6, maxval 255, as QEMU writes it: no comments). Raises ValueError for anything
    else: another format, a 16-bit maxval, a size of zero or past :data:`MAX_PIXELS`, pixel data of the wrong
    length."""
    match = _PPM_HEADER.match(data)
    if match is None:
        raise ValueError("not a binary PPM (P6) image")
    width, height, maxval = (int(group) for group in match.groups())
    if maxval != 255:
        raise ValueError(f"PPM maxval {maxval} is not 255")
    if not 0 < width * height <= MAX_PIXELS:
        raise ValueError(f"PPM size {width}x{height} is out of range")
    pixels = data[match.end():]
    if len(pixels) != width * height * 3:
        raise ValueError(f"PPM {width}x{height} holds {len(pixels)} bytes of pixels, not {width * height * 3}")
    return Frame(width, height, pixels)


class Screen:
    """Takes the screen of one VM through ``execute`` into a PPM in ``folder`` (a directory QEMU can write and
    only winarm reads). One grab at a time: a stall check and a ``winarm screenshot`` never share the file."""

    def __init__(self, execute: Execute, folder: Path) -> None:
        self.execute = execute
        self.ppm = folder / "screen.ppm"
        self._taking = asyncio.Lock()

    async def grab(self) -> Frame:
        """The screen now. Raises :class:`RuntimeFailure` when QEMU refuses the screendump (no display) or is
        gone, or when what it wrote is not a screen (the message says which)."""
        async with self._taking:
            self.ppm.unlink(missing_ok=True)
            await self.execute("screendump", {"filename": str(self.ppm)})
            try:
                data = self.ppm.read_bytes()
            except OSError as error:
                raise RuntimeFailure(f"QEMU wrote no screen to {self.ppm}: {error.strerror}") from None
            finally:
                self.ppm.unlink(missing_ok=True)
        try:
            return parse_ppm(data)
        except ValueError as error:
            raise RuntimeFailure(f"QEMU's screendump is not a screen: {error}") from None

    async def save(self, png: Path) -> Frame:
        """Take the screen and write it to ``png`` as a PNG (atomically, mode 0644); returns the frame. Raises
        :class:`RuntimeFailure` as :meth:`grab` does, :class:`~winarm.errors.UserError` when ``png`` cannot be
        written (its folder missing, a directory, a full or read-only disk)."""
        frame = await self.grab()
        write_atomic(png, frame.png(), mode=0o644, what="screenshot")
        return frame
