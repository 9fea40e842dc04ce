"""The Prometheus endpoint of a running VM: scraped for real over HTTP from a firmware-only VM."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.vmtools import FIRMWARE_ONLY, winarm
from winarm.services.metrics import DaemonCollector


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
