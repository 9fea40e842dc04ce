"""The guest's real-time clock: in local time, as Windows reads it (``-rtc base=localtime``), and in the Windows
zone's local time when TIMEZONE is not the host's zone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.qemu.test_qemu_argv import FW, value_after
from winarm.config.host import HostFacts
from winarm.config.paths import VmPaths
from winarm.config.vm import load_config
from winarm.qemu.argv import Endpoints, build_argv, rtc_option

SUMMER = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
WINTER = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def utc_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local time is UTC (QEMU's ``base=localtime`` is the host's)."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("utc_host")
@pytest.mark.parametrize(("zone", "now", "option"), [
    (None, SUMMER, "base=localtime"),
    ("UTC", SUMMER, "base=localtime"),
    ("GMT Standard Time", WINTER, "base=localtime"),  # London in winter: the host's offset, so localtime
    ("GMT Standard Time", SUMMER, "base=2026-07-01T13:00:00"),
    ("W. Europe Standard Time", SUMMER, "base=2026-07-01T14:00:00"),
    ("W. Europe Standard Time_dstoff", SUMMER, "base=2026-07-01T13:00:00"),
    ("Pacific Standard Time", WINTER, "base=2026-01-15T04:00:00"),
    ("Not A Zone", SUMMER, "base=localtime"),
])
def test_the_clock_is_local_time_in_the_guest_s_zone(zone: str | None, now: datetime, option: str) -> None:
    assert rtc_option(zone, now) == option


@pytest.mark.usefixtures("utc_host")
def test_the_command_line_carries_the_rtc(tmp_path: Path, host: HostFacts) -> None:
    cfg = load_config({"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}, {}, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    argv = build_argv(cfg, FW, paths, Endpoints(qmp=7, serial=8))
    assert value_after(argv, "-rtc") == ["base=localtime"]
    tokyo = build_argv(replace(cfg, timezone="Tokyo Standard Time"), FW, paths, Endpoints(qmp=7, serial=8))
    started = datetime.strptime(value_after(tokyo, "-rtc")[0], "base=%Y-%m-%dT%H:%M:%S")
    expected = datetime.now(UTC).replace(tzinfo=None).timestamp() + 9 * 3600
    assert abs(started.timestamp() - expected) < 60, "Tokyo's wall clock, 9 hours ahead of the UTC host"
