"""The system disk image: created once with qemu-img, grown on request, never shrunk, never half-written."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from .errors import RuntimeFailure
from .procs import spawn


async def _qemu_img(*args: str) -> str:
    """Run qemu-img with ``args``; return its stdout. Raises :class:`RuntimeFailure` with its stderr."""
    if shutil.which("qemu-img") is None:
        raise RuntimeFailure("qemu-img not found: install it (Debian: apt-get install qemu-utils)")
    proc = await spawn(["qemu-img", *args], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        raise RuntimeFailure(
            f"qemu-img {args[0]} failed: {message[-1] if message else 'status ' + str(proc.returncode)}"
        )
    return out.decode(errors="replace")


async def virtual_size(image: Path, image_format: str) -> int:
    """The size the guest sees, in bytes."""
    info = json.loads(await _qemu_img("info", "--output=json", "-f", image_format, str(image)))
    return int(info["virtual-size"])


async def ensure_image(image: Path, image_format: str, size: int) -> bool:
    """Make sure ``image`` exists with at least ``size`` bytes; return True when it was created now.

    A new image is written under a temporary name and renamed into place only when complete, so a failure
    (a full disk, say) leaves nothing behind. An existing image smaller than ``size`` is grown; a larger one
    is left as it is (configuration refuses to shrink before this is reached).
    """
    if image.exists():
        if await virtual_size(image, image_format) < size:
            await _qemu_img("resize", "-f", image_format, str(image), str(size))
        return False
    partial = image.with_name(image.name + ".partial")
    try:
        await _qemu_img("create", "-q", "-f", image_format, str(partial), str(size))
        os.chmod(partial, 0o600)
        os.replace(partial, image)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return True
