"""The Prometheus endpoint of a running VM: scraped for real over HTTP from a firmware-only VM."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.vmtools import FIRMWARE_ONLY, Up, winarm


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
                     and getattr(c.laddr, "port", None) == port]
        assert [getattr(c.laddr, "ip", None) for c in listeners] == ["127.0.0.1"]
        assert winarm("down", "--name", "t", "--storage", str(tmp_path), env=vm.env).returncode == 0
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    with pytest.raises(OSError):
        scrape(port)


