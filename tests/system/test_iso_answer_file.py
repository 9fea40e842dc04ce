"""``winarm up`` with an ISO carrying its own Autounattend.xml at its root warns before QEMU starts (a real
qemu-system-aarch64 under TCG; the ISO is Windows-shaped but boots nothing, so the VM stays in its firmware)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vmtools import Up, winarm
from winarm_testbed.wim_image import build_bridge_iso

pytestmark = pytest.mark.qemu
SMALL = ["--ram", "512M", "--cpus", "1", "--disk-size", "256M", "--no-secure-boot", "--no-tpm", "--disk-bus", "nvme"]


def test_up_warns_about_the_isos_own_answer_file(tmp_path: Path, run_base: Path) -> None:
    iso = build_bridge_iso(tmp_path / "own-answer.iso", extra_files={"AutoUnattend.XML": b"<unattend/>\n"})
    vm = Up(tmp_path / "storage", run_base, *SMALL, "--iso", str(iso))
    try:
        vm.wait_line("running (tcg)", 60)
        down = winarm("down", "--name", "t", "--storage", str(tmp_path / "storage"), env=vm.env)
        assert down.returncode == 0, down.stderr
        assert vm.wait(30) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    warnings = [line for line in vm.lines if line.startswith("winarm: warning:")]
    assert len(warnings) == 1, vm.lines
    assert f"ISO {str(iso)!r} has its own answer file at its root (AutoUnattend.XML)" in warnings[0]
    assert "instead of winarm's answer medium" in warnings[0]
    assert vm.lines.index(warnings[0]) < next(i for i, line in enumerate(vm.lines) if "running (tcg)" in line)
    assert any(e["kind"] == "answer-medium" for e in vm.events()), "the install goes on with winarm's medium"
