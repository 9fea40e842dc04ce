"""Finding the aarch64 UEFI firmware through QEMU's firmware descriptors, and the VM's own variable store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from winarm.errors import RuntimeFailure, UserError
from winarm.qemu.firmware import Firmware, ensure_vars, find_firmware


def write_descriptor(directory: Path, name: str, code: Path, template: Path, features: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(
        json.dumps(
            {
                "description": name,
                "interface-types": ["uefi"],
                "mapping": {
                    "device": "flash",
                    "executable": {"filename": str(code), "format": "raw"},
                    "nvram-template": {"filename": str(template), "format": "raw"},
                },
                "targets": [{"architecture": "aarch64", "machines": ["virt-*"]}],
                "features": features,
            }
        )
    )


def test_firmware_is_found_through_descriptors(tmp_path: Path) -> None:
    code, plain_vars, ms_vars = tmp_path / "CODE.fd", tmp_path / "VARS.fd", tmp_path / "VARS.ms.fd"
    for f in (code, plain_vars, ms_vars):
        f.write_bytes(b"\0" * 16)
    system, override = tmp_path / "share", tmp_path / "etc"
    write_descriptor(system, "40-secure.json", code, ms_vars, ["secure-boot", "enrolled-keys"])
    write_descriptor(system, "60-plain.json", code, plain_vars, [])
    write_descriptor(system, "50-x86.json", code, plain_vars, [])
    (system / "50-x86.json").write_text((system / "50-x86.json").read_text().replace("aarch64", "x86_64"))
    assert find_firmware(True, [override, system]).vars_template == ms_vars
    assert find_firmware(False, [override, system]).vars_template == plain_vars
    # a same-named file earlier in the path hides the later one
    write_descriptor(override, "60-plain.json", code, ms_vars, [])
    assert find_firmware(False, [override, system]).vars_template == ms_vars


def test_missing_firmware_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="qemu-efi-aarch64"):
        find_firmware(False, [tmp_path])
    code = tmp_path / "CODE.fd"
    code.write_bytes(b"")
    write_descriptor(tmp_path, "60-plain.json", code, code, [])
    with pytest.raises(UserError, match="--no-secure-boot"):
        find_firmware(True, [tmp_path])


def test_vars_are_copied_once(tmp_path: Path) -> None:
    template = tmp_path / "VARS.fd"
    template.write_bytes(b"template")
    fw = Firmware("t", template, template, False, template)
    target = tmp_path / "vm" / "efivars.fd"
    target.parent.mkdir()
    assert ensure_vars(fw, target) is True
    target.write_bytes(b"boot entries written by the guest")
    assert ensure_vars(fw, target) is False
    assert target.read_bytes() == b"boot entries written by the guest"
    assert oct(target.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("spoil", [
    "not json", "a list", "no uefi", "memory mapping", "x86 only", "arm machine", "qcow2 code", "no template",
    "no code", "secure boot without keys",
])
def test_each_unusable_descriptor_is_passed_over(tmp_path: Path, spoil: str) -> None:
    code = tmp_path / "CODE.fd"
    code.write_bytes(b"\0" * 16)
    write_descriptor(tmp_path, "50-fw.json", code, code, [])
    assert find_firmware(False, [tmp_path]).code == code, "the unspoiled descriptor is found"
    descriptor = tmp_path / "50-fw.json"
    data = json.loads(descriptor.read_text())
    mapping = data["mapping"]
    changes = {
        "no uefi": lambda: data.update({"interface-types": ["bios"]}),
        "memory mapping": lambda: mapping.update({"device": "memory"}),
        "x86 only": lambda: data.update({"targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}]}),
        "arm machine": lambda: data.update({"targets": [{"architecture": "aarch64", "machines": ["sbsa-ref"]}]}),
        "qcow2 code": lambda: mapping["executable"].update({"format": "qcow2"}),
        "no template": lambda: mapping.pop("nvram-template"),
        "no code": lambda: mapping.update({"executable": "CODE.fd"}),
        "secure boot without keys": lambda: data.update({"features": ["secure-boot"]}),
    }
    if spoil == "not json":
        descriptor.write_text("{")
    elif spoil == "a list":
        descriptor.write_text(json.dumps([data]))
    else:
        changes[spoil]()
        descriptor.write_text(json.dumps(data))
    with pytest.raises(RuntimeFailure, match="no aarch64 UEFI firmware found"):
        find_firmware(False, [tmp_path])
