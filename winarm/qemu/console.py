"""Reading the serial console: ANSI-free lines, and what they tell the phase clock.

The firmware writes terminal escapes (colours, cursor moves) around its messages; the guest writes
``WINARM-PHASE <name>`` markers. These functions are pure, so they are tested on captured text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from winarm.guest import EVENT_PREFIX, MARKER_PREFIX

_ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_MARKER = re.compile(rf"({MARKER_PREFIX}|{EVENT_PREFIX})\s+([A-Za-z0-9][A-Za-z0-9_.:-]{{0,63}})(?:\s+(.*))?$")
_BOOT = re.compile(r'BdsDxe: starting (Boot[0-9A-Fa-f]{4}) "(.*)" from (\S+)')


def strip_ansi(data: bytes) -> bytes:
    """Remove terminal escape sequences (CSI, OSC and two-byte escapes)."""
    return _ANSI.sub(b"", data)


class LineSplitter:
    """Feeds raw console bytes in, gets clean text lines out (split on CR or LF, escapes removed)."""

    def __init__(self, max_line: int = 4096) -> None:
        self._buffer = b""
        self._max = max_line

    def feed(self, data: bytes) -> list[str]:
        """Return the complete lines ``data`` finished; keep the unfinished rest for the next call.

        A line longer than ``max_line`` bytes is cut there, so a guest that never sends a newline cannot
        make the buffer grow without bound.
        """
        self._buffer += data
        parts = re.split(rb"\r\n|\r|\n", self._buffer)
        self._buffer = parts.pop()
        while len(self._buffer) > self._max:
            parts.append(self._buffer[: self._max])
            self._buffer = self._buffer[self._max :]
        return [strip_ansi(p).decode("utf-8", "replace").strip() for p in parts if p.strip()]

    def pending(self) -> str:
        """The text of the unfinished line (a prompt is often printed without a newline)."""
        return strip_ansi(self._buffer).decode("utf-8", "replace")


@dataclass(frozen=True)
class BootEntry:
    """A ``BdsDxe: starting Boot#### "description" from device-path`` line, classified."""

    entry: str
    description: str
    path: str
    device: str


def classify_device_path(path: str, description: str = "") -> str:
    """``cd`` for the install media on USB, ``network`` for PXE/HTTP, ``firmware-app`` for a firmware
    application (the UEFI shell, the setup menu), else ``disk``."""
    if "USB(" in path or "CDROM" in path.upper() and "USB" in description.upper():
        return "cd"
    if any(token in path for token in ("MAC(", "IPv4(", "IPv6(", "Uri(")):
        return "network"
    if "Fv(" in path or "FvFile(" in path:
        return "firmware-app"
    return "disk"


def parse_boot_entry(line: str) -> BootEntry | None:
    """The boot entry a firmware line announces, or None for any other line."""
    match = _BOOT.search(line)
    if not match:
        return None
    entry, description, path = match.groups()
    return BootEntry(entry, description, path, classify_device_path(path, description))


def parse_marker(line: str) -> tuple[str, str] | None:
    """``(name, rest)`` of a ``WINARM-PHASE <name> [rest]`` line (a phase boundary), or None."""
    found = _parse_guest_line(line)
    return (found[1], found[2]) if found and found[0] == MARKER_PREFIX else None


def parse_guest_event(line: str) -> tuple[str, str] | None:
    """``(name, rest)`` of a ``WINARM-EVENT <name> [rest]`` line (a detail, not a phase boundary), or None."""
    found = _parse_guest_line(line)
    return (found[1], found[2]) if found and found[0] == EVENT_PREFIX else None


def _parse_guest_line(line: str) -> tuple[str, str, str] | None:
    index = min((i for i in (line.find(MARKER_PREFIX), line.find(EVENT_PREFIX)) if i >= 0), default=-1)
    if index < 0:
        return None
    match = _MARKER.match(line[index:])
    if not match:
        return None
    return match.group(1), match.group(2), (match.group(3) or "").strip()
