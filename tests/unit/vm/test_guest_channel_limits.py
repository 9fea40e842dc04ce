"""The channel's brakes on their own, with a clock the test moves: the token bucket's burst and refill, and the
refusal log's first ten in full, then at most one summary per 10 s, a quiet spell starting over."""

from __future__ import annotations

from typing import Any

from winarm.vm.channel_limits import SUPPRESSED, RefusalLog, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_gives_its_burst_then_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(20, 2.0, clock)
    assert [bucket.take() for _ in range(25)] == [True] * 20 + [False] * 5
    clock.now += 0.4
    assert not bucket.take(), "0.8 of a token is not one"
    clock.now += 0.1
    assert bucket.take() and not bucket.take()
    clock.now += 3600
    assert sum(bucket.take() for _ in range(100)) == 20, "a long rest refills no more than the burst"
    clock.now -= 100
    assert not bucket.take(), "a clock going backwards refills nothing"


def test_refusals_are_told_ten_in_full_then_summarised_every_10_s() -> None:
    clock = Clock()
    told: list[tuple[str, dict[str, Any]]] = []
    log = RefusalLog(lambda reason, details: told.append((reason, details)), clock)
    for index in range(10):
        log.refuse("too many reports", {"n": index})
    assert told == [("too many reports", {"n": i}) for i in range(10)]
    for _ in range(500):  # a flood in the same instant: counted, not told
        log.refuse("too many reports", {})
    log.refuse("unknown report", {})
    assert len(told) == 10
    clock.now += 9.9
    log.refuse("too many reports", {})
    assert len(told) == 10, "no summary before 10 s"
    clock.now += 0.1
    log.refuse("too many reports", {})
    assert told[10:] == [(SUPPRESSED, {"count": 503, "reasons": {"too many reports": 502, "unknown report": 1}})]
    clock.now += 5
    log.refuse("x", {})
    clock.now += 5
    log.refuse("x", {})
    assert len(told) == 11, "counting starts again at the first refusal after a summary"
    clock.now += 5
    log.refuse("x", {})
    assert told[11:] == [(SUPPRESSED, {"count": 3, "reasons": {"x": 3}})]
    assert log.total == 516


def test_a_quiet_spell_ends_the_flood_and_close_tells_the_rest() -> None:
    clock = Clock()
    told: list[tuple[str, dict[str, Any]]] = []
    log = RefusalLog(lambda reason, details: told.append((reason, details)), clock)
    for _ in range(13):
        log.refuse("flood", {})
    clock.now += 10
    log.refuse("single", {"after": "quiet"})
    assert told[10:] == [(SUPPRESSED, {"count": 3, "reasons": {"flood": 3}}), ("single", {"after": "quiet"})]
    log.flush()
    assert len(told) == 12, "nothing counted, nothing to tell"
    for _ in range(20):
        log.refuse("again", {})
    log.flush()
    # after the quiet spell ten go in full again: the single one and nine more
    assert told[-1] == (SUPPRESSED, {"count": 11, "reasons": {"again": 11}})
