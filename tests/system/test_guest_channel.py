"""The guest channel blocked: what winarm still knows of an install when the guest cannot reach it.

The test guest (a real arm64 Linux playing Windows Setup; no Windows can run here) tries its reports as Windows
would; with ``--no-guest-channel`` QEMU relays nothing for 10.0.2.5, so every report fails in the guest.
What must hold: the install's boots are still named by Setup's order (all ``boot-order``), desktop-ready is
missing and winarm says so, and the answer medium (it holds the password) is given up from the second boot
from the disk on, as without reports before.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.vmtools import Up, winarm
from winarm.timeline.phases import derive_phases

GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--timeout", "30"]


@pytest.mark.qemu
def test_a_blocked_channel_leaves_the_phases_inferred_and_says_desktop_ready_is_missing(
        tmp_path: Path, run_base: Path, testbed_iso: Path, placeholder_drivers: Path) -> None:
    vm = Up(tmp_path, run_base, *GUEST, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
            "--no-guest-channel")
    try:
        failed = vm.wait_event("guest-event", "report-failed", 400)  # the driver step's report, in specialize
        vm.wait_event("guest-event", "ready", 400)  # the first logon is over: the guest waits for the button
        status = vm.status()
        vm.proc.send_signal(signal.SIGTERM)
        assert vm.wait(120) == 0, "\n".join(vm.lines)
    finally:
        vm.close()
    assert str(failed["detail"]).startswith("drivers"), failed
    events = vm.events()
    assert "channel-ready" not in [e["kind"] for e in events] and "report" not in [e["kind"] for e in events]
    named = [(e["name"], e["source"]) for e in events if e["kind"] == "marker"]
    assert named == [("windowsPE", "boot-order"), ("specialize", "boot-order"), ("oobeSystem", "boot-order")]
    phases = [(p.name, p.source) for p in derive_phases(events) if p.source]
    assert phases == named, "every Setup pass stays inferred: no report confirmed one"
    assert status["reports"] is None and status["phase"] == "oobeSystem" and status["phase_source"] == "boot-order"
    (missing,) = [e for e in events if e["kind"] == "desktop-ready-missing"]
    assert missing["channel"] is False
    assert ("[t] desktop-ready was never reported: the guest channel is off (--no-guest-channel), so Windows "
            "cannot report; the phases marked boot-order are inferred") in vm.lines
    # from the second disk boot on the install counts as complete: the next start gets no answer medium
    assert json.loads((tmp_path / "t" / "vm.json").read_text())["install_complete"] is True
    dry = winarm("up", "--name", "t", "--storage", str(tmp_path), *GUEST, "--iso", str(testbed_iso), "--drivers",
                 str(placeholder_drivers), "--dry-run", env=vm.env)
    assert dry.returncode == 0, dry.stderr
    assert "answer-" not in dry.stdout and "media1" not in dry.stdout, dry.stdout
