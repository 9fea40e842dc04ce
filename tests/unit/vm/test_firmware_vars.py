"""The VM's UEFI variables follow --secure-boot/--no-secure-boot while no OS has booted from its disk: the variables,
not the firmware's code, hold Secure Boot's keys and switch (Debian's AAVMF_CODE.ms.fd is AAVMF_CODE.fd), so
--no-secure-boot after a CD that Secure Boot refused must bring fresh variables, or the way out leads nowhere."""

from __future__ import annotations

import json
from pathlib import Path

from winarm.config.paths import VmPaths
from winarm.qemu.firmware import Firmware
from winarm.vm.launch import VARS_SECURE_BOOT_FACT, _firmware_vars


def firmware(tmp_path: Path, secure: bool) -> Firmware:
    template = tmp_path / ("VARS.ms.fd" if secure else "VARS.fd")
    template.write_bytes(b"keys enrolled" if secure else b"empty")
    return Firmware("test", tmp_path / "CODE.fd", template, secure, tmp_path / "fw.json")


def test_the_variables_follow_the_switch_until_the_disk_has_booted(tmp_path: Path) -> None:
    paths = VmPaths(tmp_path / "t", tmp_path / "run")
    paths.state_dir.mkdir()
    facts: dict[str, object] = {}
    _firmware_vars(firmware(tmp_path, True), paths, facts)
    assert paths.efivars.read_bytes() == b"keys enrolled" and facts == {VARS_SECURE_BOOT_FACT: True}
    assert json.loads(paths.facts.read_text()) == facts, "remembered in vm.json"
    _firmware_vars(firmware(tmp_path, False), paths, facts)
    assert paths.efivars.read_bytes() == b"empty", "--no-secure-boot: fresh variables without the keys"
    assert facts[VARS_SECURE_BOOT_FACT] is False
    _firmware_vars(firmware(tmp_path, False), paths, facts)
    paths.efivars.write_bytes(b"boot entries an OS wrote")
    facts["disk_booted"] = True
    _firmware_vars(firmware(tmp_path, True), paths, facts)
    assert paths.efivars.read_bytes() == b"boot entries an OS wrote", "an installed VM keeps its variables"


def test_variables_of_unknown_origin_are_kept(tmp_path: Path) -> None:
    paths = VmPaths(tmp_path / "t", tmp_path / "run")
    paths.state_dir.mkdir()
    paths.efivars.write_bytes(b"made before winarm remembered it")
    facts: dict[str, object] = {}
    _firmware_vars(firmware(tmp_path, False), paths, facts)
    assert paths.efivars.read_bytes() == b"made before winarm remembered it" and facts == {}
