"""What the guest's reports over the guest channel mean: events in the phase log, phases, and lines.

A report is already checked when it gets here (:mod:`winarm.vm.guest_channel` accepts only known names and
bounded ``KEY VALUE`` bodies). ``first-logon`` and ``desktop-ready`` start phases of their name (``source: guest``);
every report confirms the inferred Setup pass of the boot it arrives in (see :mod:`winarm.timeline.phases`);
``drivers`` carries pnputil's exit code for each driver, said in one line with the failures named; ``product-key``
carries ``slmgr.vbs /ipk``'s exit code (never the key), said as applied or refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any, Protocol

from winarm.guest import (
    DESKTOP_READY,
    PHASE_REPORTS,
    REPORT_DRIVERS,
    REPORT_FIRST_LOGON,
    REPORT_HOOK,
    REPORT_PRODUCT_KEY,
    REPORT_SHUTDOWN,
)
from winarm.timeline.events import EventKind
from winarm.vm.report import Reporter
from winarm.vm.report_body import Report, drivers_results, hook_results


class MarkerSink(Protocol):
    """Where a report that starts a phase goes (:class:`winarm.vm.install_watch.InstallWatch`)."""

    async def on_guest_marker(self, name: str, rest: str, *, source: str) -> None: ...


def report_details(report: Report) -> dict[str, Any]:
    """The event details of ``report``: for ``drivers`` its pass and each driver's folder, code and whether it
    failed; for ``hook`` each hook's name, code and whether it failed; else the body's lines as ``[key, value]``
    pairs."""
    if report.name == REPORT_DRIVERS:
        drivers = [asdict(result) for result in drivers_results(report)]
        return {"pass": report.first("pass"), "drivers": drivers, "failed": sum(1 for d in drivers if not d["ok"])}
    if report.name == REPORT_HOOK:
        return {"hooks": [asdict(result) for result in hook_results(report)]}
    if report.name == REPORT_PRODUCT_KEY:
        return product_key_details(report)
    return {"body": [list(item) for item in report.items]} if report.items else {}


def product_key_details(report: Report) -> dict[str, Any]:
    """A ``product-key`` report's details: ``code`` (slmgr's exit code as a number, None when the body's ``code``
    is not one, as with ``code missing``: the script found no key file) and ``ok`` (code 0)."""
    text = (report.first("code") or "").strip()
    code = int(text) if re.fullmatch(r"-?[0-9]{1,10}", text) else None
    return {"code": code, "ok": code == 0}


def _exit_code(code: int) -> str:
    """An exit code as Windows tools show it: an HRESULT (negative, or past 0x7fffffff) in hex, else decimal."""
    if code < 0 or code > 0x7FFFFFFF:
        return f"0x{code & 0xFFFFFFFF:08X}"
    return str(code)


def product_key_line(details: dict[str, Any]) -> str:
    """``product key: applied``, ``product key: refused (code N)``, or not applied when the script found no key."""
    if details.get("ok"):
        return "product key: applied"
    if details.get("code") is None:
        return "product key: not applied (the key's file was not found on the answer medium)"
    return f"product key: refused (code {_exit_code(details['code'])})"


def report_line(name: str, details: dict[str, Any]) -> str:
    """What the person watching reads when the guest reports ``name``."""
    if name == REPORT_PRODUCT_KEY:
        return product_key_line(details)
    if name == REPORT_DRIVERS:
        drivers = details["drivers"]
        failed = [f"{d['folder']} (pnputil exit {d['code']})" for d in drivers if not d["ok"]]
        where = f" in {details['pass']}" if details.get("pass") else ""
        outcome = f"{len(drivers) - len(failed)} of {len(drivers)} installed"
        return f"guest: driver step ended{where}: {outcome}" + (f"; FAILED: {', '.join(failed)}" if failed else "")
    if name == REPORT_HOOK:
        return "guest: hooks ran: " + ", ".join(
            f"{h['name']} {'ok' if h['ok'] else 'FAILED (exit ' + str(h['code']) + ')'}" for h in details["hooks"])
    if name == REPORT_SHUTDOWN:
        return "guest: Windows was asked to shut down (not by winarm)"
    if name == DESKTOP_READY:
        return "guest: the desktop is ready (reported over the guest channel)"
    return f"guest: {name} (reported over the guest channel)"


def desktop_ready_missing(events: list[dict[str, Any]]) -> bool:
    """Whether this run reached Setup's last pass (oobeSystem, or the first logon) and no ``desktop-ready``
    came after it: the install probably ended, and winarm could not hear it."""
    last_pass = None
    for index, event in enumerate(events):
        if event.get("kind") == EventKind.MARKER and event.get("name") in ("oobeSystem", REPORT_FIRST_LOGON):
            last_pass = index
    if last_pass is None:
        return False
    return not any(e.get("kind") == EventKind.MARKER and e.get("name") == DESKTOP_READY for e in events[last_pass:])


def missing_line(channel_on: bool, accepted: int) -> str:
    """The line that says desktop-ready never came, and the likely reason."""
    if not channel_on:
        why = "the guest channel is off (--no-guest-channel), so Windows cannot report"
    elif accepted == 0:
        why = ("no report reached winarm over the guest channel (no network driver in the guest, or its network "
               "blocked)")
    else:
        why = f"the guest reported {accepted} times, but not desktop-ready"
    return f"desktop-ready was never reported: {why}; the phases marked boot-order are inferred"


class GuestReports:
    """Turns accepted and refused reports into events, phases and lines, and counts them for ``status``."""

    def __init__(self, reporter: Reporter, markers: MarkerSink,
                 spawn: Callable[[Coroutine[Any, Any, None]], object]) -> None:
        self.reporter = reporter
        self.markers = markers
        self.spawn = spawn
        self.accepted = 0
        self.refused = 0
        self.last: str | None = None
        self.listeners: list[Callable[[str], None]] = []
        """Hear the name of each accepted report (the stall watch takes it as activity)."""

    def on_report(self, report: Report) -> None:
        """Record ``report`` (EventKind.REPORT), say it, and start its phase when it names one."""
        details = report_details(report)
        self.accepted += 1
        self.last = report.name
        self.reporter.record(EventKind.REPORT, name=report.name, **details)
        self.reporter.say(report_line(report.name, details))
        for listener in self.listeners:
            listener(report.name)
        if report.name in PHASE_REPORTS:
            self.spawn(self.markers.on_guest_marker(report.name, "", source="guest"))

    def on_refused(self, reason: str, details: dict[str, Any]) -> None:
        """Record a refusal (the channel already keeps a flood of them down to a summary) and say it."""
        self.refused += int(details.get("count", 1))
        self.reporter.record(EventKind.REPORT_REFUSED, reason=reason, **details)
        self.reporter.say(f"guest channel: refused: {reason}")

    def snapshot(self) -> dict[str, Any]:
        """For ``status``: reports accepted and refused, and the last one's name."""
        return {"accepted": self.accepted, "refused": self.refused, "last": self.last}
