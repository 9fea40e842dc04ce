"""Is the install hung? The stall watch: activity in, one ``stalled`` event (a line and a screenshot) out.

Activity is what the supervisor's parts hear (:meth:`StallWatch.note`: disk I/O, a guest report, a console line)
plus what the watch sees itself: a change of the screen, hashed every :data:`SCREEN_INTERVAL` seconds (more
often for a short timeout). While armed, a VM that shows none of it for ``timeout`` seconds is stalled: the
watch records :attr:`EventKind.STALLED`, says one line naming the last thing that happened, saves the screen
as ``stall-<n>.png`` in its folder (:attr:`EventKind.SCREENSHOT`), and records :attr:`EventKind.STALL_ENDED`
when activity returns. A timeout of 0 turns the stall detection off (the screen is still watched for status).

Nothing is done about a stall: Setup under TCG can be slow rather than hung, and only a person can tell.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from winarm.errors import RuntimeFailure, UserError
from winarm.qemu.screen import Screen
from winarm.timeline.events import EventKind

SCREEN_INTERVAL = 15.0
"""Seconds between two looks at the screen (a screendump costs QEMU about 4 ms)."""
RECENT = 60.0
"""The window of "the last minute" in :meth:`StallWatch.snapshot`."""
NOTHING_YET = "nothing yet"
MAX_DETAIL = 60
"""Characters of a note's detail kept (a console line is the guest's text: printable ASCII only)."""

Record = Callable[..., None]
"""``record(kind, **details)``: the supervisor's reporter."""


class StallWatch:
    """Watches one run for a stall (see the module docstring). ``clock`` gives seconds on the phase log's clock
    (``EventLog.now``); ``folder`` is where stall screenshots go (beside the phase log)."""

    def __init__(self, screen: Screen, *, timeout: float, folder: Path, record: Record, say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.screen = screen
        self.timeout = timeout
        self.folder = folder
        self.record = record
        self.say = say
        self.clock = clock
        self.interval = min(SCREEN_INTERVAL, max(1.0, timeout / 4)) if timeout > 0 else SCREEN_INTERVAL
        """Seconds between two checks: a stall is told at most this late."""
        self.armed = False
        self._armed = asyncio.Event()
        self.last = (NOTHING_YET, clock())
        """What happened last and when."""
        self._quiet_from = self.last[1]
        self.stalled_since: float | None = None
        self.stalls = 0
        self._digest: str | None = None
        self._changes: deque[float] = deque()

    # -- what the supervisor does --------------------------------------------------------------------------------
    def arm(self) -> None:
        """Start watching (the VM runs). Time spent disarmed is not counted as quiet."""
        if not self.armed:
            self.armed = True
            self._armed.set()
            self._quiet_from = self.clock()
            if self.last[0] == NOTHING_YET:
                self.last = ("the VM started running", self._quiet_from)

    def disarm(self) -> None:
        """Stop watching (the desktop is ready, the VM is paused or stopping). A stall already told stays told
        until activity ends it."""
        self.armed = False
        self._armed.clear()

    def note(self, kind: str, detail: str = "") -> None:
        """Something happened: ``kind`` (``disk I/O``, ``guest report``, ``console line``...) with an optional
        ``detail`` (untrusted text: cut to printable ASCII). Ends a stall (:attr:`EventKind.STALL_ENDED`)."""
        what = kind
        cleaned = "".join(c for c in detail if " " <= c <= "~")[:MAX_DETAIL].strip()
        if cleaned:
            what = f"{kind} {cleaned!r}"
        now = self.clock()
        self.last = (what, now)
        self._quiet_from = now
        if self.stalled_since is not None:
            quiet = now - self.stalled_since
            self.stalled_since = None
            self.record(EventKind.STALL_ENDED, by=what, stalled_for=round(quiet, 1))
            self.say(f"stall ended: {what} after {quiet:.0f} s stalled")

    async def screenshot(self, png: Path, *, reason: str = "requested") -> dict[str, Any]:
        """Save the screen to ``png`` and record :attr:`EventKind.SCREENSHOT`; the control socket's answer:
        ``{"ok": True, "path", "width", "height"}`` or ``{"error": one line}`` (no display, QEMU gone, the file
        not writable). Never raises for those."""
        try:
            frame = await self.screen.save(png)
        except (RuntimeFailure, UserError) as error:
            return {"error": str(error)}
        self.record(EventKind.SCREENSHOT, path=str(png), reason=reason, width=frame.width, height=frame.height)
        return {"ok": True, "path": str(png), "width": frame.width, "height": frame.height}

    # -- the watch ---------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Check every :attr:`interval` seconds while armed (the first an interval after arming), until
        cancelled. Never raises for QEMU's failures (a screen that cannot be taken is no activity; the supervisor
        tells QEMU's end)."""
        while True:
            await self._armed.wait()
            await asyncio.sleep(self.interval)  # a period, not a synchronisation: the screen is polled
            await self.check()

    async def check(self) -> None:
        """One look: a changed screen is activity; then, armed and quiet for the timeout, a stall is told."""
        if not self.armed:
            return
        try:
            digest: str | None = (await self.screen.grab()).digest
        except RuntimeFailure:
            digest = None
        if digest is not None:
            if self._digest is not None and digest != self._digest:
                self._forget_before(self.clock() - RECENT)
                self._changes.append(self.clock())
                self.note("screen change")
            self._digest = digest
        now = self.clock()
        if self.timeout > 0 and self.stalled_since is None and now - self._quiet_from >= self.timeout:
            await self._stalled(now)

    async def _stalled(self, now: float) -> None:
        """Tell the stall: the event, the screenshot, the one line."""
        self.stalled_since = now
        self.stalls += 1
        quiet = now - self._quiet_from
        what, when = self.last
        self.record(EventKind.STALLED, quiet=round(quiet, 1), last=what, last_at=round(when, 1),
                    timeout=self.timeout)
        png = self._next_png()
        saved = await self.screenshot(png, reason="stalled")
        shot = f"screenshot {png}" if saved.get("ok") else f"no screenshot: {saved.get('error')}"
        self.say(f"stalled: no disk I/O, screen change or guest report for {quiet:.0f} s "
                 f"(last: {what} at {when:.1f} s); {shot}")

    def _next_png(self) -> Path:
        """``stall-<n>.png`` in the folder, the first ``n`` not taken (an earlier run's are kept)."""
        n = self.stalls
        while (self.folder / f"stall-{n}.png").exists():
            n += 1
        return self.folder / f"stall-{n}.png"

    def snapshot(self) -> dict[str, Any]:
        """For status (JSON-able): ``armed``, ``timeout``, ``stalled``, ``stalled_since``, ``stalls``,
        ``last_activity`` (what), ``last_activity_at``, ``seconds_since_activity``,
        ``screen_changes_last_minute``."""
        now = self.clock()
        self._forget_before(now - RECENT)
        what, when = self.last
        return {
            "armed": self.armed, "timeout": self.timeout, "stalled": self.stalled_since is not None,
            "stalled_since": None if self.stalled_since is None else round(self.stalled_since, 1),
            "stalls": self.stalls, "last_activity": what, "last_activity_at": round(when, 1),
            "seconds_since_activity": round(now - when, 1), "screen_changes_last_minute": len(self._changes),
        }

    def _forget_before(self, since: float) -> None:
        """Drop the screen changes older than ``since`` (the count stays bounded)."""
        while self._changes and self._changes[0] < since:
            self._changes.popleft()
