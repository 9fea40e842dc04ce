"""The system disk image: created once with qemu-img, grown on request, never shrunk, never half-written.

Growing the image gives Windows unallocated space after C: (winarm's layout puts nothing after it); the answer
file's extend task (:data:`~winarm.answer.commands.EXTEND_TASK`) extends C: over it at Windows' next start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from winarm.config.vm import format_size
from winarm.errors import RuntimeFailure


def _qemu_img(*args: str) -> None:
    """Run qemu-img with ``args``. Raises :class:`RuntimeFailure` with the last line of its stderr."""
    if shutil.which("qemu-img") is None:
        raise RuntimeFailure("qemu-img not found: install it (Debian: apt-get install qemu-utils)")
    result = subprocess.run(["qemu-img", *args], capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeFailure(f"qemu-img {args[0]} failed: {message[-1] if message else result.returncode}")


def virtual_size(image: Path, image_format: str) -> int:
    """The size the guest sees, in bytes: from the qcow2 header (big-endian u64 at offset 24), or the length
    of a raw file. Raises :class:`RuntimeFailure` when a qcow2 image has no qcow2 header."""
    if image_format == "raw":
        return image.stat().st_size
    with image.open("rb") as handle:
        header = handle.read(32)
    if len(header) < 32 or header[:4] != b"QFI\xfb":
        raise RuntimeFailure(f"{image} is not a qcow2 image: move it away or use --disk-format raw")
    return int.from_bytes(header[24:32], "big")


def growth(image: Path, image_format: str, size: int) -> int | None:
    """The image's size now when :func:`ensure_image` would grow it to ``size``; None when it does not exist or is
    large enough. Raises :class:`RuntimeFailure` when a qcow2 image has no qcow2 header."""
    if not image.exists():
        return None
    before = virtual_size(image, image_format)
    return before if before < size else None


def grown_line(before: int, after: int) -> str:
    """The line that tells the user the disk grew and what Windows does with the space."""
    return (f"disk grown from {format_size(before)} to {format_size(after)}: C: is extended over it at Windows' "
            "next start (the WinarmExtendC task winarm's install registered)")


def ensure_image(image: Path, image_format: str, size: int, *, allocate: bool = False) -> bool:
    """Make sure ``image`` exists with at least ``size`` bytes; return True when it was created now.

    The image is sparse unless ``allocate``: then its space (new, or added by growing) is reserved on the
    host's disk now, with fallocate, so the guest can never find the host full.

    A new image is written under a temporary name and renamed into place only when complete, so a failure
    (a full disk, say) leaves nothing behind. An existing image smaller than ``size`` is grown; a larger one
    is left as it is (configuration refuses to shrink before this is reached).
    """
    if image.exists():
        if virtual_size(image, image_format) < size:
            prealloc = ["--preallocation=falloc"] if allocate else []
            _qemu_img("resize", "-q", *prealloc, "-f", image_format, str(image), str(size))
        return False
    partial = image.with_name(image.name + ".partial")
    try:
        prealloc = ["-o", "preallocation=falloc"] if allocate else []
        _qemu_img("create", "-q", "-f", image_format, *prealloc, str(partial), str(size))
        os.chmod(partial, 0o600)
        os.replace(partial, image)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return True
