"""The CPU window's arithmetic on a fake clock and fake readings; one reading of this very process."""

from __future__ import annotations

import os

from winarm.vm.cpu_window import CpuWindow, process_cpu_seconds


def test_percent_over_the_last_minute() -> None:
    now = [0.0]
    cpu = [0.0]
    window = CpuWindow(lambda: cpu[0], clock=lambda: now[0])
    window.sample()
    assert window.percent() is None, "one sample says nothing"
    for _ in range(24):  # two minutes: idle for the first, one core busy for the second
        now[0] += 5
        cpu[0] += 0.0 if now[0] <= 60 else 5.0
        window.sample()
    assert window.percent() == 100.0, "only the last minute counts"
    now[0] += 5
    cpu[0] += 10.0  # two busy vCPUs
    window.sample()
    assert 100.0 < (window.percent() or 0) <= 200.0


def test_a_gone_process_is_not_sampled() -> None:
    window = CpuWindow(lambda: None)
    window.sample()
    window.sample()
    assert window.percent() is None
    assert process_cpu_seconds(2**22 + 12345)() is None
    mine = process_cpu_seconds(os.getpid())()
    assert mine is not None and mine > 0
