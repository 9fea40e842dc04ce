"""The arithmetic of image-apply progress: a percentage of the image's expanded size, its steps, and one line.

Setup's windowsPE pass applies the chosen edition of ``install.wim`` to the system disk, writing about the
edition's ``TOTALBYTES`` (from the WIM XML). The bytes written to the disk since windowsPE began, against that
size, are the progress: an estimate (Setup also writes logs and the boot files, and compression on the disk
makes a file smaller), so it is capped at 100 % and the line says "about". Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["STEP", "ApplyProgress", "apply_percent", "format_size_pair", "progress_line"]

STEP = 5
"""Progress is recorded each time it crosses a multiple of this many percent (and so at 100 %)."""
GB = 1000**3
MB = 1000**2


def apply_percent(written: int, total: int) -> int:
    """The whole percent of ``total`` that ``written`` bytes make, rounded down, within 0..100.

    Raises :class:`ValueError` when ``total`` is not positive."""
    if total <= 0:
        raise ValueError(f"the image's size {total} is not positive")
    return max(0, min(100, written * 100 // total))


def format_size_pair(part: int, total: int) -> str:
    """``3.9 of about 9.6 GB`` (one decimal, GB from 1 GB of ``total`` on), else ``52 of about 124 MB``."""
    if total >= GB:
        return f"{part / GB:.1f} of about {total / GB:.1f} GB"
    return f"{round(part / MB)} of about {round(total / MB)} MB"


def progress_line(written: int, total: int) -> str:
    """``applying image: 41 % (3.9 of about 9.6 GB)``: the percent capped at 100, the bytes as written.

    Raises :class:`ValueError` when ``total`` is not positive."""
    return f"applying image: {apply_percent(written, total)} % ({format_size_pair(max(0, written), total)})"


@dataclass(frozen=True)
class ApplyProgress:
    """How far the apply has come: ``written`` bytes to the disk of the image's ``total`` (TOTALBYTES),
    ``read`` bytes from the ISO of the image file's ``wim_bytes``, since windowsPE began."""

    written: int
    total: int
    read: int
    wim_bytes: int

    @property
    def percent(self) -> int:
        """See :func:`apply_percent`."""
        return apply_percent(self.written, self.total)

    @property
    def step(self) -> int:
        """The last multiple of :data:`STEP` the percent has reached."""
        return self.percent // STEP * STEP

    def line(self) -> str:
        """See :func:`progress_line`."""
        return progress_line(self.written, self.total)

    def details(self) -> dict[str, Any]:
        """The fields of an ``apply-progress`` event: percent, written, total, read, wim_bytes."""
        return {"percent": self.percent, "written": self.written, "total": self.total, "read": self.read,
                "wim_bytes": self.wim_bytes}
