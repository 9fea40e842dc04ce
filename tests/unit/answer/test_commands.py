"""The Windows command lines the answer file runs: the driver command, the share mapping, the desktop-ready markers.
"""

from __future__ import annotations

import pytest

from tests.unit.answer.xmltools import commands_in, parse
from winarm.answer.commands import (
    DESKTOP_READY_COMMAND,
    INSTALL_DRIVERS,
    MAX_COMMAND_LINE,
    driver_command,
    firstlogon_commands,
    specialize_commands,
)
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings
from winarm.answer.validate import validate
from winarm.config.windows import DRIVERS_PASSES
from winarm.guest import MEDIUM_MARKER, MEDIUM_SCRIPT


def test_driver_command_fits_and_finds_the_medium() -> None:
    command = driver_command()
    assert len(command) <= 259
    assert f"%d:\\{MEDIUM_MARKER}" in command and f"call %d:\\{MEDIUM_SCRIPT}" in command
    assert "(C D E F G H I J K L M N O P Q R S T U V W X Y Z)" in command


def test_shares_are_named_allowed_and_mapped() -> None:
    root = parse(render(AnswerSettings(shares=("Data", "Music"))))
    specialize = commands_in(root, "specialize", "Path")
    assert r"cmd.exe /c (echo.& echo 10.0.2.4 host.lan)>>%WINDIR%\System32\drivers\etc\hosts" in specialize
    assert any("AllowInsecureGuestAuth /t REG_DWORD /d 1" in c for c in specialize)
    assert any("RequireSecuritySignature /t REG_DWORD /d 0" in c for c in specialize)
    firstlogon = commands_in(root, "oobeSystem", "CommandLine")
    maps = [c for c in firstlogon if c.startswith("net.exe use")]
    assert maps == [
        r"net.exe use Z: \\host.lan\Data /persistent:yes",
        r"net.exe use Y: \\host.lan\Music /persistent:yes",
    ]
    assert firstlogon[-1].endswith("desktop-ready > COM1"), "desktop-ready stays the last first-logon command"
    assert r"cmd.exe /c echo WINARM-PHASE desktop-ready>\\host.lan\Data\.winarm-desktop-ready" in firstlogon
    run_key = r"reg.exe add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run "
    run_keys = [c for c in firstlogon if c.startswith(run_key)]
    assert [c.split(" /v ")[1].split()[0] for c in run_keys] == ["WinarmDesktopReady", "WinarmDesktopReadyShare"]
    assert firstlogon.index(maps[-1]) < firstlogon.index(run_keys[0]), "the share is mapped before it is written"


def test_a_share_login_is_stored_and_used_and_guest_access_is_not_opened() -> None:
    text = render(AnswerSettings(shares=("Data",), share_user="alice", share_password="p@ss!w0rd$"))
    root = parse(text)
    specialize = commands_in(root, "specialize", "Path")
    assert not any("AllowInsecureGuestAuth" in c for c in specialize)
    firstlogon = commands_in(root, "oobeSystem", "CommandLine")
    assert "cmdkey.exe /add:host.lan /user:alice /pass:p@ss!w0rd$" in firstlogon
    assert r"net.exe use Z: \\host.lan\Data p@ss!w0rd$ /user:alice /persistent:yes" in firstlogon
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
    assert specialize.count(driver_command()) == (1 if wanted and drivers_pass == "specialize" else 0)
    assert firstlogon.count(driver_command()) == (1 if wanted and drivers_pass == "firstlogon" else 0)
    installs = [c for c in specialize_commands(s) + firstlogon_commands(s) if c.description == INSTALL_DRIVERS]
    assert [c.line for c in installs] == ([driver_command()] if wanted else [])


def test_bypass_nro_is_first_in_specialize_and_can_be_left_out() -> None:
    assert "BypassNRO" in specialize_commands(AnswerSettings())[0].line
    assert not any("BypassNRO" in c.line for c in specialize_commands(AnswerSettings(bypass_nro=False)))
    assert specialize_commands(AnswerSettings(bypass_nro=False, has_drivers=False)) == []


def test_first_logon_order_with_a_share_login() -> None:
    s = AnswerSettings(drivers_pass="firstlogon", shares=("A", "B"), share_user="u", share_password="pw")
    lines = [c.line for c in firstlogon_commands(s)]
    assert lines[0] == driver_command()
    assert lines[1] == "cmdkey.exe /add:host.lan /user:u /pass:pw"
    assert lines[2:4] == [r"net.exe use Z: \\host.lan\A pw /user:u /persistent:yes",
                          r"net.exe use Y: \\host.lan\B pw /user:u /persistent:yes"]
    assert lines[-1] == DESKTOP_READY_COMMAND
    assert len(lines) == 8  # + the share marker, the two Run-key registrations and the COM1 marker


def test_every_command_fits_setups_limit() -> None:
    s = AnswerSettings(drivers_pass="firstlogon", shares=tuple(f"share-{i}" * 7 for i in range(8)),
                       share_user="u" * 20, share_password="p" * 100)
    for command in specialize_commands(s) + firstlogon_commands(s):
        assert len(command.line) <= MAX_COMMAND_LINE, command
