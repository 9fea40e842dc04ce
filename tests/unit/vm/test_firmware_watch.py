"""What the firmware's console lines mean, on lines captured from Debian 12's AAVMF under QEMU 7.2 (the disk blank,
the Windows-shaped test ISO on USB, Secure Boot with Microsoft's keys or without)."""

from __future__ import annotations

import json

import pytest

from winarm.qemu import console
from winarm.vm.firmware_watch import FirmwareWatch, NoOs, Refused

SHELL = 'Fv(64074AFE-340A-4BE6-94BA-91B5B4D0F71E)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)'
UIAPP = 'Fv(64074AFE-340A-4BE6-94BA-91B5B4D0F71E)/FvFile(462CAA21-7614-4503-836E-8AB6F4662331)'
USB_CD = '"UEFI QEMU QEMU USB HARDDRIVE 1-0000:00:01.0-3" from PciRoot(0x0)/Pci(0x1,0x0)/USB(0x2,0x0)'
BLANK_DISK = [
    "UEFI firmware (version  built at 13:10:49 on Nov  5 2024)",
    'BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x2,0x0): Not Found',
    f'BdsDxe: loading Boot0002 "EFI Internal Shell" from {SHELL}',
    f'BdsDxe: starting Boot0002 "EFI Internal Shell" from {SHELL}',
    "UEFI Interactive Shell v2.2",
    "EDK II",
]
SECURE_BOOT_REFUSES_THE_CD = [
    'BdsDxe: failed to load Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x2,0x0): Not Found',
    f"BdsDxe: loading Boot0001 {USB_CD}",
    f"BdsDxe: failed to load Boot0001 {USB_CD}: Access Denied",
    f'BdsDxe: loading Boot0003 "EFI Internal Shell" from {SHELL}',
    f'BdsDxe: starting Boot0003 "EFI Internal Shell" from {SHELL}',
    f'BdsDxe: failed to start Boot0003 "EFI Internal Shell" from {SHELL}: Security Violation',
    "BdsDxe: No bootable option or device was found.",
    "BdsDxe: Press any key to enter the Boot Manager Menu.",
]
NO_KEY_AT_THE_PROMPT = [
    f"BdsDxe: loading Boot0001 {USB_CD}",
    f"BdsDxe: starting Boot0001 {USB_CD}",
    "Press any key to boot from CD or DVD",
    "winarm: no key pressed, exiting to the firmware",
    f'BdsDxe: loading Boot0000 "UiApp" from {UIAPP}',
    f'BdsDxe: starting Boot0000 "UiApp" from {UIAPP}',
]


def feed(watch: FirmwareWatch, lines: list[str]) -> list[NoOs | Refused]:
    return [finding for line in lines for finding in watch.feed(line)]


def test_a_blank_disk_and_no_cd_end_in_the_shell() -> None:
    watch = FirmwareWatch()
    assert watch.no_os, "nothing started yet"
    (found,) = feed(watch, BLANK_DISK)
    assert isinstance(found, NoOs) and found.gave_up.what == "shell" and found.returned is None
    assert found.gave_up.says == "fell through to its UEFI shell"
    assert watch.no_os and watch.loader is None


def test_secure_boot_refusing_the_cd_is_named_then_the_firmware_gives_up() -> None:
    watch = FirmwareWatch()
    refused, gave_up = feed(watch, SECURE_BOOT_REFUSES_THE_CD)
    assert isinstance(refused, Refused), "the shell's own Security Violation is no refused OS loader"
    failure = refused.failure
    assert (failure.entry.entry, failure.entry.device, failure.action, failure.status) == (
        "Boot0001", "cd", "load", "Access Denied")
    assert failure.entry.description == "UEFI QEMU QEMU USB HARDDRIVE 1-0000:00:01.0-3"
    assert "do not trust its signature" in refused.why
    assert isinstance(gave_up, NoOs) and gave_up.gave_up.what == "shell", "the shell's start is the first sign"
    assert watch.last_lines(2) == ("BdsDxe: No bootable option or device was found. | "
                                   "BdsDxe: Press any key to enter the Boot Manager Menu.")


def test_the_cd_loader_that_comes_back_is_named_when_the_firmware_opens_its_menu() -> None:
    watch = FirmwareWatch()
    assert feed(watch, NO_KEY_AT_THE_PROMPT[:3]) == []
    assert not watch.no_os and watch.loader is not None and watch.loader.device == "cd", "the CD's loader runs"
    (found,) = feed(watch, NO_KEY_AT_THE_PROMPT[3:])
    assert isinstance(found, NoOs) and found.gave_up.what == "menu"
    assert found.returned is not None and found.returned.entry == "Boot0001"
    assert watch.no_os
    assert feed(watch, ["BdsDxe: No bootable option or device was found."]) == [], "told once a boot"
    watch.new_boot()
    assert watch.gave_up is None and watch.no_os
    assert feed(watch, ["BdsDxe: No bootable option or device was found."]) != [], "a new boot, told again"


@pytest.mark.parametrize(("line", "what"), [
    (">>Start PXE over IPv4.", "network"),
    (">>Start HTTP Boot over IPv6....", "network"),
    ("BdsDxe: No bootable option or device was found.", "no-bootable-option"),
    ("UEFI Interactive Shell v2.2", "shell"),
])
def test_each_last_resort_is_recognised(line: str, what: str) -> None:
    (found,) = FirmwareWatch().feed(line)
    assert isinstance(found, NoOs) and found.gave_up.what == what


def test_a_disk_that_boots_leaves_an_os_running() -> None:
    watch = FirmwareWatch()
    assert feed(watch, ['BdsDxe: starting Boot0004 "Windows Boot Manager" from '
                        "HD(1,GPT,F3B8,0x800,0x32000)/\\EFI\\Microsoft\\Boot\\bootmgfw.efi"]) == []
    assert not watch.no_os and watch.loader is not None and watch.loader.device == "disk"


def test_a_failed_start_of_the_running_loader_means_it_came_back() -> None:
    watch = FirmwareWatch()
    feed(watch, [f"BdsDxe: starting Boot0001 {USB_CD}"])
    assert feed(watch, [f"BdsDxe: failed to start Boot0001 {USB_CD}: Time out"]) == [], "no Secure Boot refusal"
    assert watch.no_os and watch.returned is not None and watch.returned.entry == "Boot0001"


def test_security_violation_of_the_disk_is_a_refusal_told_once_a_boot() -> None:
    line = ('BdsDxe: failed to start Boot0004 "Windows Boot Manager" from HD(1,GPT,F3B8,0x800,0x32000)/'
            "\\EFI\\Microsoft\\Boot\\bootmgfw.efi: Security Violation")
    watch = FirmwareWatch()
    (found,) = watch.feed(line)
    assert isinstance(found, Refused) and found.failure.entry.device == "disk"
    assert found.failure.status == "Security Violation" and "failed the firmware's Secure Boot check" in found.why
    assert watch.feed(line) == []


def test_the_firmware_lines_are_data_with_edk2s_exact_texts() -> None:
    data = json.loads(console.FIRMWARE_LINES.read_text())
    texts = [item["text"] for item in data["gave_up"]]
    assert texts == ["No bootable option or device was found", "UEFI Interactive Shell v", ">>Start PXE over IPv",
                     ">>Start HTTP Boot over IPv"]
    assert set(data["secure_boot_refusals"]) == {"Access Denied", "Security Violation"}
    assert console.parse_boot_entry("BdsDxe: loading Boot0001 " + USB_CD) is None, "only a start is a boot"
