"""The Prometheus endpoint of a running VM: scraped for real over HTTP from a firmware-only VM."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import psutil
import pytest

from winarm.services.metrics import DaemonCollector

from .vmtools import FIRMWARE_ONLY, Up, winarm


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_collector_reports_phases_state_and_share() -> None:
    events = [{"t": 0.0, "kind": "start"}, {"t": 0.25, "kind": "running"},
              {"t": 2.0, "kind": "boot-device", "device": "disk"}, {"t": 3.5, "kind": "marker", "name": "ready"}]
    status = {"state": "running", "healthy": True, "uptime": 4.0,
              "share": {"healthy": False, "restarts": 2}}
    families = {f.name: f for f in DaemonCollector("vm1", lambda: status, lambda: events).collect()}
    durations = {(s.labels["index"], s.labels["phase"]): s.value
                 for s in families["winarm_phase_duration_seconds"].samples}
    assert durations == {("1", "launch"): 0.25, ("2", "firmware"): 1.75, ("3", "boot-disk"): 1.5}
    current = families["winarm_phase_current_seconds"].samples
    assert [(s.labels["phase"], s.value) for s in current] == [("ready", 0.5)]
    states = {s.labels["state"]: s.value for s in families["winarm_vm_state"].samples}
    assert states == {"starting": 0.0, "running": 1.0, "paused": 0.0, "stopping": 0.0, "stopped": 0.0}
    assert families["winarm_share_healthy"].samples[0].value == 0.0
    assert families["winarm_smbd_restarts"].samples[0].value == 2.0


@pytest.mark.qemu
def test_a_running_vm_serves_its_metrics_on_loopback(tmp_path: Path, run_base: Path) -> None:
    port = free_port()
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--metrics-port", str(port))
    try:
        vm.wait_line(f"metrics: http://127.0.0.1:{port}/metrics", 60)
        vm.wait_line("phase firmware", 60)
        samples = scrape(port)
        assert samples['winarm_vm_state{state="running",vm="t"}'] == 1.0
        assert samples['winarm_vm_healthy{vm="t"}'] == 1.0
        launch = [v for k, v in samples.items()
                  if k.startswith("winarm_phase_duration_seconds") and 'phase="launch"' in k]
        assert len(launch) == 1 and 0 < launch[0] < 30
        assert any(k.startswith("winarm_phase_duration_seconds") and 'phase="firmware"' in k for k in samples)
        listeners = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
                     and c.laddr.port == port]
        assert [c.laddr.ip for c in listeners] == ["127.0.0.1"]
        assert winarm("down", "--name", "t", "--storage", str(tmp_path), env=vm.env).returncode == 0
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    with pytest.raises(OSError):
        scrape(port)


def test_a_busy_metrics_port_is_one_clear_line(tmp_path: Path, run_base: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = winarm("up", "--name", "t", "--storage", str(tmp_path), *FIRMWARE_ONLY, "--metrics-port", str(port),
                        env={"WINARM_RUN_DIR": str(run_base)})
    assert result.returncode == 2
    assert result.stderr.strip() == (f"winarm: metrics port {port} on 127.0.0.1 cannot be used (Address already in "
                                     "use): choose another --metrics-port")
    assert not (tmp_path / "t").exists()
