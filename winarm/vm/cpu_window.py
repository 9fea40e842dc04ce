"""The QEMU process's CPU use over the last minute, for ``winarm status`` ("is it hung?")."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import psutil

WINDOW = 60.0
EVERY = 5.0


def process_cpu_seconds(pid: int) -> Callable[[], float | None]:
    """A reader of ``pid``'s user and system CPU seconds (children excluded); None once the process is gone."""
    def read() -> float | None:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.Error, OSError):
            return None
        return float(times.user + times.system)
    return read


class CpuWindow:
    """Samples of CPU seconds; :meth:`percent` is the use since the oldest sample of the last minute, in percent
    of one core (a busy guest with two vCPUs shows up to 200 %)."""

    def __init__(self, read: Callable[[], float | None], *, clock: Callable[[], float] = time.monotonic,
                 window: float = WINDOW) -> None:
        self.read = read
        self.clock = clock
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()

    def sample(self) -> None:
        """Take one sample and forget those older than the window (keeping one at its edge)."""
        seconds = self.read()
        if seconds is None:
            return
        now = self.clock()
        self._samples.append((now, seconds))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def percent(self) -> float | None:
        """CPU use over the samples kept, or None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return round(100.0 * (c1 - c0) / (t1 - t0), 1) if t1 > t0 else None

    async def run(self, every: float = EVERY) -> None:
        """Sample every ``every`` seconds until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(every)
