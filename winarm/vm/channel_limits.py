"""The guest channel's brakes: a token bucket for how often a guest may report, and a refusal log that a flood
cannot flood.

Both read time from an injected ``clock`` (seconds, monotonic), so tests drive time instead of sleeping.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


class TokenBucket:
    """``burst`` requests at once, then ``rate`` a second: :meth:`take` answers whether one more may go now."""

    def __init__(self, burst: int, rate: float, clock: Clock) -> None:
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def take(self) -> bool:
        """Take a token when there is one (True); False when the bucket is empty. Time going backwards refills
        nothing."""
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


SUPPRESSED = "refusals suppressed"
"""The reason of a summary of refusals not passed on one by one; details ``count`` and ``reasons``."""


class RefusalLog:
    """Passes refusals on to ``on_refused`` without letting a flood through.

    The first ``in_full`` refusals go through one by one; after them refusals are counted, and a summary
    (reason :data:`SUPPRESSED`, details ``count``: how many, ``reasons``: how many of each) goes out at the first
    refusal ``interval`` seconds or more after counting began, so at most one summary per ``interval``. A quiet
    spell of ``interval`` seconds with no refusal ends the flood: what was counted is summarised, and the next
    refusals go through one by one again. :meth:`flush` summarises what is counted now (at close).
    """

    def __init__(self, on_refused: Callable[[str, dict[str, Any]], None], clock: Clock, *, in_full: int = 10,
                 interval: float = 10.0) -> None:
        self.on_refused = on_refused
        self.clock = clock
        self.in_full = in_full
        self.interval = interval
        self.total = 0
        self._passed = 0
        self._last: float | None = None
        self._counting_since: float | None = None
        self._counted: Counter[str] = Counter()

    def refuse(self, reason: str, details: dict[str, Any]) -> None:
        """Record one refusal: pass it on, or count it and perhaps pass on a summary."""
        now = self.clock()
        self.total += 1
        if self._last is not None and now - self._last >= self.interval:
            self.flush()
            self._passed = 0
        self._last = now
        if self._passed < self.in_full:
            self._passed += 1
            self.on_refused(reason, details)
            return
        self._counted[reason] += 1
        if self._counting_since is None:
            self._counting_since = now
        elif now - self._counting_since >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Pass on a summary of the refusals counted and not yet told, if any."""
        if self._counted:
            self.on_refused(SUPPRESSED, {"count": sum(self._counted.values()), "reasons": dict(self._counted)})
        self._counted.clear()
        self._counting_since = None
