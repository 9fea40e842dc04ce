"""Every Windows command line the answer file runs, and which of them run in which pass for given settings.

The specialize pass runs :func:`specialize_commands` (``RunSynchronous``), the first logon runs
:func:`firstlogon_commands` (``FirstLogonCommands``), each in list order. The strings are plain data: the template
escapes them, nothing here quotes for XML.
"""

from __future__ import annotations

from dataclasses import dataclass

from winarm.answer.settings import SHARE_LETTERS, AnswerSettings
from winarm.guest import (
    DESKTOP_READY,
    DESKTOP_READY_FILE,
    MARKER_PREFIX,
    MEDIUM_MARKER,
    MEDIUM_SCRIPT,
    SHARE_ADDRESS,
)
from winarm.guest import SHARE_HOSTNAME as SHARE_HOST

DRIVE_LETTERS = "CDEFGHIJKLMNOPQRSTUVWXYZ"
"""The drive letters searched for the answer medium, in order."""
MAX_PATH = 259
MAX_COMMAND_LINE = 1024
"""Setup's limit on one command line (``Path`` of a ``RunSynchronousCommand``); the validator enforces it."""
RUN_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
DESKTOP_READY_COMMAND = f"cmd.exe /c echo {MARKER_PREFIX} {DESKTOP_READY} > COM1"
DESKTOP_READY_AT_LOGON = f"cmd.exe /c echo {MARKER_PREFIX} {DESKTOP_READY}>COM1"
BYPASS_NRO_COMMAND = (
    r"reg add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\OOBE /v BypassNRO /t REG_DWORD /d 1 /f"
)
HOSTS_COMMAND = (
    rf"cmd.exe /c (echo.& echo {SHARE_ADDRESS} {SHARE_HOST})>>%WINDIR%\System32\drivers\etc\hosts"
)
_LANMAN = r"HKLM\SYSTEM\CurrentControlSet\Services\LanmanWorkstation\Parameters"
GUEST_AUTH_COMMAND = rf'reg.exe add "{_LANMAN}" /v AllowInsecureGuestAuth /t REG_DWORD /d 1 /f'
"""Windows 11 24H2 and Windows 10 Enterprise/Education refuse guest logons to SMB servers by default."""
NO_SIGNING_COMMAND = rf'reg.exe add "{_LANMAN}" /v RequireSecuritySignature /t REG_DWORD /d 0 /f'
"""Windows 11 24H2 requires SMB signing, which a guest session cannot do."""
INSTALL_DRIVERS = "Install the virtio drivers from the winarm medium"


@dataclass(frozen=True)
class Command:
    """One command of the answer file: what it is for (its ``Description``) and the command line itself."""

    description: str
    line: str


def driver_command() -> str:
    """The one command line that finds the answer medium by :data:`MEDIUM_MARKER` and runs :data:`MEDIUM_SCRIPT`."""
    letters = " ".join(DRIVE_LETTERS)
    return (
        f"cmd.exe /c for %d in ({letters}) do @if exist %d:\\{MEDIUM_MARKER} call %d:\\{MEDIUM_SCRIPT}"
    )


def run_key_command(value: str, command: str) -> str:
    """A command that registers ``command`` to run at every logon (the machine's Run key, value ``value``)."""
    return f'reg.exe add {RUN_KEY} /v {value} /t REG_SZ /d "{command}" /f'


def share_marker_command(share: str) -> str:
    """A command that writes the desktop-ready marker file to ``share``."""
    return rf"cmd.exe /c echo {MARKER_PREFIX} {DESKTOP_READY}>\\{SHARE_HOST}\{share}\{DESKTOP_READY_FILE}"


def _installs_drivers_in(s: AnswerSettings, pass_name: str) -> bool:
    """Whether a command installs the other drivers in ``pass_name`` (never in windowsPE: Setup loads them)."""
    return s.has_drivers and s.drivers_pass != "windowsPE" and s.drivers_pass == pass_name


def specialize_commands(s: AnswerSettings) -> list[Command]:
    """The specialize pass's commands: BypassNRO, the drivers, and the host name and SMB policy for shares."""
    commands = []
    if s.bypass_nro:
        commands.append(Command("Allow setup without a network (BypassNRO)", BYPASS_NRO_COMMAND))
    if _installs_drivers_in(s, "specialize"):
        commands.append(Command(INSTALL_DRIVERS, driver_command()))
    if s.shares:
        commands.append(Command(f"Name the host {SHARE_HOST} for the shared folders", HOSTS_COMMAND))
        if s.share_user is None:
            commands.append(Command("Allow guest access to the shared folders", GUEST_AUTH_COMMAND))
            commands.append(Command("Guest SMB sessions cannot sign", NO_SIGNING_COMMAND))
    return commands


def _share_mapping(s: AnswerSettings) -> list[Command]:
    """The stored share login (when there is one) and one ``net use`` per share, to Z:, Y:, ..."""
    commands = []
    if s.share_user is not None:
        commands.append(Command(
            "Remember the shared folders' login",
            f"cmdkey.exe /add:{SHARE_HOST} /user:{s.share_user} /pass:{s.share_password}",
        ))
    login = "" if s.share_user is None else f" {s.share_password} /user:{s.share_user}"
    for letter, name in zip(SHARE_LETTERS, s.shares, strict=False):
        commands.append(Command(
            f"Map the shared folder {name} to {letter}:",
            f"net.exe use {letter}: \\\\{SHARE_HOST}\\{name}{login} /persistent:yes",
        ))
    return commands


def _desktop_ready(shares: tuple[str, ...]) -> list[Command]:
    """The desktop-ready markers: now and at every later logon, on COM1 and (with shares) in the first share."""
    commands = []
    if shares:
        commands.append(Command("Tell winarm the desktop is ready, through the share",
                                share_marker_command(shares[0])))
    commands.append(Command(
        "At every later logon, tell winarm the desktop is ready",
        run_key_command("WinarmDesktopReady", DESKTOP_READY_AT_LOGON),
    ))
    if shares:
        commands.append(Command("At every later logon, tell winarm through the share too",
                                run_key_command("WinarmDesktopReadyShare", share_marker_command(shares[0]))))
    commands.append(Command("Tell winarm the desktop is ready", DESKTOP_READY_COMMAND))
    return commands


def firstlogon_commands(s: AnswerSettings) -> list[Command]:
    """The first logon's commands: the drivers, the share login and mappings, then the desktop-ready markers."""
    commands = []
    if _installs_drivers_in(s, "firstlogon"):
        commands.append(Command(INSTALL_DRIVERS, driver_command()))
    if s.shares:
        commands += _share_mapping(s)
    return commands + _desktop_ready(s.shares)
