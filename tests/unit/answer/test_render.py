"""Rendering the answer file and the driver script: what each setting puts where, and what no value can break.

Fast and pure: no QEMU, no Windows.
"""

from __future__ import annotations

import itertools
import re
from xml.etree.ElementTree import Element

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.answer.strategies import valid_computer_names, valid_passwords, valid_usernames
from tests.unit.answer.xmltools import FAST, NS, WCM, component, parse
from winarm.answer.commands import DRIVER_SCRIPT_PASSES, driver_command, product_key_command, report_copy_command
from winarm.answer.render import render, render_driver_script, render_report_script
from winarm.answer.settings import AnswerSettings, decode_password
from winarm.answer.validate import validate
from winarm.config.windows import DRIVERS_PASSES
from winarm.errors import RuntimeFailure, UserError
from winarm.guest import MEDIUM_DRIVERS_DIR, MEDIUM_MARKER, MEDIUM_SCRIPT, REPORT_SCRIPT, REPORT_URL

MATRIX = list(
    itertools.product(
        ["11", "10"],
        DRIVERS_PASSES,
        [True, False],  # a product key given
        ["index", "name"],
        [True, False],  # has_drivers
    )
)
ALL_BYPASSES = ["BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck", "BypassCPUCheck", "BypassStorageCheck"]


def check_bypasses(setup: Element, text: str, windows: str) -> None:
    """Windows 11 requirement bypasses: all five always on Windows 11 (whatever the hardware), none on Windows 10,
    in windowsPE."""
    bypass = [p.text or "" for p in setup.findall("u:RunSynchronous/u:RunSynchronousCommand/u:Path", NS)]
    expected = ALL_BYPASSES if windows == "11" else []
    assert [re.search(r"/v (\w+) ", p).group(1) for p in bypass] == expected  # type: ignore[union-attr]
    assert all(p.startswith(r"reg add HKLM\SYSTEM\Setup\LabConfig ") and p.endswith(" /t REG_DWORD /d 1 /f")
               for p in bypass)
    assert ("LabConfig" in text) == bool(expected)


def check_edition(setup: Element, text: str, edition: str, key: str | None, windows: str) -> None:
    """The edition, and UserData's ProductKey without a key whether or not one was given (nor anywhere else)."""
    meta = setup.find("u:ImageInstall/u:OSImage/u:InstallFrom/u:MetaData", NS)
    assert meta is not None and meta.get(f"{WCM}action") == "add"
    if edition == "index":
        assert (meta.findtext("u:Key", namespaces=NS), meta.findtext("u:Value", namespaces=NS)) == ("/IMAGE/INDEX", "3")
    else:
        assert meta.findtext("u:Key", namespaces=NS) == "/IMAGE/NAME"
        assert meta.findtext("u:Value", namespaces=NS) == f"Windows {windows} Pro"
    assert setup.find("u:UserData/u:ProductKey/u:Key", NS) is None
    assert key is None or key not in text
    assert setup.findtext("u:UserData/u:ProductKey/u:WillShowUI", namespaces=NS) == "Never"
    assert setup.findtext("u:ImageInstall/u:OSImage/u:InstallTo/u:PartitionID", namespaces=NS) == "3"


def check_driver_command(root: Element, text: str, drivers_pass: str, has_drivers: bool) -> None:
    """Where the driver command is: exactly once in the chosen pass, nowhere for windowsPE or without drivers."""
    command = driver_command(DRIVER_SCRIPT_PASSES.get(drivers_pass, ""))
    wants = has_drivers and drivers_pass != "windowsPE"
    assert text.count(MEDIUM_SCRIPT) == (1 if wants else 0)
    deployment = root.findall("u:settings[@pass='specialize']/u:component[@name='Microsoft-Windows-Deployment']", NS)
    specialize = [p.text for d in deployment for p in d.findall("u:RunSynchronous/u:RunSynchronousCommand/u:Path", NS)]
    assert (command in specialize) == (wants and drivers_pass == "specialize")
    assert any("BypassNRO" in (p or "") for p in specialize)
    assert specialize[0] == report_copy_command()
    shell = component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    first = shell.findall("u:FirstLogonCommands/u:SynchronousCommand", NS)
    lines = [c.findtext("u:CommandLine", namespaces=NS) for c in first]
    assert (command in lines) == (wants and drivers_pass == "firstlogon")
    assert (lines[-1] or "").endswith(f'"{REPORT_SCRIPT}" desktop-ready')
    assert (lines[0] or "").endswith(f'"{REPORT_SCRIPT}" first-logon')
    assert "COM1" not in text
    assert [c.findtext("u:Order", namespaces=NS) for c in first] == [str(i) for i in range(1, len(first) + 1)]


@pytest.mark.parametrize(("windows", "drivers_pass", "with_key", "edition", "has_drivers"), MATRIX)
def test_render_matrix(windows: str, drivers_pass: str, *, with_key: bool, edition: str, has_drivers: bool) -> None:
    key = "VK7JG-NPHTM-C97JM-9MPGT-3V66T" if with_key else None
    s = AnswerSettings(
        windows=windows,
        drivers_pass=drivers_pass,
        edition_index=3 if edition == "index" else None,
        edition_name=f"Windows {windows} Pro" if edition == "name" else None,
        product_key=key,
        has_drivers=has_drivers,
    )
    text = render(s)
    assert validate(text) == []
    assert text.isascii()
    root = parse(text)
    assert [e.get("pass") for e in root.findall("u:settings", NS)] == ["windowsPE", "specialize", "oobeSystem"]
    for comp in root.iter("{urn:schemas-microsoft-com:unattend}component"):
        assert comp.get("processorArchitecture") == "arm64"
        assert comp.get("publicKeyToken") == "31bf3856ad364e35"
        assert comp.get("language") == "neutral"
        assert comp.get("versionScope") == "nonSxS"
    setup = component(root, "windowsPE", "Microsoft-Windows-Setup")
    check_bypasses(setup, text, windows)
    check_edition(setup, text, edition, key, windows)
    check_driver_command(root, text, drivers_pass, has_drivers)
    check_long_lived_defaults(root, setup)
    lines = [c.findtext("u:CommandLine", namespaces=NS) for c in root.iterfind(".//u:SynchronousCommand", NS)]
    assert (product_key_command() in lines) == with_key


def check_long_lived_defaults(root: Element, setup: Element) -> None:
    """Dynamic Update off in windowsPE, the time zone in specialize and oobeSystem, and in specialize the commands
    that stop automatic device encryption and password expiry."""
    assert setup.findtext("u:DynamicUpdate/u:Enable", namespaces=NS) == "false"
    assert setup.findtext("u:DynamicUpdate/u:WillShowUI", namespaces=NS) == "Never"
    for pass_name in ("specialize", "oobeSystem"):
        shell = component(root, pass_name, "Microsoft-Windows-Shell-Setup")
        assert shell.findtext("u:TimeZone", namespaces=NS) == "UTC"
    deployment = component(root, "specialize", "Microsoft-Windows-Deployment")
    paths = [p.text for p in deployment.iterfind("u:RunSynchronous/u:RunSynchronousCommand/u:Path", NS)]
    assert (r"reg.exe add HKLM\SYSTEM\CurrentControlSet\Control\BitLocker /v PreventDeviceEncryption "
            "/t REG_DWORD /d 1 /f") in paths
    assert "net.exe accounts /maxpwage:unlimited" in paths


def test_an_edition_name_of_another_windows_version_is_refused() -> None:
    with pytest.raises(UserError, match=r"^edition name 'Windows 11 Pro' is Windows 11, .*: pass --windows 11$"):
        render(AnswerSettings(windows="10", edition_name="Windows 11 Pro"))
    assert "BypassCPUCheck" not in render(AnswerSettings(windows="10", edition_name="Windows 10 Pro"))


def test_the_time_zone_given_is_written_in_specialize_and_oobe() -> None:
    root = parse(render(AnswerSettings(timezone="Tokyo Standard Time")))
    for pass_name in ("specialize", "oobeSystem"):
        zone = component(root, pass_name, "Microsoft-Windows-Shell-Setup").findtext("u:TimeZone", namespaces=NS)
        assert zone == "Tokyo Standard Time"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Mars Standard Time", "", "utc"])
def test_a_time_zone_that_is_not_a_windows_id_is_refused(zone: str) -> None:
    with pytest.raises(UserError, match=r"^time zone .* is not a Windows time zone ID: use for example"):
        render(AnswerSettings(timezone=zone))


def test_disk_layout(base: str) -> None:
    setup = component(parse(base), "windowsPE", "Microsoft-Windows-Setup")
    disk = setup.find("u:DiskConfiguration/u:Disk", NS)
    assert disk is not None
    assert disk.findtext("u:DiskID", namespaces=NS) == "0"
    assert disk.findtext("u:WillWipeDisk", namespaces=NS) == "true"
    created = [
        (
            p.findtext("u:Order", namespaces=NS),
            p.findtext("u:Type", namespaces=NS),
            p.findtext("u:Size", namespaces=NS),
            p.findtext("u:Extend", namespaces=NS),
        )
        for p in disk.findall("u:CreatePartitions/u:CreatePartition", NS)
    ]
    assert created == [("1", "EFI", "300", None), ("2", "MSR", "16", None), ("3", "Primary", None, "true")]
    formats = {
        p.findtext("u:PartitionID", namespaces=NS): p.findtext("u:Format", namespaces=NS)
        for p in disk.findall("u:ModifyPartitions/u:ModifyPartition", NS)
    }
    assert formats == {"1": "FAT32", "2": None, "3": "NTFS"}
    other = render(AnswerSettings(disk_id=2))
    assert "<DiskID>2</DiskID>" in other and "<DiskID>0</DiskID>" not in other


def test_language_and_keyboard() -> None:
    root = parse(render(AnswerSettings(language="de-de", keyboard="0409:00000409")))
    winpe = component(root, "windowsPE", "Microsoft-Windows-International-Core-WinPE")
    assert winpe.findtext("u:UILanguage", namespaces=NS) == "de-DE"  # canonical case from languages.txt
    assert winpe.findtext("u:SetupUILanguage/u:UILanguage", namespaces=NS) == "de-DE"
    oobe = component(root, "oobeSystem", "Microsoft-Windows-International-Core")
    assert oobe.findtext("u:InputLocale", namespaces=NS) == "0409:00000409"
    assert oobe.findtext("u:UserLocale", namespaces=NS) == "de-DE"
    default = parse(render(AnswerSettings(language="fr-FR")))
    assert (
        component(default, "oobeSystem", "Microsoft-Windows-International-Core").findtext(
            "u:InputLocale", namespaces=NS
        )
        == "fr-FR"
    )


def test_autologon_off() -> None:
    text = render(AnswerSettings(autologon=False))
    assert "<AutoLogon>" not in text and validate(text) == []
    assert "<AutoLogon>" in render(AnswerSettings())


def test_values_cannot_inject_xml() -> None:
    nasty = "Pro</Value></MetaData><x a='1'>&amp;"
    text = render(AnswerSettings(username="a&b'c", edition_name=nasty, password="</Value>]]><!--"))
    root = parse(text)
    setup = component(root, "windowsPE", "Microsoft-Windows-Setup")
    assert setup.findtext("u:ImageInstall/u:OSImage/u:InstallFrom/u:MetaData/u:Value", namespaces=NS) == nasty
    shell = component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert shell.findtext("u:UserAccounts/u:LocalAccounts/u:LocalAccount/u:Name", namespaces=NS) == "a&b'c"
    value = shell.findtext("u:AutoLogon/u:Password/u:Value", namespaces=NS)
    assert decode_password(value or "") == "</Value>]]><!--"


@FAST
@given(valid_usernames, valid_passwords, valid_computer_names, st.sampled_from(["11", "10"]))
def test_valid_values_render_validate_and_round_trip(username: str, password: str, computer: str, win: str) -> None:
    text = render(AnswerSettings(windows=win, username=username, password=password, computer_name=computer))
    assert validate(text) == []
    root = parse(text)
    shell = component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    names = [n.text for n in shell.findall("u:UserAccounts/u:LocalAccounts/u:LocalAccount/u:Name", NS)]
    assert names == [username]
    assert shell.findtext("u:AutoLogon/u:Username", namespaces=NS) == username
    values = [v.text or "" for v in root.iterfind(".//u:Password/u:Value", NS)]
    assert [decode_password(v) for v in values] == [password, password]
    computers = [c.text for c in root.iter("{urn:schemas-microsoft-com:unattend}ComputerName")]
    assert computers == [computer]


def test_render_refuses_its_own_invalid_output(monkeypatch: pytest.MonkeyPatch) -> None:
    import winarm.answer.commands as module

    monkeypatch.setattr(module, "REPORT_SCRIPT", "x" * 1100)
    with pytest.raises(RuntimeFailure, match=r"\[max-length\]"):
        render(AnswerSettings())


# --- the driver script ------------------------------------------------------------------------------------------


def test_driver_script() -> None:
    folders = ["vioscsi", "NetKVM", "viogpudo"]
    script = render_driver_script(folders)
    assert script.isascii()
    assert script.endswith("\r\n") and "\n" not in script.replace("\r\n", "")
    lines = script.split("\r\n")
    calls = [line for line in lines if line.startswith("call :install ")]
    assert calls == [f'call :install "{f}"' for f in folders]
    pnputil = [line for line in lines if line.lstrip().startswith("pnputil ")]
    assert pnputil == [
        f'pnputil /add-driver "!MEDIUM!\\{MEDIUM_DRIVERS_DIR}\\%~1\\*.inf" /subdirs /install >>"%LOG%" 2>&1'
    ]
    assert 'set "LOG=%WINDIR%\\Temp\\winarm-drivers.log"' in lines
    assert "for %%C in (0 259 3010 1641) do" in script
    assert (
        f'if exist "%%D:\\{MEDIUM_MARKER}"' in script and "(C D E F G H I J K L M N O P Q R S T U V W X Y Z)" in script
    )
    assert "if !FAILED! NEQ 0 exit /b 1" in lines and "set /a FAILED+=1" in script
    # Only a failure counts: the success branch does not touch FAILED.
    success = script[script.index("if defined OK (") : script.index(") else (")]
    assert "FAILED" not in success


def test_driver_script_reports_its_pass_and_each_drivers_exit_code() -> None:
    lines = render_driver_script(["01-NetKVM", "02-viorng"]).split("\r\n")
    assert 'set "REPORT=%WINDIR%\\Temp\\winarm-drivers-report.txt"' in lines
    first_write = next(i for i, line in enumerate(lines) if "%REPORT%" in line and "echo" in line)
    assert lines[first_write] == '>"%REPORT%" echo pass %~1', "the report file starts anew with the pass"
    rc = lines.index('set "RC=!ERRORLEVEL!"')
    assert lines[rc + 1] == '>>"%REPORT%" echo driver %~1 !RC!', "one line a driver, right after pnputil"
    send = f'wscript.exe //B //NoLogo "{REPORT_SCRIPT}" drivers "%REPORT%" 10'
    assert lines.count(send) == 1
    assert lines.index(send) > max(i for i, line in enumerate(lines) if line.startswith("call :install"))
    assert lines.index(send) < lines.index("if !FAILED! NEQ 0 exit /b 1"), "sent before the script exits"


def test_report_script_posts_to_the_channel_hidden_with_retries() -> None:
    script = render_report_script()
    assert script.isascii() and script.endswith("\r\n") and "\n" not in script.replace("\r\n", "")
    lines = script.split("\r\n")
    assert f'Const REPORT_URL = "{REPORT_URL}"' in lines
    assert "Const PAUSE_MS = 3000" in lines and "attempts = 60" in [line.strip() for line in lines]
    assert "    If shell.Run(command, 0, True) = 0 Then WScript.Quit 0" in lines, "hidden (0), waited for (True)"
    assert "WScript.Quit 1" in lines
    curl = next(line for line in lines if "SendCommand = \"\"\"\" & curl" in line)
    assert '-s -f -m 10 -o NUL " & data & " """ & REPORT_URL & name & """"' in curl
    assert '"--data-binary ""@" & body & """"' in script and "Invoke-WebRequest -UseBasicParsing -Method Post" in script
    assert "-WindowStyle Hidden" in script


@pytest.mark.parametrize(
    "folders", [["a b"], ["x&y"], [".."], [""], ["vi\u00f6"], ["a%b"], ["ok", "OK"], ["a!b"], ["viostor\n"]]
)
def test_driver_script_refuses_bad_folders(folders: list[str]) -> None:
    with pytest.raises(UserError, match="driver folder"):
        render_driver_script(folders)
