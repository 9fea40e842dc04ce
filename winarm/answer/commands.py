"""Every Windows command line the answer file runs, and which of them run in which pass for given settings.

The specialize pass runs :func:`specialize_commands` (``RunSynchronous``), the first logon runs
:func:`firstlogon_commands` (``FirstLogonCommands``), each in list order. The strings are plain data: the template
escapes them, nothing here quotes for XML.

Windows tells winarm how far it got through the guest channel (:data:`~winarm.guest.REPORT_URL`): specialize
first copies the report script from the answer medium to :data:`~winarm.guest.REPORT_SCRIPT`, the driver script
reports ``drivers``, the first logon reports ``first-logon`` first and ``desktop-ready`` last, and a Run-key value
reports ``desktop-ready`` at every later logon. Nothing goes to COM1: Windows for ARM64 has no COM port under QEMU.

Two more scripts go from the medium to ``%WINDIR%\\Setup\\Scripts`` in specialize: the share script (it maps the
shares at the first logon and at every logon; a share login reaches it through a file on the answer medium, never
through a command line, since Setup keeps a copy of this file in ``C:\\Windows\\Panther``) and the script that
extends C: over space the disk gained (a scheduled task runs it as SYSTEM at every start).
"""

from __future__ import annotations

from dataclasses import dataclass

from winarm.answer.settings import AnswerSettings
from winarm.guest import (
    DESKTOP_READY,
    DESKTOP_READY_FILE,
    MARKER_PREFIX,
    MEDIUM_MARKER,
    MEDIUM_PRODUCT_KEY_SCRIPT,
    MEDIUM_REPORT_SCRIPT,
    MEDIUM_SCRIPT,
    REPORT_FIRST_LOGON,
    REPORT_SCRIPT,
    SHARE_ADDRESS,
)
from winarm.guest import SHARE_HOSTNAME as SHARE_HOST

DRIVE_LETTERS = "CDEFGHIJKLMNOPQRSTUVWXYZ"
"""The drive letters searched for the answer medium, in order."""
MAX_PATH = 259
MAX_COMMAND_LINE = 1024
"""Setup's limit on one command line (``Path`` of a ``RunSynchronousCommand``); the validator enforces it."""
RUN_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"
REPORT_RUN_VALUE = "WinarmDesktopReady"
"""The Run-key value that reports ``desktop-ready`` at every logon after the first."""
DRIVER_SCRIPT_PASSES = {"specialize": "specialize", "firstlogon": "oobeSystem"}
"""The Setup pass the driver script is told it runs in (its report's ``pass`` line), by drivers pass."""
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
SCRIPTS_DIR = r"%WINDIR%\Setup\Scripts"
MEDIUM_SHARE_SCRIPT = r"winarm\map-shares.cmd"
SHARE_SCRIPT = rf"{SCRIPTS_DIR}\winarm-map-shares.cmd"
"""The share script: it maps every share (retrying while the network comes up) and stores the share login."""
MEDIUM_SHARE_LOGIN = r"winarm\share-login.txt"
"""On the answer medium only, with a share login: ``USER PASSWORD`` and CRLF, read by the share script."""
SHARE_RUN_VALUE = "WinarmMapShares"
"""The Run-key value that runs the share script at every logon, in the user's own (unelevated) session."""
LINKED_CONNECTIONS_COMMAND = (
    r'reg.exe add "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System" '
    r"/v EnableLinkedConnections /t REG_DWORD /d 1 /f"
)
"""FirstLogonCommands run elevated: with EnableLinkedConnections a drive mapped there is seen by Explorer's
unelevated session too (it takes effect at the next boot: specialize is followed by one)."""
MEDIUM_EXTEND_SCRIPT = r"winarm\extend-c.cmd"
EXTEND_SCRIPT = rf"{SCRIPTS_DIR}\winarm-extend-c.cmd"
"""The script that extends C: over the unallocated space after it (the disk grew), with diskpart."""
MEDIUM_EXTEND_DISKPART = r"winarm\extend-c.txt"
EXTEND_DISKPART = rf"{SCRIPTS_DIR}\winarm-extend-c.txt"
"""Its diskpart script (``select volume C``, ``extend``), beside it: the extend script runs ``%~dp0`` + this name."""
EXTEND_TASK = "WinarmExtendC"
"""The scheduled task that runs the extend script as SYSTEM at every start of Windows (diskpart needs an
administrator: a Run-key value runs unelevated)."""
EXTEND_TASK_COMMAND = (
    f'schtasks.exe /create /tn {EXTEND_TASK} /tr "{EXTEND_SCRIPT}" /sc onstart /ru SYSTEM /rl highest /f'
)
PREVENT_ENCRYPTION_COMMAND = (
    r"reg.exe add HKLM\SYSTEM\CurrentControlSet\Control\BitLocker /v PreventDeviceEncryption /t REG_DWORD /d 1 /f"
)
"""Windows 11 24H2 turns on BitLocker device encryption by itself on hardware it deems capable; this value stops
it. A registry value rather than Microsoft-Windows-SecureStartup-FilterDriver's PreventDeviceEncryption, which
Microsoft documents for Windows 8 SoCs only (and for no arm64 image)."""
PASSWORD_NEVER_EXPIRES_COMMAND = "net.exe accounts /maxpwage:unlimited"
"""Local passwords expire after 42 days, and AutoLogon then stops at a prompt. The unattend LocalAccount has no
expiry setting, and ``wmic`` (its usual per-account way) is deprecated and missing from Windows 11 24H2 on: the
machine's maximum password age, set to unlimited, covers every local account."""


@dataclass(frozen=True)
class Command:
    """One command of the answer file: what it is for (its ``Description``) and the command line itself."""

    description: str
    line: str


def _on_medium(action: str) -> str:
    """A command line that runs ``action`` (``%d`` its drive letter) on each drive holding :data:`MEDIUM_MARKER`."""
    letters = " ".join(DRIVE_LETTERS)
    return f"cmd.exe /c for %d in ({letters}) do @if exist %d:\\{MEDIUM_MARKER} {action}"


def driver_command(pass_name: str) -> str:
    """The one command line that finds the answer medium by :data:`MEDIUM_MARKER` and runs :data:`MEDIUM_SCRIPT`,
    telling it the Setup pass ``pass_name`` it runs in (the first line of its ``drivers`` report)."""
    return _on_medium(f"call %d:\\{MEDIUM_SCRIPT} {pass_name}")


def medium_copy_command(source: str, target: str) -> str:
    """The command line that copies ``source`` (a path on the answer medium) to ``target`` (a path on the disk),
    creating its folder: later passes and logons find it there once the medium is gone."""
    folder = target.rsplit("\\", 1)[0]
    return _on_medium(f'(mkdir "{folder}" 2>nul & copy /y %d:\\{source} "{target}" >nul)')


def report_copy_command() -> str:
    """The command line that copies the report script from the answer medium (:data:`MEDIUM_REPORT_SCRIPT`) to
    :data:`REPORT_SCRIPT`."""
    return medium_copy_command(MEDIUM_REPORT_SCRIPT, REPORT_SCRIPT)


def report_command(name: str, *, wait: bool) -> str:
    """The command line that sends the report ``name`` with the installed script, hidden; without ``wait`` it
    starts the script and returns at once (the script retries for minutes while the network comes up)."""
    line = f'wscript.exe //B //NoLogo "{REPORT_SCRIPT}" {name}'
    return line if wait else f'cmd.exe /c start "" {line}'


def run_key_command(value: str, command: str, kind: str = "REG_SZ") -> str:
    """A command that registers ``command`` to run at every logon (the machine's Run key, value ``value``, of
    type ``kind``: ``REG_EXPAND_SZ`` expands ``%WINDIR%`` and the like at each logon)."""
    quoted = command.replace('"', '\\"')
    return f'reg.exe add {RUN_KEY} /v {value} /t {kind} /d "{quoted}" /f'


def share_marker_command(share: str) -> str:
    """A command that writes the desktop-ready marker file to ``share``."""
    return rf"cmd.exe /c echo {MARKER_PREFIX} {DESKTOP_READY}>\\{SHARE_HOST}\{share}\{DESKTOP_READY_FILE}"


def _installs_drivers_in(s: AnswerSettings, pass_name: str) -> bool:
    """Whether a command installs the other drivers in ``pass_name`` (never in windowsPE: Setup loads them)."""
    return s.has_drivers and s.drivers_pass != "windowsPE" and s.drivers_pass == pass_name


def specialize_commands(s: AnswerSettings) -> list[Command]:
    """The specialize pass's commands: the report script's copy first, the long-lived VM's defaults (no automatic
    device encryption, passwords that never expire), BypassNRO, the drivers, the host name and SMB policy for
    shares, then the logon scripts' copies (:func:`logon_script_copies`)."""
    commands = [
        Command("Copy winarm's report script from the answer medium", report_copy_command()),
        Command("Prevent automatic BitLocker device encryption", PREVENT_ENCRYPTION_COMMAND),
        Command("Local passwords never expire (AutoLogon would stop after 42 days)", PASSWORD_NEVER_EXPIRES_COMMAND),
    ]
    if s.bypass_nro:
        commands.append(Command("Allow setup without a network (BypassNRO)", BYPASS_NRO_COMMAND))
    if _installs_drivers_in(s, "specialize"):
        commands.append(Command(INSTALL_DRIVERS, driver_command(DRIVER_SCRIPT_PASSES["specialize"])))
    if s.shares:
        commands.append(Command(f"Name the host {SHARE_HOST} for the shared folders", HOSTS_COMMAND))
        if s.share_user is None:
            commands.append(Command("Allow guest access to the shared folders", GUEST_AUTH_COMMAND))
            commands.append(Command("Guest SMB sessions cannot sign", NO_SIGNING_COMMAND))
    return commands + logon_script_copies(s)


def logon_script_copies(s: AnswerSettings) -> list[Command]:
    """Specialize's copies of the logon scripts from the answer medium to the disk: the extend script and its
    diskpart script always; with shares, the share script and EnableLinkedConnections."""
    commands = [
        Command("Copy winarm's script that extends C: over a grown disk",
                medium_copy_command(MEDIUM_EXTEND_SCRIPT, EXTEND_SCRIPT)),
        Command("Copy its diskpart script", medium_copy_command(MEDIUM_EXTEND_DISKPART, EXTEND_DISKPART)),
    ]
    if s.shares:
        commands.append(Command("Copy winarm's share script", medium_copy_command(MEDIUM_SHARE_SCRIPT, SHARE_SCRIPT)))
        commands.append(Command("Show drives mapped elevated to Explorer too (EnableLinkedConnections)",
                                LINKED_CONNECTIONS_COMMAND))
    return commands


def script_command(script: str) -> str:
    """The command line that runs the batch file ``script`` (a path on the disk) and waits for it."""
    return f'cmd.exe /c "{script}"'


def _share_mapping() -> list[Command]:
    """The share script now (it stores the share login from the medium and maps every share, retrying) and from
    the Run key at every logon, minimised, in the user's own session. No login on any command line."""
    return [
        Command("Map the shared folders (the login, if any, comes from the answer medium)",
                script_command(SHARE_SCRIPT)),
        Command("At every logon, map the shared folders in the user's session",
                run_key_command(SHARE_RUN_VALUE, f'cmd.exe /c start "" /min "{SHARE_SCRIPT}"', "REG_EXPAND_SZ")),
    ]


def _extend_c() -> list[Command]:
    """The scheduled task that extends C: at every start, and one run now (the disk may have grown during the
    install)."""
    return [
        Command("At every start, extend C: over space the disk gained", EXTEND_TASK_COMMAND),
        Command("Extend C: over space the disk gained", script_command(EXTEND_SCRIPT)),
    ]


def _desktop_ready(shares: tuple[str, ...]) -> list[Command]:
    """The desktop-ready reports: now (last) and at every later logon (the Run key), and with shares the marker
    file in the first share too (a second channel)."""
    commands = []
    if shares:
        commands.append(Command("Tell winarm the desktop is ready, through the share",
                                share_marker_command(shares[0])))
    commands.append(Command(
        "At every later logon, tell winarm the desktop is ready",
        run_key_command(REPORT_RUN_VALUE, report_command(DESKTOP_READY, wait=True), "REG_EXPAND_SZ"),
    ))
    if shares:
        commands.append(Command("At every later logon, tell winarm through the share too",
                                run_key_command("WinarmDesktopReadyShare", share_marker_command(shares[0]))))
    commands.append(Command("Tell winarm the desktop is ready", report_command(DESKTOP_READY, wait=False)))
    return commands


def product_key_command() -> str:
    """The command line that runs the product-key script on the answer medium (:data:`MEDIUM_PRODUCT_KEY_SCRIPT`),
    which reads the key from a file beside it: the key itself is in no command line of the answer file."""
    return _on_medium(f"call %d:\\{MEDIUM_PRODUCT_KEY_SCRIPT}")


def _product_key(s: AnswerSettings) -> list[Command]:
    """The product-key command when the user gave a key (none otherwise)."""
    if s.product_key is None:
        return []
    return [Command("Install the product key from the winarm medium (slmgr /ipk)", product_key_command())]


def firstlogon_commands(s: AnswerSettings) -> list[Command]:
    """The first logon's commands: the first-logon report, the product key, the drivers, the share script (now
    and from the Run key), the extend task and a first extend, then the desktop-ready reports."""
    commands = [Command("Tell winarm the first logon began", report_command(REPORT_FIRST_LOGON, wait=False))]
    commands += _product_key(s)
    if _installs_drivers_in(s, "firstlogon"):
        commands.append(Command(INSTALL_DRIVERS, driver_command(DRIVER_SCRIPT_PASSES["firstlogon"])))
    if s.shares:
        commands += _share_mapping()
    commands += _extend_c()
    return commands + _desktop_ready(s.shares)
