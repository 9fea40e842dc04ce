"""The Windows command lines the answer file runs: the report script's copy, the driver command, the share mapping,
the reports of the first logon and the desktop.
"""

from __future__ import annotations

import pytest

from tests.unit.answer.xmltools import commands_in, parse
from winarm.answer.commands import (
    INSTALL_DRIVERS,
    MAX_COMMAND_LINE,
    MAX_PATH,
    PASSWORD_NEVER_EXPIRES_COMMAND,
    PREVENT_ENCRYPTION_COMMAND,
    driver_command,
    firstlogon_commands,
    logon_script_copies,
    medium_copy_command,
    product_key_command,
    report_command,
    report_copy_command,
    specialize_commands,
)
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings
from winarm.answer.validate import validate
from winarm.config.windows import DRIVERS_PASSES
from winarm.guest import DESKTOP_READY, MEDIUM_MARKER, MEDIUM_REPORT_SCRIPT, MEDIUM_SCRIPT, REPORT_SCRIPT

FIRST_LOGON_REPORT = (r'cmd.exe /c start "" wscript.exe //B //NoLogo '
                      r'"%WINDIR%\Setup\Scripts\winarm-report.vbs" first-logon')
DESKTOP_READY_REPORT = FIRST_LOGON_REPORT.replace("first-logon", "desktop-ready")
EXTEND_TASK = (r'schtasks.exe /create /tn WinarmExtendC /tr "%WINDIR%\Setup\Scripts\winarm-extend-c.cmd" '
               r"/sc onstart /ru SYSTEM /rl highest /f")
EXTEND_NOW = r'cmd.exe /c "%WINDIR%\Setup\Scripts\winarm-extend-c.cmd"'


def test_driver_command_fits_and_finds_the_medium() -> None:
    command = driver_command("specialize")
    assert len(command) <= MAX_PATH
    assert f"%d:\\{MEDIUM_MARKER}" in command and command.endswith(f"call %d:\\{MEDIUM_SCRIPT} specialize")
    assert "(C D E F G H I J K L M N O P Q R S T U V W X Y Z)" in command


def test_the_report_script_is_copied_from_the_medium_first_in_specialize() -> None:
    command = report_copy_command()
    assert len(command) <= MAX_PATH
    assert command == (
        "cmd.exe /c for %d in (C D E F G H I J K L M N O P Q R S T U V W X Y Z) do @if exist %d:\\winarm.marker "
        r'(mkdir "%WINDIR%\Setup\Scripts" 2>nul & copy /y %d:\winarm\report.vbs '
        r'"%WINDIR%\Setup\Scripts\winarm-report.vbs" >nul)'
    )
    assert f"%d:\\{MEDIUM_REPORT_SCRIPT} \"{REPORT_SCRIPT}\"" in command
    for settings in (AnswerSettings(), AnswerSettings(bypass_nro=False, has_drivers=False),
                     AnswerSettings(drivers_pass="firstlogon", shares=("Data",))):
        assert specialize_commands(settings)[0].line == command
        assert [c.line for c in specialize_commands(settings)].count(command) == 1


def test_reports_are_sent_hidden_with_the_installed_script() -> None:
    assert report_command("first-logon", wait=False) == FIRST_LOGON_REPORT
    assert report_command(DESKTOP_READY, wait=True) == (
        r'wscript.exe //B //NoLogo "%WINDIR%\Setup\Scripts\winarm-report.vbs" desktop-ready'
    )


@pytest.mark.parametrize("settings", [
    AnswerSettings(), AnswerSettings(drivers_pass="firstlogon"), AnswerSettings(has_drivers=False),
    AnswerSettings(shares=("Data",)), AnswerSettings(drivers_pass="firstlogon", shares=("A",), share_user="u",
                                                     share_password="pw"),
])
def test_first_logon_reports_first_and_desktop_ready_last_through_the_channel(settings: AnswerSettings) -> None:
    text = render(settings)
    firstlogon = commands_in(parse(text), "oobeSystem", "CommandLine")
    assert firstlogon[0] == FIRST_LOGON_REPORT
    assert firstlogon[-1] == DESKTOP_READY_REPORT
    run_key = (r"reg.exe add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run /v WinarmDesktopReady "
               r'/t REG_EXPAND_SZ /d "wscript.exe //B //NoLogo \"%WINDIR%\Setup\Scripts\winarm-report.vbs\" '
               r'desktop-ready" /f')
    assert firstlogon.count(run_key) == 1
    assert firstlogon.index(run_key) < len(firstlogon) - 1, "the Run key is set before the desktop is reported"
    assert "COM1" not in text.upper(), "Windows for ARM64 has no COM port under QEMU"


SHARE_SCRIPT_RUN = r'cmd.exe /c "%WINDIR%\Setup\Scripts\winarm-map-shares.cmd"'
SHARE_RUN_KEY = (r"reg.exe add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run /v WinarmMapShares /t REG_EXPAND_SZ "
                 r'/d "cmd.exe /c start \"\" /min \"%WINDIR%\Setup\Scripts\winarm-map-shares.cmd\"" /f')
LINKED = (r'reg.exe add "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System" '
          r"/v EnableLinkedConnections /t REG_DWORD /d 1 /f")


def test_shares_are_named_allowed_and_mapped_by_the_script_now_and_at_every_logon() -> None:
    """Explorer sees the drives from the first logon on: EnableLinkedConnections in specialize (the first logon's
    commands run elevated) and the share script run from the Run key in the user's own session too."""
    root = parse(render(AnswerSettings(shares=("Data", "Music"))))
    specialize = commands_in(root, "specialize", "Path")
    assert r"cmd.exe /c (echo.& echo 10.0.2.4 host.lan)>>%WINDIR%\System32\drivers\etc\hosts" in specialize
    assert any("AllowInsecureGuestAuth /t REG_DWORD /d 1" in c for c in specialize)
    assert any("RequireSecuritySignature /t REG_DWORD /d 0" in c for c in specialize)
    assert specialize.count(LINKED) == 1
    copy = specialize.index(medium_copy_command(r"winarm\map-shares.cmd",
                                                r"%WINDIR%\Setup\Scripts\winarm-map-shares.cmd"))
    assert copy > 0
    firstlogon = commands_in(root, "oobeSystem", "CommandLine")
    assert not any("net.exe use" in c or "net use" in c for c in specialize + firstlogon), "the script maps them"
    assert firstlogon.count(SHARE_SCRIPT_RUN) == 1 and firstlogon.count(SHARE_RUN_KEY) == 1
    assert firstlogon[-1] == DESKTOP_READY_REPORT, "desktop-ready stays the last first-logon command"
    marker = r"cmd.exe /c echo WINARM-PHASE desktop-ready>\\host.lan\Data\.winarm-desktop-ready"
    assert firstlogon.index(SHARE_SCRIPT_RUN) < firstlogon.index(marker), "the share is mapped before it is written"
    run_key = r"reg.exe add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run "
    run_keys = [c for c in firstlogon if c.startswith(run_key)]
    assert [c.split(" /v ")[1].split()[0] for c in run_keys] == [
        "WinarmMapShares", "WinarmDesktopReady", "WinarmDesktopReadyShare"]


def test_a_share_login_is_on_no_command_line_and_guest_access_is_not_opened() -> None:
    """Setup keeps the answer file in C:\\Windows\\Panther: the login goes through the medium's login file."""
    settings = AnswerSettings(shares=("Data",), share_user="alice", share_password="p@ss!w0rd$")
    text = render(settings)
    root = parse(text)
    specialize = commands_in(root, "specialize", "Path")
    assert not any("AllowInsecureGuestAuth" in c for c in specialize)
    firstlogon = commands_in(root, "oobeSystem", "CommandLine")
    assert "p@ss!w0rd$" not in text and "alice" not in "".join(specialize + firstlogon)
    assert not any("cmdkey" in c.lower() for c in firstlogon)
    assert SHARE_SCRIPT_RUN in firstlogon
    assert validate(text, "arm64") == []


def test_no_share_no_share_commands() -> None:
    text = render(AnswerSettings())
    assert "host.lan" not in text and "net.exe use" not in text


# --- which command runs in which pass, without rendering ----------------------------------------------------------


@pytest.mark.parametrize("drivers_pass", DRIVERS_PASSES)
@pytest.mark.parametrize("has_drivers", [True, False])
def test_the_driver_command_runs_once_in_the_chosen_pass(drivers_pass: str, has_drivers: bool) -> None:
    s = AnswerSettings(drivers_pass=drivers_pass, has_drivers=has_drivers)
    specialize = [c.line for c in specialize_commands(s)]
    firstlogon = [c.line for c in firstlogon_commands(s)]
    wanted = has_drivers and drivers_pass != "windowsPE"
    in_specialize, at_logon = driver_command("specialize"), driver_command("oobeSystem")
    assert specialize.count(in_specialize) == (1 if wanted and drivers_pass == "specialize" else 0)
    assert firstlogon.count(at_logon) == (1 if wanted and drivers_pass == "firstlogon" else 0)
    installs = [c for c in specialize_commands(s) + firstlogon_commands(s) if c.description == INSTALL_DRIVERS]
    assert len(installs) == (1 if wanted else 0)
    assert not any("install-drivers" in line for line in specialize + firstlogon if line not in
                   (in_specialize, at_logon))


def test_bypass_nro_follows_the_copy_and_the_long_lived_defaults_in_specialize_and_can_be_left_out() -> None:
    assert "BypassNRO" in specialize_commands(AnswerSettings())[3].line
    assert not any("BypassNRO" in c.line for c in specialize_commands(AnswerSettings(bypass_nro=False)))
    assert [c.line for c in specialize_commands(AnswerSettings(bypass_nro=False, has_drivers=False))] == [
        report_copy_command(), PREVENT_ENCRYPTION_COMMAND, PASSWORD_NEVER_EXPIRES_COMMAND,
        *(c.line for c in logon_script_copies(AnswerSettings()))]


def test_the_long_lived_defaults_are_the_documented_commands() -> None:
    """BitLocker's PreventDeviceEncryption value (REG_DWORD 1) and an unlimited maximum password age, the way
    that still works on Windows 11 24H2 (no wmic)."""
    assert PREVENT_ENCRYPTION_COMMAND == (
        r"reg.exe add HKLM\SYSTEM\CurrentControlSet\Control\BitLocker /v PreventDeviceEncryption /t REG_DWORD /d 1 /f")
    assert PASSWORD_NEVER_EXPIRES_COMMAND == "net.exe accounts /maxpwage:unlimited"
    lines = [c.line for c in specialize_commands(AnswerSettings())]
    assert lines.count(PREVENT_ENCRYPTION_COMMAND) == 1 and lines.count(PASSWORD_NEVER_EXPIRES_COMMAND) == 1
    assert not any("wmic" in line.lower() for line in lines)


def test_a_product_key_is_installed_at_first_logon_from_the_medium_and_never_in_a_command_line() -> None:
    key = "VK7JG-NPHTM-C97JM-9MPGT-3V66T"
    s = AnswerSettings(product_key=key)
    lines = [c.line for c in specialize_commands(s) + firstlogon_commands(s)]
    assert not any(key in line for line in lines)
    assert product_key_command() == (
        r"cmd.exe /c for %d in (C D E F G H I J K L M N O P Q R S T U V W X Y Z) do @if exist %d:\winarm.marker "
        r"call %d:\winarm\product-key.cmd")
    first = [c.line for c in firstlogon_commands(s)]
    assert first.index(product_key_command()) == 1, "right after the first-logon report, which says the logon began"
    assert product_key_command() not in [c.line for c in firstlogon_commands(AnswerSettings())]


def test_first_logon_order_with_a_share_login() -> None:
    s = AnswerSettings(drivers_pass="firstlogon", shares=("A", "B"), share_user="u", share_password="pw")
    lines = [c.line for c in firstlogon_commands(s)]
    assert lines[0] == FIRST_LOGON_REPORT
    assert lines[1] == driver_command("oobeSystem")
    assert lines[2:4] == [SHARE_SCRIPT_RUN, SHARE_RUN_KEY], "the shares after the drivers (NetKVM)"
    assert lines[4:6] == [EXTEND_TASK, EXTEND_NOW]
    assert lines[-1] == DESKTOP_READY_REPORT
    assert len(lines) == 10  # + the share marker, the two Run-key registrations and the desktop-ready report



def test_every_command_fits_setups_limit() -> None:
    s = AnswerSettings(drivers_pass="firstlogon", shares=tuple(f"share-{i}" * 7 for i in range(8)),
                       share_user="u" * 20, share_password="p" * 100)
    for command in specialize_commands(s) + firstlogon_commands(s):
        assert len(command.line) <= MAX_COMMAND_LINE, command
    for command in specialize_commands(s):
        assert len(command.line) <= MAX_PATH, f"a RunSynchronousCommand Path is at most {MAX_PATH}: {command}"
