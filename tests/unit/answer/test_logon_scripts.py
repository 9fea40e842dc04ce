"""The logon scripts on the answer medium (item 14: the shares mapped from the user's logon too, retried, the
login delivered by the medium; item 16: C: extended over a grown disk), and the validator's rule that no
command line of the answer file carries a share login. Windows cannot run here: the scripts' text is checked
for what Windows' cmd.exe, net.exe, cmdkey.exe and diskpart.exe would be given; the test guest runs them in
tests/system/test_install_share.py and tests/system/test_disk_grow.py."""

from __future__ import annotations

import re

import pytest

from tests.unit.answer.xmltools import line_of, rules_and_lines
from winarm.answer.commands import (
    EXTEND_DISKPART,
    EXTEND_SCRIPT,
    SHARE_SCRIPT,
    firstlogon_commands,
    specialize_commands,
)
from winarm.answer.logon_scripts import (
    SHARE_ATTEMPTS,
    SHARE_PAUSE_SECONDS,
    render_extend_diskpart,
    render_extend_script,
    render_share_script,
)
from winarm.answer.medium import medium_files
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings
from winarm.answer.validate import validate
from winarm.answer.validate_commands import command_secret
from winarm.media.drivers import DriverSelection

LOGIN = AnswerSettings(shares=("Data", "Music"), share_user="alice", share_password="p@ss!w0rd$")


def files_of(settings: AnswerSettings) -> dict[str, bytes]:
    return {f.path: f.read() for f in medium_files(settings, DriverSelection())}


def test_the_share_script_maps_each_share_persistently_and_retries_for_about_a_minute() -> None:
    script = render_share_script(("Data", "Music"))
    assert script.endswith("\r\n") and "\n" not in script.replace("\r\n", "")
    lines = script.split("\r\n")
    assert 'call :map Z: "\\\\host.lan\\Data"' in lines and 'call :map Y: "\\\\host.lan\\Music"' in lines
    assert "net.exe use %~1 %~2 /persistent:yes >>\"%LOG%\" 2>&1" in lines
    assert f'set "ATTEMPTS={SHARE_ATTEMPTS}"' in lines
    assert f"ping.exe -n {SHARE_PAUSE_SECONDS + 1} 127.0.0.1 >nul" in lines, "a pause of a few seconds a try"
    assert 50 <= SHARE_ATTEMPTS * SHARE_PAUSE_SECONDS <= 90
    assert lines.index("goto :map_try") > lines.index(":map_try"), "it loops"
    assert "setlocal EnableExtensions DisableDelayedExpansion" in lines, "a '!' in the password stays as it is"


def test_the_share_script_takes_the_login_from_the_medium_and_stores_it_with_cmdkey() -> None:
    script = render_share_script(("Data",))
    assert ('for %%D in (C D E F G H I J K L M N O P Q R S T U V W X Y Z) do if not defined LOGIN if exist '
            '"%%D:\\winarm.marker" if exist "%%D:\\winarm\\share-login.txt" '
            'set "LOGIN=%%D:\\winarm\\share-login.txt"') in script
    assert ('if defined LOGIN for /f "usebackq tokens=1,2" %%U in ("%LOGIN%") do '
            'cmdkey.exe /add:host.lan /user:%%U /pass:%%V >nul') in script
    assert script.index("cmdkey.exe") < script.index("call :map Z:"), "stored before the first net use"


def test_the_login_is_only_in_the_medium_file_never_in_the_answer_file() -> None:
    files = files_of(LOGIN)
    assert files["winarm/share-login.txt"] == b"alice p@ss!w0rd$\r\n"
    assert files["winarm/map-shares.cmd"] == render_share_script(("Data", "Music")).encode()
    answer = files["Autounattend.xml"].decode()
    assert "p@ss!w0rd$" not in answer and "alice" not in answer
    assert "p@ss!w0rd$" not in files["winarm/map-shares.cmd"].decode()
    guest = files_of(AnswerSettings(shares=("Data",)))
    assert "winarm/map-shares.cmd" in guest and "winarm/share-login.txt" not in guest
    assert "winarm/map-shares.cmd" not in files_of(AnswerSettings())


def test_the_extend_script_runs_diskpart_with_its_script_beside_it() -> None:
    script = render_extend_script()
    assert f'diskpart.exe /s "%~dp0{EXTEND_DISKPART.rsplit(chr(92), 1)[1]}"' in script
    assert EXTEND_DISKPART.rsplit("\\", 1)[0] == EXTEND_SCRIPT.rsplit("\\", 1)[0]
    commands = [line for line in render_extend_diskpart().split("\r\n") if line and not line.startswith("rem ")]
    assert commands == ["select volume C", "extend"]
    files = files_of(AnswerSettings())
    assert files["winarm/extend-c.cmd"] == script.encode() and files["winarm/extend-c.txt"] == \
        render_extend_diskpart().encode()


@pytest.mark.parametrize("settings", [AnswerSettings(), LOGIN, AnswerSettings(drivers_pass="firstlogon")])
def test_the_scripts_are_copied_in_specialize_and_used_at_the_first_logon(settings: AnswerSettings) -> None:
    specialize = [c.line for c in specialize_commands(settings)]
    for target in (EXTEND_SCRIPT, EXTEND_DISKPART) + ((SHARE_SCRIPT,) if settings.shares else ()):
        assert sum(f'"{target}" >nul)' in line and "copy /y %d:\\winarm\\" in line for line in specialize) == 1
    firstlogon = [c.line for c in firstlogon_commands(settings)]
    task = [line for line in firstlogon if line.startswith("schtasks.exe /create")]
    assert task == [f'schtasks.exe /create /tn WinarmExtendC /tr "{EXTEND_SCRIPT}" /sc onstart /ru SYSTEM '
                    "/rl highest /f"], "diskpart needs an administrator: a task as SYSTEM, not the Run key"
    assert f'cmd.exe /c "{EXTEND_SCRIPT}"' in firstlogon
    assert (f'cmd.exe /c "{SHARE_SCRIPT}"' in firstlogon) == bool(settings.shares)


@pytest.mark.parametrize(("line", "found"), [
    (r"net.exe use Z: \\host.lan\Data p@ss /user:alice /persistent:yes", "'net use' with a password"),
    (r"cmd /c net use Z: \\h\s /user:bob", "'net use' with a user (/user:)"),
    (r"NET USE \\h\s secret", "'net use' with a password"),
    ("cmdkey.exe /add:host.lan /user:u /pass:pw", "'cmdkey' with a password (/pass)"),
    (r"net.exe use Z: \\host.lan\Data /persistent:yes", None),
    (r"net use Z: /delete & echo hi", None),
    ("net user bob pw /add", None),
    ("cmdkey /list", None),
    (r'cmd.exe /c "%WINDIR%\Setup\Scripts\winarm-map-shares.cmd"', None),
])
def test_command_secret_reads_net_use_and_cmdkey(line: str, found: str | None) -> None:
    assert command_secret(line) == found


def test_rule_secret_command_line(base: str) -> None:
    """What winarm wrote before: the login on the first logon's net use and cmdkey lines. Both are reported."""
    run = r"cmd.exe /c &#34;%WINDIR%\Setup\Scripts\winarm-extend-c.cmd&#34;"
    assert run in base
    broken = base.replace(run, r"net.exe use Z: \\host.lan\Data pw /user:alice /persistent:yes", 1)
    findings = validate(broken)
    assert rules_and_lines(findings) == [("secret-command-line", line_of(broken, "net.exe use Z:"))]
    assert "C:\\Windows\\Panther" in findings[0].message
    path = "reg add HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\OOBE /v BypassNRO /t REG_DWORD /d 1 /f"
    broken = base.replace(path, "cmdkey.exe /add:host.lan /user:alice /pass:pw")
    assert rules_and_lines(validate(broken)) == [("secret-command-line", line_of(broken, "cmdkey.exe"))]
    assert validate(render(LOGIN)) == []


def test_no_rendered_answer_file_puts_a_login_on_a_command_line() -> None:
    text = render(LOGIN)
    for line in re.findall(r"<(?:Path|CommandLine)>([^<]*)<", text):
        assert command_secret(line) is None, line


RECOVERY = """            <CreatePartition wcm:action="add">
              <Order>4</Order>
              <Type>Primary</Type>
              <Size>1000</Size>
            </CreatePartition>
          </CreatePartitions>"""


def test_rule_partition_after_c(base: str) -> None:
    """A recovery partition after C: (Microsoft's sample layout) would keep diskpart from extending C:."""
    assert "<Extend>true</Extend>" in base, "winarm's C: takes the rest of the disk"
    broken = base.replace("          </CreatePartitions>", RECOVERY, 1).replace(
        "<Extend>true</Extend>", "<Size>20000</Size>", 1)
    findings = validate(broken)
    c_drive = line_of(broken, '<ModifyPartition wcm:action="add">', 2)
    assert rules_and_lines(findings) == [("partition-after-c", c_drive)]
    assert "C: is partition 3 of 4" in findings[0].message
    moved = base.replace("<PartitionID>3</PartitionID>\n              <Label>Windows</Label>",
                         "<PartitionID>2</PartitionID>\n              <Label>Windows</Label>")
    assert [f.rule for f in validate(moved)] == ["duplicate-key", "partition-after-c"]


def test_after_one_unmapped_share_the_others_get_one_try() -> None:
    """With no share server every share would take its minute: the first logon would wait minutes."""
    lines = render_share_script(("A", "B", "C")).split("\r\n")
    assert lines.index('if %UNMAPPED% GTR 0 set "ATTEMPTS=1"') == lines.index("set /a TRY=0") + 2
