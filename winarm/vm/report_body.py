"""What a guest report says: its name and body, read strictly, and the results the known reports carry.

A body is ASCII ``KEY VALUE`` lines (see :data:`winarm.guest.REPORT_MAX_BODY`): KEY 1-64 of ``[A-Za-z0-9_.-]``,
one space, VALUE printable ASCII up to 200 characters (possibly empty, possibly with spaces); lines end in LF or
CRLF, blank lines are skipped, at most 64 lines. Anything else is refused whole: the guest is untrusted, so
nothing half-read ever reaches the phase log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from winarm.guest import PNPUTIL_SUCCESS, REPORT_DRIVERS, REPORT_HOOK, REPORT_MAX_BODY

MAX_LINES = 64
MAX_VALUE = 200
KEY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
VALUE_RE = re.compile(rf"[\x20-\x7e]{{0,{MAX_VALUE}}}")
RESULT_RE = re.compile(r"(\S{1,128}) (-?[0-9]{1,10})")
"""A ``<what> <exit code>`` value, as ``driver`` and ``hook`` lines carry them."""


class BodyError(ValueError):
    """A body that is not ``KEY VALUE`` lines; the message says what is wrong (without echoing the body)."""


@dataclass(frozen=True)
class Report:
    """One accepted report: its name (one of :data:`winarm.guest.REPORT_NAMES`) and its body's lines in order."""

    name: str
    items: tuple[tuple[str, str], ...] = ()

    def values(self, key: str) -> list[str]:
        """Every value of ``key``, in the order sent; empty when there is none."""
        return [value for item_key, value in self.items if item_key == key]

    def first(self, key: str) -> str | None:
        """The first value of ``key``, or None."""
        found = self.values(key)
        return found[0] if found else None

    def as_json(self) -> dict[str, Any]:
        """The report as event details: ``{"name": ..., "body": [[key, value], ...]}``."""
        return {"name": self.name, "body": [list(item) for item in self.items]}


@dataclass(frozen=True)
class DriverResult:
    """One ``driver <folder> <pnputil exit code>`` line: ok when the code is one of
    :data:`~winarm.guest.PNPUTIL_SUCCESS`."""

    folder: str
    code: int
    ok: bool


@dataclass(frozen=True)
class HookResult:
    """One ``hook <name> <exit code>`` line: ok when the code is 0."""

    name: str
    code: int
    ok: bool


def parse_body(data: bytes) -> tuple[tuple[str, str], ...]:
    """The ``(key, value)`` lines of a report body. Raises :class:`BodyError` for a body over
    :data:`~winarm.guest.REPORT_MAX_BODY` bytes, one that is not ASCII, a bad key or value, or over
    :data:`MAX_LINES` lines."""
    if len(data) > REPORT_MAX_BODY:
        raise BodyError(f"body of {len(data)} bytes is over {REPORT_MAX_BODY}")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BodyError("body is not ASCII") from None
    items: list[tuple[str, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line:
            continue
        key, _, value = line.partition(" ")
        if not KEY_RE.fullmatch(key):
            raise BodyError(f"line {number}: the key is not 1-64 letters, digits, '_', '.' or '-'")
        if not VALUE_RE.fullmatch(value):
            raise BodyError(f"line {number}: the value is not printable ASCII of at most {MAX_VALUE} characters")
        items.append((key, value))
        if len(items) > MAX_LINES:
            raise BodyError(f"body has more than {MAX_LINES} lines")
    return tuple(items)


def exit_codes(report: Report, key: str) -> list[tuple[str, int]]:
    """The ``key <what> <exit code>`` lines of ``report`` as ``(what, code)``, in order. Values that are not
    ``<what> <code>`` are left out (the guest's word is never trusted to parse)."""
    found = []
    for value in report.values(key):
        match = RESULT_RE.fullmatch(value)
        if match:
            found.append((match.group(1), int(match.group(2))))
    return found


def drivers_results(report: Report) -> list[DriverResult]:
    """The ``drivers`` report's driver lines, in order; empty for any other report."""
    if report.name != REPORT_DRIVERS:
        return []
    return [DriverResult(folder, code, code in PNPUTIL_SUCCESS) for folder, code in exit_codes(report, "driver")]


def hook_results(report: Report) -> list[HookResult]:
    """The ``hook`` report's hook lines, in order; empty for any other report."""
    if report.name != REPORT_HOOK:
        return []
    return [HookResult(name, code, code == 0) for name, code in exit_codes(report, "hook")]
