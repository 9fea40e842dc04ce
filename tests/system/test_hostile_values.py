"""A real VM whose storage path is full of QEMU's and swtpm's separators boots and stops (the hostile values
that need no VM are in tests/unit/config/test_hostile_values.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.vmtools import Up, winarm


@pytest.mark.qemu
def test_a_vm_on_a_path_full_of_separators_boots_and_stops(tmp_path: Path, run_base: Path) -> None:
    """QEMU's ``,`` and ``=``, swtpm's ``,``, a space, a quote and non-ASCII in the storage path: a real VM with
    a TPM starts, is healthy, and stops."""
    storage = tmp_path / "a,b=c d'é"
    vm = Up(storage, run_base, "--ram", "256M", "--cpus", "1", "--disk-size", "64M", "--tpm", "--no-secure-boot",
            "--timeout", "1")
    try:
        vm.wait_line("running (tcg)", 60)
        report = vm.status()
        assert report["healthy"] is True and report["tpm"] is True
        down = winarm("down", "--name", "t", "--storage", str(storage), env=vm.env)
        assert down.returncode == 0, down.stderr
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    assert any((storage / "t" / "tpm").glob("tpm2-*")), "swtpm kept its state inside the storage"
    assert os.listdir(storage / "t")

