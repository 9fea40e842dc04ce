"""The screen: QEMU's PPM read and refused, the hash, the PNG Pillow reads back, and the screendump through an
injected QMP runner. QEMU cannot run in the unit tier: a fake runner writes the PPM QEMU 7.2 would write."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from winarm.errors import RuntimeFailure, UserError
from winarm.qemu.screen import Frame, Screen, parse_ppm


def ppm(width: int, height: int, pixels: bytes) -> bytes:
    """A PPM as QEMU's screendump writes it."""
    return f"P6\n{width} {height}\n255\n".encode() + pixels


def gradient(width: int = 8, height: int = 4) -> bytes:
    return bytes((x * 31 + y * 7 + c * 50) % 256 for y in range(height) for x in range(width) for c in range(3))


class FakeQemu:
    """Stands in for QEMU's screendump: writes ``data`` where it is told (or refuses, or writes nothing)."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self.refuse: str | None = None
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.calls.append((command, arguments))
        if self.refuse is not None:
            raise RuntimeFailure(self.refuse)
        assert arguments is not None
        if self.data is not None:
            Path(arguments["filename"]).write_bytes(self.data)
        return {}


def test_a_ppm_gives_its_size_and_pixels() -> None:
    pixels = gradient()
    frame = parse_ppm(ppm(8, 4, pixels))
    assert (frame.width, frame.height, frame.pixels) == (8, 4, pixels)
    assert parse_ppm(b"P6 8\t4\r\n255 " + pixels).pixels == pixels, "any white space between the fields"


@pytest.mark.parametrize("data, reason", [
    (b"P3\n1 1\n255\n0 0 0\n", "not a binary PPM"),
    (b"\x89PNG\r\n\x1a\n", "not a binary PPM"),
    (b"P6\n1 1\n65535\n" + bytes(6), "maxval 65535"),
    (b"P6\n0 5\n255\n", "out of range"),
    (b"P6\n100000 100000\n255\n", "out of range"),
    (b"P6\n2 2\n255\n" + bytes(11), "holds 11 bytes of pixels, not 12"),
    (b"P6\n2 2\n255\n" + bytes(13), "holds 13 bytes"),
])
def test_what_is_not_a_screen_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_ppm(data)


def test_the_hash_tells_equal_screens_from_changed_ones() -> None:
    pixels = gradient()
    same = Frame(8, 4, bytes(pixels))
    assert Frame(8, 4, pixels).digest == same.digest
    one_pixel = bytearray(pixels)
    one_pixel[-1] ^= 1
    assert Frame(8, 4, bytes(one_pixel)).digest != same.digest, "one bit of one pixel"
    assert Frame(4, 8, pixels).digest != same.digest, "the same bytes at another size"


def test_the_png_holds_the_ppm_pixels() -> None:
    pixels = gradient(13, 7)
    data = Frame(13, 7, pixels).png()
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size == (13, 7) and image.mode == "RGB"
        assert image.tobytes() == pixels


def test_a_grab_runs_screendump_and_leaves_no_ppm(tmp_path: Path) -> None:
    pixels = gradient()
    qemu = FakeQemu(ppm(8, 4, pixels))
    screen = Screen(qemu.execute, tmp_path)
    frame = asyncio.run(screen.grab())
    assert frame.pixels == pixels
    assert qemu.calls == [("screendump", {"filename": str(tmp_path / "screen.ppm")})]
    assert list(tmp_path.iterdir()) == []


def test_a_grab_that_fails_says_why_in_one_line(tmp_path: Path) -> None:
    qemu = FakeQemu(None)
    screen = Screen(qemu.execute, tmp_path)
    with pytest.raises(RuntimeFailure, match="^QEMU wrote no screen to .*screen.ppm: No such file"):
        asyncio.run(screen.grab())
    qemu.data = b"garbage"
    with pytest.raises(RuntimeFailure, match="^QEMU's screendump is not a screen: not a binary PPM"):
        asyncio.run(screen.grab())
    assert list(tmp_path.iterdir()) == [], "a bad PPM is deleted too"
    qemu.refuse = "QEMU's monitor is gone (screendump): EOFError"
    with pytest.raises(RuntimeFailure, match="monitor is gone"):
        asyncio.run(screen.grab())


def test_save_writes_a_png_or_names_the_file_it_cannot_write(tmp_path: Path) -> None:
    pixels = gradient()
    screen = Screen(FakeQemu(ppm(8, 4, pixels)).execute, tmp_path)
    out = tmp_path / "shot.png"
    asyncio.run(screen.save(out))
    with Image.open(out) as image:
        assert image.tobytes() == pixels
    assert out.stat().st_mode & 0o777 == 0o644
    with pytest.raises(UserError, match="^screenshot .*nowhere/shot.png.*does not exist"):
        asyncio.run(screen.save(tmp_path / "nowhere" / "shot.png"))


def test_two_grabs_at_once_take_turns(tmp_path: Path) -> None:
    """A stall check and a ``winarm screenshot`` at the same moment share the PPM's name: one waits."""
    inside = 0
    most = 0

    async def slow_execute(command: str, arguments: dict[str, Any] | None = None) -> Any:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0)  # hand the loop to the other grab while this one is "in QEMU"
        assert arguments is not None
        Path(arguments["filename"]).write_bytes(ppm(1, 1, b"abc"))
        inside -= 1

    async def both() -> list[Frame]:
        screen = Screen(slow_execute, tmp_path)
        return list(await asyncio.gather(screen.grab(), screen.grab()))

    frames = asyncio.run(both())
    assert [f.pixels for f in frames] == [b"abc", b"abc"] and most == 1
