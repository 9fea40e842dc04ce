"""A frozen install told as stalled, end to end: the Windows-shaped test ISO built with the hang option, whose
guest stops at the top of windowsPE (no disk I/O, no output, the screen unchanged), under a real QEMU.

Real Windows cannot run here; the test guest stands in for a Setup that hangs. What is real: QEMU's screendump
of the ramfb screen, the PNG, the stall watch in the supervisor, the control socket and ``winarm screenshot``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import cache_dir
from tests.vmtools import Up, winarm

GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--timeout", "3"]
STALL_TIMEOUT = 8


@pytest.fixture(scope="module")
def hang_iso() -> Path:
    """The Windows test ISO with ``sources/winarm-hang`` (a separate cached ISO)."""
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), hang=True, log=lambda line: None)


@pytest.mark.qemu
def test_a_frozen_install_is_told_stalled_with_a_screenshot(tmp_path: Path, run_base: Path, hang_iso: Path,
                                                            placeholder_drivers: Path) -> None:
    vm = Up(tmp_path, run_base, *GUEST, "--iso", str(hang_iso), "--drivers", str(placeholder_drivers),
            "--stall-timeout", str(STALL_TIMEOUT))
    shot = tmp_path / "shot.png"
    try:
        vm.wait_line("QEMU pid", 120)  # running: the phase log exists
        vm.wait_event("guest-event", "hang", 300)
        line = vm.wait_line("stalled: ", 60)
        taken = winarm("screenshot", "--name", "t", "--storage", str(tmp_path), str(shot), env=vm.env)
        vm.proc.send_signal(signal.SIGTERM)
        vm.wait(60)
    finally:
        vm.close()
    assert "stalled: no disk I/O, screen change or guest report for " in line, line
    events = vm.events()
    (hang,) = [e for e in events if e["kind"] == "guest-event" and e["name"] == "hang"]
    stalled = [e for e in events if e["kind"] == "stalled"]
    assert len(stalled) == 1, "one stall, told once"
    last, last_at = stalled[0]["last"], stalled[0]["last_at"]
    # the hang line, the console's last redraw (its cursor set still) seen at the next look at the screen, or the
    # last reads and writes the guest's kernel finished as it went quiet
    assert last in ("console line 'WINARM-EVENT hang'", "screen change", "install medium read", "disk I/O"), last
    assert last_at >= round(hang["t"], 1) - 0.1, "the last activity told is the last one there was"
    assert f"(last: {last} at {last_at:.1f} s)" in line, line
    assert stalled[0]["quiet"] >= STALL_TIMEOUT and stalled[0]["t"] - last_at >= STALL_TIMEOUT - 0.1
    assert not [e for e in events if e["kind"] == "stall-ended"], "the frozen guest never came back"
    (saved,) = [e for e in events if e["kind"] == "screenshot" and e["reason"] == "stalled"]
    png = Path(saved["path"])
    assert png == tmp_path / "t" / "stall-1.png" and f"screenshot {png}" in line, "beside the phase log, and told"
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.strip() == f"{shot} ({saved['width']}x{saved['height']})"
    with Image.open(png) as at_stall, Image.open(shot) as later:
        assert at_stall.format == later.format == "PNG"
        assert at_stall.size == later.size == (saved["width"], saved["height"])
        assert at_stall.tobytes() == later.tobytes(), "the guest is frozen: its screen has not changed"
    (requested,) = [e for e in events if e["kind"] == "screenshot" and e["reason"] == "requested"]
    assert not Path(requested["path"]).exists(), "the daemon's copy in the run directory is gone"
