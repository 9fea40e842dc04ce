"""Reading the serial console: ANSI-free lines, and what they tell the phase clock.

The firmware writes terminal escapes (colours, cursor moves) around its messages; the guest writes
``WINARM-PHASE <name>`` markers. What the firmware says about booting (a boot option started or refused, the
firmware giving up) is data, in ``firmware_lines.json`` beside this module. These functions are pure, so they
are tested on captured text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from winarm.guest import EVENT_PREFIX, MARKER_PREFIX

_ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_MARKER = re.compile(rf"({MARKER_PREFIX}|{EVENT_PREFIX})\s+([A-Za-z0-9][A-Za-z0-9_.:-]{{0,63}})(?:\s+(.*))?$")
FIRMWARE_LINES = Path(__file__).with_name("firmware_lines.json")
"""What the firmware prints about booting (see its ``about``)."""


@cache
def firmware_lines() -> dict[str, Any]:
    """The firmware's lines (:data:`FIRMWARE_LINES`), read once. Raises OSError or ValueError for a broken
    installation (the file ships with winarm)."""
    data: dict[str, Any] = json.loads(FIRMWARE_LINES.read_text(encoding="utf-8"))
    return data


@cache
def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(str(firmware_lines()[name]))


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
    """The boot entry a firmware line says it starts (``BdsDxe: starting Boot#### ...``), or None for any other
    line."""
    match = _pattern("boot_option").search(line)
    if not match or match["action"] != "starting":
        return None
    return BootEntry(match["entry"], match["description"], match["path"],
                     classify_device_path(match["path"], match["description"]))


@dataclass(frozen=True)
class BootFailure:
    """A ``BdsDxe: failed to load|start Boot#### "description" from path: Status`` line."""

    entry: BootEntry
    action: str
    """``load`` (the firmware would not load the loader) or ``start`` (it ran and returned an error)."""
    status: str
    """EDK2's text for the status: ``Not Found``, ``Access Denied``, ``Security Violation``, ``Time out``..."""

    @property
    def secure_boot_refusal(self) -> str | None:
        """Why Secure Boot refused the loader, when the status is one of Secure Boot's refusals; else None."""
        reasons: dict[str, str] = firmware_lines()["secure_boot_refusals"]
        return reasons.get(self.status)


def parse_boot_failure(line: str) -> BootFailure | None:
    """The boot option a firmware line says failed, or None for any other line."""
    match = _pattern("boot_failed").search(line)
    if not match:
        return None
    entry = BootEntry(match["entry"], match["description"], match["path"],
                      classify_device_path(match["path"], match["description"]))
    return BootFailure(entry, match["action"], match["status"].strip().rstrip("."))


@dataclass(frozen=True)
class GaveUp:
    """The firmware booted no OS in this boot and went on to its last resorts."""

    what: str
    """``no-bootable-option``, ``shell``, ``network`` or ``menu``."""
    says: str
    """What the firmware did, for a line: ``fell through to its UEFI shell``..."""


def parse_gave_up(line: str) -> GaveUp | None:
    """The last resort a firmware line shows (no bootable option, the shell's banner, a network boot), or None."""
    for item in firmware_lines()["gave_up"]:
        if item["text"] in line:
            return GaveUp(item["what"], item["says"])
    return None


def firmware_app(entry: BootEntry) -> GaveUp | None:
    """What the firmware starting ``entry`` means when it is one of its own applications (its shell, its menu):
    it has given up booting an OS; None for any other entry."""
    if entry.device != "firmware-app":
        return None
    for item in firmware_lines()["firmware_apps"]:
        if item["description"] in entry.description:
            return GaveUp(item["what"], item["says"])
    return None


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
