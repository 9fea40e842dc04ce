"""The GIC's ITS follows the Windows build: off below 26100 (it hangs those at the boot logo), kept in the VM's
facts from the install so later starts, which read no ISO, still turn it off."""

from __future__ import annotations

from pathlib import Path

import pytest

from winarm.config.host import HostFacts
from winarm.config.paths import VmPaths
from winarm.config.vm import load_config
from winarm.media.iso import Edition
from winarm.qemu import disk
from winarm.qemu.argv import Endpoints, build_argv, machine_option
from winarm.qemu.firmware import Firmware
from winarm.vm import launch
from winarm.vm.facts import BUILD_FACT, known_build, read_facts, remember_build, write_facts

FW = Firmware("test", Path("/fw/CODE.fd"), Path("/fw/VARS.fd"), False, Path("/fw/x.json"))


def machine_of(tmp_path: Path, host: HostFacts, build: int | None) -> str:
    cfg = load_config({"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}, {}, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    argv = build_argv(cfg, FW, paths, Endpoints(qmp=7, serial=8), windows_build=build)
    return argv[argv.index("-machine") + 1]


def test_a_build_before_24h2_gets_no_its(tmp_path: Path, host: HostFacts) -> None:
    assert machine_of(tmp_path, host, 22631) == "virt,gic-version=max,its=off"
    assert machine_of(tmp_path, host, 19041) == "virt,gic-version=max,its=off", "Windows 10 hangs with the ITS too"


def test_24h2_and_an_unknown_build_keep_the_its(tmp_path: Path, host: HostFacts) -> None:
    assert machine_of(tmp_path, host, 26100) == "virt,gic-version=max"
    assert machine_of(tmp_path, host, 27000) == "virt,gic-version=max"
    assert machine_of(tmp_path, host, None) == "virt,gic-version=max"
    assert machine_option(26099).endswith(",its=off")


def test_the_edition_build_number_is_the_major_build() -> None:
    assert Edition(1, "Windows 11 Pro", "22631.2861", "arm64").build_number == 22631
    assert Edition(1, "Windows 11 Pro", "26100", "arm64").build_number == 26100
    assert Edition(1, "Windows 11 Pro", "", "arm64").build_number is None


def vm_paths(tmp_path: Path) -> VmPaths:
    paths = VmPaths(tmp_path / "state", tmp_path / "run", "qcow2")
    paths.state_dir.mkdir()
    return paths


def test_the_build_survives_to_a_later_start(tmp_path: Path, host: HostFacts, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = vm_paths(tmp_path)
    cfg = load_config({"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}, {}, host)

    def create(image: Path, *args: object, **kwargs: object) -> bool:
        image.write_bytes(b"")
        return True

    monkeypatch.setattr(disk, "ensure_image", create)
    facts = launch._settle_facts(cfg, paths, 22631)  # the install's start: a new disk, build 22631
    assert facts == {BUILD_FACT: 22631}
    monkeypatch.setattr(disk, "ensure_image", lambda *args, **kwargs: False)
    later = known_build(paths)  # a later start: no ISO read, the facts remember
    assert later == 22631
    assert launch._settle_facts(cfg, paths, None)[BUILD_FACT] == 22631, "a start without an install keeps it"
    assert machine_of(tmp_path, host, later).endswith(",its=off")


def test_a_new_disk_forgets_the_old_build(tmp_path: Path, host: HostFacts, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = vm_paths(tmp_path)
    write_facts(paths, {BUILD_FACT: 22631, "install_complete": True})
    cfg = load_config({"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}, {}, host)
    monkeypatch.setattr(disk, "ensure_image", lambda *args, **kwargs: True)
    assert launch._settle_facts(cfg, paths, None) == {}
    assert read_facts(paths) == {}
    assert launch._settle_facts(cfg, paths, 26100) == {BUILD_FACT: 26100}


def test_no_disk_or_a_bad_value_is_no_build(tmp_path: Path) -> None:
    paths = vm_paths(tmp_path)
    write_facts(paths, {BUILD_FACT: 22631})
    assert known_build(paths) is None, "facts without their disk describe nothing"
    paths.disk.write_bytes(b"")
    for bad in ("22631", True, -1, None):
        write_facts(paths, {BUILD_FACT: bad})
        assert known_build(paths) is None, bad


def test_remember_build_reports_a_change_only() -> None:
    facts: dict[str, object] = {}
    assert remember_build(facts, 22631) is True
    assert remember_build(facts, 22631) is False
    assert remember_build(facts, None) is False
    assert facts == {BUILD_FACT: 22631}
