"""What QEMU sees of the guest without the guest's help: disk and ISO traffic, and the network driver coming up.

Windows for ARM64 has no COM port under QEMU, so this is most of what winarm can know of a Windows install
before the guest channel is up. :class:`TrafficWatch` asks QMP ``query-blockstats`` once a second for the bytes
read from the install ISO and written to and read from the system disk (QEMU's counters, since QEMU started),
keeps the last minute of samples, tells the stall watch of every sample with I/O, and during windowsPE turns
the bytes written into the image-apply progress (see :mod:`winarm.vm.progress`). It also records the first
``NIC_RX_FILTER_CHANGED`` of each boot: the network driver came up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from winarm.errors import RuntimeFailure
from winarm.guest import SETUP_PASSES
from winarm.timeline.events import EventKind
from winarm.vm.progress import STEP, ApplyProgress

if TYPE_CHECKING:
    from winarm.media.iso import InstallImage

__all__ = ["APPLY_PHASE", "DISK_DRIVE", "ISO_DRIVE", "SAMPLE_INTERVAL", "WINDOW", "Counters", "TrafficWatch",
           "read_counters"]

DISK_DRIVE = "disk0"
"""The system disk's drive id (``-drive id=disk0`` in :func:`winarm.qemu.argv.disk_args`)."""
ISO_DRIVE = "cd0"
"""The install ISO's drive id: the first medium of :func:`winarm.qemu.argv.media_args` (the answer medium,
``cd1``, comes after it and is unplugged once the install is done)."""
APPLY_PHASE = SETUP_PASSES[0]
"""The pass that applies the image: windowsPE."""
SAMPLE_INTERVAL = 1.0
"""Seconds between two samples: also the least time between two apply-progress events."""
WINDOW = 60.0
"""Seconds of samples kept in memory for :meth:`TrafficWatch.snapshot`."""
NIC_EVENT = "NIC_RX_FILTER_CHANGED"

Execute = Callable[[str, "dict[str, Any] | None"], Awaitable[Any]]
Tick = Callable[[], Awaitable[None]]
Recorder = Callable[..., Any]
"""``record(kind, **details)``: one event in the phase log (the supervisor's ``Reporter.record``)."""


@dataclass(frozen=True)
class Counters:
    """QEMU's byte counters for the two drives winarm watches, since QEMU started (None: the drive is absent)."""

    disk_written: int | None = None
    disk_read: int | None = None
    iso_read: int | None = None


def _bytes(stats: Any, key: str) -> int | None:
    value = stats.get(key) if isinstance(stats, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def read_counters(reply: Any, *, disk: str = DISK_DRIVE, iso: str = ISO_DRIVE) -> Counters | None:
    """The counters of drives ``disk`` and ``iso`` in a ``query-blockstats`` reply (a list of
    ``{"device", "stats": {"rd_bytes", "wr_bytes", ...}}``); None when the reply is not such a list. A drive not
    in the reply (unplugged, or never there) and a counter that is not a non-negative integer are None."""
    if not isinstance(reply, list):
        return None
    found: dict[str, Any] = {}
    for entry in reply:
        if isinstance(entry, dict) and entry.get("device") in (disk, iso):
            found[str(entry["device"])] = entry.get("stats")
    return Counters(disk_written=_bytes(found.get(disk), "wr_bytes"), disk_read=_bytes(found.get(disk), "rd_bytes"),
                    iso_read=_bytes(found.get(iso), "rd_bytes"))


@dataclass(frozen=True)
class _Sample:
    at: float
    disk_written: int
    disk_read: int
    iso_read: int


class TrafficWatch:
    """Samples block I/O, follows the image apply and the network driver of one run (see the module docstring).

    ``execute`` runs a QMP command (the machine's; it raises :class:`RuntimeFailure` when QEMU is gone, and
    :meth:`run` then ends quietly). ``record`` writes an event; ``on_activity`` hears ``"disk"`` for a sample
    with bytes read from or written to the system disk and ``"iso"`` for one with bytes read from the ISO.
    ``image`` is the install's image (None: no install, so no apply progress). ``clock`` and ``tick`` (the wait
    between samples) are injectable for tests. Never raises from its callbacks but what they raise.
    """

    def __init__(self, execute: Execute, *, record: Recorder, on_activity: Callable[[str], None] | None = None,
                 image: InstallImage | None = None, clock: Callable[[], float] = time.monotonic,
                 tick: Tick | None = None) -> None:
        self.execute = execute
        self.record = record
        self.on_activity = on_activity
        self.image = image
        self.clock = clock
        self.tick: Tick = tick if tick is not None else (lambda: asyncio.sleep(SAMPLE_INTERVAL))
        self.phase: str | None = None
        self.totals = Counters(0, 0, 0)
        """The latest counters seen (0 until the first sample: QEMU's counters start at 0)."""
        self.samples = 0
        self._window: deque[_Sample] = deque()
        self._last_io: float | None = None
        self._apply_base: Counters | None = None
        self._apply_open = False
        self._apply_closing = False
        self.apply: ApplyProgress | None = None
        """The latest apply progress of this run, kept after windowsPE ends; None before windowsPE."""
        self._recorded_step = 0
        self._recorded_at: float | None = None
        self._nic_up = False
        self._rearm: list[dict[str, Any] | None] = []

    # -- what the supervisor tells ------------------------------------------------------------------------------
    def set_phase(self, name: str) -> None:
        """The phase ``name`` began. Entering windowsPE (from any other phase) with an image known starts the apply
        progress from the bytes counted so far; another phase ends it after the next sample (which still counts
        for it: the last writes before the phase changed)."""
        entering = name == APPLY_PHASE and self.phase != APPLY_PHASE
        self.phase = name
        if entering and self.image is not None:
            self._apply_base = self.totals
            self._apply_open, self._apply_closing = True, False
            self._recorded_step = 0
            self.apply = ApplyProgress(0, self.image.total_bytes, 0, self.image.wim_bytes)
        elif name != APPLY_PHASE and self._apply_open:
            self._apply_closing = True

    def new_boot(self) -> None:
        """A RESET: the next ``NIC_RX_FILTER_CHANGED`` is the next boot's network driver, and the phase (so a
        windowsPE apply) ended with the boot it belonged to."""
        self._nic_up = False
        self.phase = None
        if self._apply_open:
            self._apply_closing = True

    def on_qmp_event(self, name: str, data: dict[str, Any]) -> None:
        """Every QMP event. ``NIC_RX_FILTER_CHANGED``: the guest's network driver programmed the virtio NIC's
        receive filter, which Linux's virtio-net driver does when the interface comes up, as NetKVM does on
        Windows; recorded as ``nic-up`` once a boot. QEMU sends the event once and then only after a
        ``query-rx-filter``, so that query is sent with the next sample (for the event's NIC by its ``name``,
        or for every NIC when the event names none), and the next boot's driver is seen too."""
        if name != NIC_EVENT:
            return
        nic = data.get("name")
        arguments = {"name": nic} if isinstance(nic, str) and nic else None
        if arguments not in self._rearm:
            self._rearm.append(arguments)
        if not self._nic_up:
            self._nic_up = True
            self.record(EventKind.NIC_UP, nic=nic if isinstance(nic, str) else None, path=data.get("path"))

    # -- sampling ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Sample now and then every :data:`SAMPLE_INTERVAL` until cancelled or QEMU is gone (ends quietly)."""
        while True:
            try:
                await self.sample()
            except RuntimeFailure:
                return
            await self.tick()

    async def sample(self) -> None:
        """Re-arm the NIC event if asked, then take one sample. Raises :class:`RuntimeFailure` when QEMU is gone
        (a refused ``query-rx-filter`` is ignored: the NIC may be gone while QEMU runs)."""
        while self._rearm:
            with contextlib.suppress(RuntimeFailure):
                await self.execute("query-rx-filter", self._rearm.pop(0))
        counters = read_counters(await self.execute("query-blockstats", None))
        if counters is not None:
            self.add(counters)

    def add(self, counters: Counters) -> None:
        """Account one sample of QEMU's counters taken now: the minute's window, activity, the apply progress."""
        now = self.clock()
        pairs = [(counters.disk_written, self.totals.disk_written), (counters.disk_read, self.totals.disk_read),
                 (counters.iso_read, self.totals.iso_read)]
        written, read, iso = (_delta(new, old) for new, old in pairs)
        self.totals = Counters(*(old if new is None else new for new, old in pairs))
        self.samples += 1
        self._window.append(_Sample(now, written, read, iso))
        while self._window[0].at <= now - WINDOW:
            self._window.popleft()
        if written or read:
            self._last_io = now
            self._tell("disk")
        if iso:
            self._tell("iso")
        if self._apply_open:
            self._follow_apply(now)

    def _tell(self, kind: str) -> None:
        if self.on_activity is not None:
            self.on_activity(kind)

    def _follow_apply(self, now: float) -> None:
        """Update the apply progress from the counters; record it at a new step, at most once a second."""
        assert self.image is not None and self._apply_base is not None
        base, totals = self._apply_base, self.totals
        self.apply = ApplyProgress(written=max(0, (totals.disk_written or 0) - (base.disk_written or 0)),
                                   total=self.image.total_bytes,
                                   read=max(0, (totals.iso_read or 0) - (base.iso_read or 0)),
                                   wim_bytes=self.image.wim_bytes)
        due = self._recorded_at is None or now - self._recorded_at >= SAMPLE_INTERVAL
        if self.apply.step > self._recorded_step and self.apply.step >= STEP and due:
            self._recorded_step = self.apply.step
            self._recorded_at = now
            self.record(EventKind.APPLY_PROGRESS, **self.apply.details())
        if self._apply_closing:
            self._apply_open = self._apply_closing = False

    # -- what it tells ----------------------------------------------------------------------------------------
    def progress_line(self) -> str | None:
        """``applying image: 41 % (3.9 of about 9.6 GB)`` while windowsPE applies the image (and after, the last
        figure), None before."""
        return self.apply.line() if self.apply is not None else None

    def snapshot(self) -> dict[str, Any]:
        """The last minute as JSON-able values: bytes written to and read from the disk and read from the ISO in
        the last :data:`WINDOW` seconds and in all (QEMU's counters), seconds since the last disk I/O (None:
        none yet), samples taken, whether this boot's network driver is up, and the apply progress (None before
        windowsPE): ``{"percent", "written", "total", "read", "wim_bytes", "line", "applying"}``."""
        now = self.clock()
        recent = [s for s in self._window if s.at > now - WINDOW]
        apply = None
        if self.apply is not None:
            apply = {**self.apply.details(), "line": self.apply.line(), "applying": self._apply_open}
        return {
            "window": WINDOW,
            "disk_written_window": sum(s.disk_written for s in recent),
            "disk_read_window": sum(s.disk_read for s in recent),
            "iso_read_window": sum(s.iso_read for s in recent),
            "disk_written": self.totals.disk_written or 0,
            "disk_read": self.totals.disk_read or 0,
            "iso_read": self.totals.iso_read or 0,
            "disk_idle": None if self._last_io is None else round(now - self._last_io, 3),
            "samples": self.samples,
            "nic_up": self._nic_up,
            "apply": apply,
        }


def _delta(new: int | None, old: int | None) -> int:
    """Bytes moved between two counter readings: 0 for an absent drive; a counter that went down belongs to a
    drive added again under the same id, whose counter started at 0."""
    if new is None:
        return 0
    if old is None or new < old:
        return new
    return new - old
