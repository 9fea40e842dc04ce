"""``winarm up`` with no ISO and no installed disk is refused in one line, before anything is written; a disk
winarm has booted, or one holding data of its own, or an ISO, gets past the check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vmtools import tree_digest
from winarm.cli.up import check_something_to_boot, disk_holds_data
from winarm.config.host import HostFacts
from winarm.config.vm import load_config
from winarm.errors import UserError
from winarm.vm.firmware_watch import FIRMWARE_ONLY_ENV

GiB = 1 << 30
SMALL = ["--name", "t", "--ram", "256M", "--cpus", "1", "--disk-size", "64M", "--no-tpm", "--no-secure-boot",
         "--no-share"]


def up(storage: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (FIRMWARE_ONLY_ENV, "BOOT", "VERSION")}
    env["WINARM_RUN_DIR"] = str(storage.parent / "run")
    return subprocess.run([sys.executable, "-m", "winarm", "up", "--storage", str(storage), *SMALL, *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def blank_disk(storage: Path) -> Path:
    (storage / "t").mkdir(parents=True)
    disk = storage / "t" / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    return disk


def test_a_new_vm_with_no_iso_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    result = up(storage)
    assert result.returncode == 2, result
    assert result.stderr == ("winarm: nothing to boot: VM 't' has no OS installed (it has no disk yet) and no ISO was "
                             "given: give --iso with an ARM64 Windows ISO (a path or a URL) to install it\n")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not storage.exists(), "no storage directory, no disk image"
    assert not (tmp_path / "run").exists()


def test_a_blank_disk_that_never_booted_is_refused_too(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    disk = blank_disk(storage)
    before = tree_digest(storage)
    result = up(storage)
    assert result.returncode == 2
    assert result.stderr.startswith(f"winarm: nothing to boot: VM 't' has no OS installed (its disk {disk} is "
                                    "blank) and no ISO was given")
    assert len(result.stderr.splitlines()) == 1
    assert tree_digest(storage) == before


def check(storage: Path, *args: str) -> None:
    host = HostFacts(arch="x86_64", total_ram=16 * GiB, available_ram=12 * GiB, cpus=4, kvm_usable=False)
    flags = {"name": "t", "storage": str(storage), "ram": "256M", "cpus": "1", "disk_size": "64M", "tpm": False,
             "secure_boot": False, "share": False}
    for arg in args:
        key, _, value = arg.partition("=")
        flags[key] = value
    check_something_to_boot(load_config(flags, {}, host))


@pytest.mark.parametrize("facts", [{"disk_booted": True}, {"install_complete": True}])
def test_a_disk_winarm_has_booted_is_something_to_boot(tmp_path: Path, facts: dict[str, bool],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FIRMWARE_ONLY_ENV, raising=False)
    storage = tmp_path / "storage"
    blank_disk(storage)
    with pytest.raises(UserError, match="nothing to boot"):
        check(storage)
    (storage / "t" / "vm.json").write_text(json.dumps(facts))
    check(storage)


def test_a_disk_brought_with_data_of_its_own_is_something_to_boot(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FIRMWARE_ONLY_ENV, raising=False)
    storage = tmp_path / "storage"
    disk = blank_disk(storage)
    assert not disk_holds_data(disk, "qcow2")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 512", str(disk)], check=True,
                   capture_output=True)
    assert disk_holds_data(disk, "qcow2")
    check(storage)
    raw = tmp_path / "disk.raw"
    raw.write_bytes(bytes(4096))
    assert not disk_holds_data(raw, "raw")
    raw.write_bytes(bytes(511) + b"\x55")
    assert disk_holds_data(raw, "raw")


def test_an_iso_or_the_tests_firmware_only_switch_gets_past_the_check(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FIRMWARE_ONLY_ENV, raising=False)
    iso = tmp_path / "win.iso"
    iso.write_bytes(b"")
    check(tmp_path / "storage", f"iso={iso}")
    monkeypatch.setenv(FIRMWARE_ONLY_ENV, "1")
    check(tmp_path / "storage")
