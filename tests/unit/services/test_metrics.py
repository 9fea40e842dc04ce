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


def test_collector_reports_progress_activity_reports_and_a_stall() -> None:
    """The answers to "is it hung?" as gauges; an inferred phase's duration carries source="boot-order"."""
    events = [{"t": 0.0, "kind": "start"}, {"t": 0.25, "kind": "running"},
              {"t": 2.0, "kind": "boot-device", "device": "cd"},
              {"t": 2.0, "kind": "marker", "name": "windowsPE", "source": "boot-order"},
              {"t": 9.0, "kind": "reset"}]
    status = {"state": "running", "uptime": 10.0, "progress": {"percent": 41.0, "what": "apply"},
              "stall": {"stalled": True}, "activity": {"disk_written": 5000, "disk_read": 7, "iso_read": 9,
                                                       "cpu_percent": 97.5, "nic_up": False},
              "reports": {"accepted": 3, "refused": 12}}
    families = {f.name: f for f in DaemonCollector("vm1", lambda: status, lambda: events).collect()}
    sources = {s.labels["phase"]: s.labels["source"] for s in families["winarm_phase_duration_seconds"].samples}
    assert sources["windowsPE"] == "boot-order" and sources["firmware"] == "winarm"
    assert families["winarm_progress_ratio"].samples[0].value == 0.41
    assert families["winarm_stalled"].samples[0].value == 1.0
    assert families["winarm_disk_written_bytes_last_minute"].samples[0].value == 5000.0
    assert families["winarm_iso_read_bytes_last_minute"].samples[0].value == 9.0
    assert families["winarm_cpu_percent_last_minute"].samples[0].value == 97.5
    assert families["winarm_network_driver_up"].samples[0].value == 0.0
    assert {s.labels["result"]: s.value for s in families["winarm_guest_reports"].samples} == {
        "accepted": 3.0, "refused": 12.0}


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
