"""The bench scripts' pure parts, without booting anything: the shared helpers' checks, the cycles benchmark's
verdicts, and how the crash rounds read a boot's steps and judge its fsck. The scripts import each other as
top-level modules (``python bench/x.py`` puts bench/ on sys.path); conftest.py does the same here."""

from __future__ import annotations

import math

import _common
import _crash_boot
import _crash_judge
import cycles_bench
import pytest

from winarm.vm.launch import HISTORY_KEEP


def test_median_and_its_empty_case() -> None:
    assert _common.med([3.0, 1.0, 2.0]) == 2.0
    assert _common.med([1.0, 4.0]) == 2.5
    with pytest.raises(_common.BenchError, match="no values"):
        _common.med([])


@pytest.mark.parametrize("bad", [0.0, -1.5, math.nan, math.inf])
def test_sane_refuses_what_no_measurement_gives(bad: float) -> None:
    with pytest.raises(_common.BenchError, match="the median"):
        _common.sane("the median", bad)


def test_sane_passes_a_positive_figure_through() -> None:
    assert _common.sane("x", 0.004) == 0.004


def test_timed_returns_the_value_and_a_duration() -> None:
    seconds, value = _common.timed(lambda: sum(range(1000)))
    assert value == 499500 and 0 <= seconds < 5


def test_a_failing_tool_names_itself() -> None:
    with pytest.raises(_common.BenchError, match=r"sh exited 3"):
        _common.run(["sh", "-c", "echo oops >&2; exit 3"])


def test_cycles_verdicts() -> None:
    verdict = cycles_bench.verdict
    assert verdict("zero", [0, 0, 0]) == "flat (0 every cycle)"
    assert verdict("zero", [0, 1, 0]).startswith("NOT FLAT")
    assert verdict("equal", [7, 10, 10, 10]) == "flat from cycle 2"
    assert verdict("equal", [7, 10, 11]).startswith("NOT FLAT")
    keep = HISTORY_KEEP
    assert verdict("capped", [0, 1, 2]).startswith("one more per start (cap")
    assert verdict("capped", [min(i, keep) for i in range(keep + 3)]) == f"one more per start, capped at {keep}"
    assert verdict("capped", [0, 1, 1]).startswith("NOT AS EXPECTED")
    assert verdict("within10", [40.0, 40.0, 40.0, 40.0, 40.0, 45.0]).startswith("GROWS")
    assert verdict("within10", [40.0, 41.0, 40.0, 42.0]).startswith("flat")
    # logs rotate at each start: growth is measured from the second cycle, when a previous start's logs exist
    text = verdict("growth", [0.2, 1.2, 1.2, 1.2])
    assert text.startswith("+0.00 KiB per cycle from cycle 2") and "*.log.1" in text and "never" not in text


def test_crash_steps_of_events() -> None:
    step = _crash_boot.step_of
    assert step({"kind": "running"}) == "firmware"
    assert step({"kind": "boot-device", "device": "disk"}) == "boot-disk"
    assert step({"kind": "marker", "name": "ready"}) == "ready"
    assert step({"kind": "marker", "name": "desktop-ready", "source": "guest"}) == "desktop-ready"
    # playing Windows, the test guest's own Linux steps are guest events
    for name in ("init", "ready", "poweroff"):
        assert step({"kind": "guest-event", "name": name, "detail": ""}) == name
    assert step({"kind": "guest-event", "name": "guest-writing-failed"}) == "writing-failed"
    assert step({"kind": "guest-event", "name": "fsck", "detail": "errors vda2: dirty bit"}) == "fsck errors"
    assert step({"kind": "guest-event", "name": "guest-writing"}) == "writing"
    assert step({"kind": "guest-event", "name": "share-reconnected"}) == "share"
    assert step({"kind": "guest-event", "name": "something-else"}) is None
    assert step({"kind": "stop"}) is None


def test_crash_boot_phase_at_a_moment() -> None:
    boot = _crash_boot.Boot(events=[(1.0, {"kind": "running"}), (5.0, {"kind": "boot-device", "device": "disk"}),
                                    (9.0, {"kind": "marker", "name": "ready"})])
    assert boot.phase_at(0.5) == "launch"
    assert boot.phase_at(6.0) == "boot-disk"
    assert boot.reached("ready") and not boot.reached("writing")


def test_crash_boot_phase_at_playing_windows() -> None:
    """A cold boot of the installed disk as the test guest plays Windows: its own steps are guest events, the
    desktop-ready marker comes over the guest channel, possibly after ready (the share's ready file, late)."""
    event = {"kind": "guest-event", "detail": ""}
    boot = _crash_boot.Boot(events=[
        (1.0, {"kind": "running"}), (5.0, {"kind": "boot-device", "device": "disk"}),
        (8.0, {**event, "name": "init"}), (9.0, {**event, "name": "fsck", "detail": "clean"}),
        (10.0, {**event, "name": "share-reconnected"}), (11.0, {**event, "name": "ready"}),
        (11.5, {"kind": "marker", "name": "desktop-ready", "source": "guest"}),
        (12.0, {**event, "name": "guest-writing"}), (20.0, {**event, "name": "poweroff"})])
    assert [boot.phase_at(t) for t in (8.5, 9.5, 10.5, 11.2, 11.7, 15.0, 21.0)] == [
        "init", "fsck clean", "share", "ready", "ready", "writing", "poweroff"]
    assert boot.reached("writing") and boot.reached("poweroff")
    failed = _crash_boot.Boot(events=[(1.0, {"kind": "running"}), (2.0, {**event, "name": "ready"}),
                                      (3.0, {**event, "name": "guest-writing-failed"})])
    assert failed.phase_at(4.0) == "writing-failed" and not failed.reached("poweroff")


def test_crash_fsck_judgement() -> None:
    judge = _crash_judge.judge_fsck
    assert judge([], must_be_clean=True) == []
    assert judge(["clean"], must_be_clean=True) == []
    assert judge(["errors vda2: dirty bit", "repaired vda2"], must_be_clean=False) == []
    assert judge(["errors vda2: dirty bit"], must_be_clean=False) == [], "killed during the repair"
    assert judge(["errors vda2: x", "failed vda2"], must_be_clean=False) == ["fsck: errors vda2: x | failed vda2"]
    assert judge(["errors vda2: x", "repaired vda2"], must_be_clean=True) == [
        "fsck not clean though the file systems were clean and not mounted read-write at the kill"]
