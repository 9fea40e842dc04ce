"""The answer file: rendering, the validator rule by rule, password obfuscation, the driver script and the CLI.

Fast and pure: no QEMU, no Windows. The validator tests take a rendered file, break one thing and check the exact
rule and line reported.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import stat
import string
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from click.testing import CliRunner
from defusedxml import ElementTree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winarm.answer.render import (
    DRIVERS_PASSES,
    AnswerSettings,
    Finding,
    check_settings,
    decode_password,
    driver_command,
    encode_password,
    render,
    render_driver_script,
    validate,
)
from winarm.cli.unattend import unattend
from winarm.errors import RuntimeFailure, UserError
from winarm.guest import MEDIUM_DRIVERS_DIR, MEDIUM_MARKER, MEDIUM_SCRIPT

NS = {"u": "urn:schemas-microsoft-com:unattend"}
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(text: str) -> Element:
    return ElementTree.fromstring(text.encode("ascii"))


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth occurrence of needle."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1


def replace_nth(text: str, old: str, new: str, nth: int = 0) -> str:
    index = -1
    for _ in range(nth + 1):
        index = text.index(old, index + 1)
    return text[:index] + new + text[index + len(old) :]


def rules_and_lines(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(f.rule, f.line) for f in findings]


def component(root: Element, pass_name: str, name: str) -> Element:
    found = root.findall(f"u:settings[@pass='{pass_name}']/u:component[@name='{name}']", NS)
    assert len(found) == 1, (pass_name, name)
    return found[0]


@pytest.fixture(scope="module")
def base() -> str:
    """Windows 11, drivers in specialize, no TPM and no Secure Boot: every optional part present."""
    return render(AnswerSettings(tpm=False, secure_boot=False))


# --- password obfuscation ---------------------------------------------------------------------------------------


def test_password_known_vectors() -> None:
    # The values in Microsoft's unattend reference examples.
    assert encode_password("password") == "cABhAHMAcwB3AG8AcgBkAFAAYQBzAHMAdwBvAHIAZAA="
    assert encode_password("pw") == "cAB3AFAAYQBzAHMAdwBvAHIAZAA="
    assert (
        encode_password("pw", "AdministratorPassword")
        == "cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8AcgBkAA=="
    )
    assert encode_password("") == "UABhAHMAcwB3AG8AcgBkAA=="
    # Microsoft's own example drops the padding; Setup takes it, so do we.
    assert decode_password("cAB3AFAAYQBzAHMAdwBvAHIAZAA") == "pw"
    assert (
        decode_password("cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8AcgBkAA==", "AdministratorPassword")
        == "pw"
    )


def test_password_wrong_suffix_and_garbage() -> None:
    bare = base64.b64encode("pw".encode("utf-16-le")).decode()  # no suffix at all
    with pytest.raises(ValueError, match="does not end with 'Password'"):
        decode_password(bare, "Password")
    with pytest.raises(ValueError, match="does not end with 'AdministratorPassword'"):
        decode_password(encode_password("pw"), "AdministratorPassword")
    # "...AdministratorPassword" also ends with "Password": the obfuscation cannot tell those two apart.
    assert decode_password(encode_password("pw", "AdministratorPassword")) == "pwAdministrator"
    with pytest.raises(ValueError, match="base64"):
        decode_password("not base64!")
    with pytest.raises(ValueError):
        decode_password("YQ==")  # one byte: not UTF-16LE
    with pytest.raises(ValueError, match="kind"):
        encode_password("pw", "Secret")


@FAST
@given(st.text(max_size=40), st.sampled_from(["Password", "AdministratorPassword"]))
def test_password_round_trip(password: str, kind: str) -> None:
    value = encode_password(password, kind)
    assert value.isascii()
    assert decode_password(value, kind) == password


# --- rendering --------------------------------------------------------------------------------------------------

MATRIX = list(
    itertools.product(
        ["11", "10"],
        DRIVERS_PASSES,
        [True, False],  # tpm
        [True, False],  # secure_boot
        ["index", "name"],
        [True, False],  # has_drivers
    )
)


@pytest.mark.parametrize(("windows", "drivers_pass", "tpm", "secure_boot", "edition", "has_drivers"), MATRIX)
def test_render_matrix(  # noqa: PLR0917
    windows: str, drivers_pass: str, tpm: bool, secure_boot: bool, edition: str, has_drivers: bool
) -> None:
    s = AnswerSettings(
        windows=windows,
        drivers_pass=drivers_pass,
        tpm=tpm,
        secure_boot=secure_boot,
        edition_index=3 if edition == "index" else None,
        edition_name="Windows 11 Pro" if edition == "name" else None,
        product_key="VK7JG-NPHTM-C97JM-9MPGT-3V66T" if edition == "index" else None,
        has_drivers=has_drivers,
        bypass_ram_check=not tpm,
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

    # Windows 11 requirement bypasses: only what was asked, only on Windows 11, in windowsPE.
    setup = component(root, "windowsPE", "Microsoft-Windows-Setup")
    bypass = [p.text or "" for p in setup.findall("u:RunSynchronous/u:RunSynchronousCommand/u:Path", NS)]
    expected = []
    if windows == "11":
        expected = [
            v
            for v, on in (
                ("BypassTPMCheck", not tpm),
                ("BypassSecureBootCheck", not secure_boot),
                ("BypassRAMCheck", not tpm),
            )
            if on
        ]
    assert [re.search(r"/v (\w+) ", p).group(1) for p in bypass] == expected  # type: ignore[union-attr]
    assert all(p.startswith(r"reg add HKLM\SYSTEM\Setup\LabConfig ") for p in bypass)
    assert ("LabConfig" in text) == bool(expected)

    # The edition and the product key.
    meta = setup.find("u:ImageInstall/u:OSImage/u:InstallFrom/u:MetaData", NS)
    assert meta is not None and meta.get(f"{WCM}action") == "add"
    if edition == "index":
        assert (meta.findtext("u:Key", namespaces=NS), meta.findtext("u:Value", namespaces=NS)) == ("/IMAGE/INDEX", "3")
        assert setup.findtext("u:UserData/u:ProductKey/u:Key", namespaces=NS) == "VK7JG-NPHTM-C97JM-9MPGT-3V66T"
    else:
        assert meta.findtext("u:Key", namespaces=NS) == "/IMAGE/NAME"
        assert meta.findtext("u:Value", namespaces=NS) == "Windows 11 Pro"
        assert setup.find("u:UserData/u:ProductKey/u:Key", NS) is None
    assert setup.findtext("u:UserData/u:ProductKey/u:WillShowUI", namespaces=NS) == "Never"
    assert setup.findtext("u:ImageInstall/u:OSImage/u:InstallTo/u:PartitionID", namespaces=NS) == "3"

    # Where the driver command is: exactly once in the chosen pass, nowhere for windowsPE or without drivers.
    command = driver_command()
    wants = has_drivers and drivers_pass != "windowsPE"
    assert text.count(MEDIUM_SCRIPT) == (1 if wants else 0)
    deployment = root.findall("u:settings[@pass='specialize']/u:component[@name='Microsoft-Windows-Deployment']", NS)
    specialize = [p.text for d in deployment for p in d.findall("u:RunSynchronous/u:RunSynchronousCommand/u:Path", NS)]
    assert (command in specialize) == (wants and drivers_pass == "specialize")
    assert any("BypassNRO" in (p or "") for p in specialize)
    shell = component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    first = shell.findall("u:FirstLogonCommands/u:SynchronousCommand", NS)
    lines = [c.findtext("u:CommandLine", namespaces=NS) for c in first]
    assert (command in lines) == (wants and drivers_pass == "firstlogon")
    assert "WINARM-PHASE desktop-ready" in (lines[-1] or "")
    assert [c.findtext("u:Order", namespaces=NS) for c in first] == [str(i) for i in range(1, len(first) + 1)]


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


def test_driver_command_fits_and_finds_the_medium() -> None:
    command = driver_command()
    assert len(command) <= 259
    assert f"%d:\\{MEDIUM_MARKER}" in command and f"call %d:\\{MEDIUM_SCRIPT}" in command
    assert "(C D E F G H I J K L M N O P Q R S T U V W X Y Z)" in command


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


USERNAME_CHARS = "".join(c for c in string.ascii_letters + string.digits + " !#$%&'()-.^_`{}~")
RESERVED = [
    "Administrator",
    "administrator",
    "GUEST",
    "DefaultAccount",
    "WDAGUtilityAccount",
    "System",
    "Users",
    "Administrators",
    "Everyone",
]


def acceptable_username(name: str) -> bool:
    return (
        bool(name.strip(". "))
        and name == name.strip(" ")
        and name.lower() not in {r.lower() for r in RESERVED}
        and name.lower()
        not in {
            "guest",
            "none",
            "network",
            "interactive",
            "service",
            "batch",
            "dialup",
            "replicator",
            "guests",
            "localsystem",
            "localservice",
            "networkservice",
            "trustedinstaller",
            "defaultuser0",
            "anonymous logon",
            "creator owner",
            "backup operators",
            "power users",
            "remote desktop users",
            "authenticated users",
            "local service",
            "network service",
        }
    )


valid_usernames = st.text(alphabet=USERNAME_CHARS, min_size=1, max_size=20).filter(acceptable_username)
valid_passwords = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=127)
valid_computer_names = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9-]{0,13}[A-Za-z0-9])?\Z").filter(
    lambda n: not n.isdigit()
)


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


@FAST
@given(
    valid_usernames,
    st.sampled_from(sorted('"/\\[]:;|=,+*?<>@') + ["\x00", "\t", "\x7f", "\u00e9", "\u4e2d"]),
    st.integers(min_value=0, max_value=20),
)
def test_usernames_with_a_refused_character_are_refused(name: str, bad: str, where: int) -> None:
    where = min(where, len(name), 19)  # the name is cut to 20 characters below: keep the bad one in it
    with pytest.raises(UserError, match="^username "):
        check_settings(AnswerSettings(username=(name[:where] + bad + name[where:])[:20]))


@pytest.mark.parametrize("name", ["", "a" * 21, "...", " . ", " lead", "trail ", *RESERVED, "Guest", "Network Service"])
def test_usernames_windows_refuses(name: str) -> None:
    with pytest.raises(UserError) as error:
        render(AnswerSettings(username=name))
    assert "\n" not in str(error.value) and "username" in str(error.value)


@FAST
@given(
    st.text(min_size=1, max_size=30).filter(
        lambda n: not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,13}[A-Za-z0-9])?", n) or n.isdigit()
    )
)
def test_bad_computer_names_are_refused(name: str) -> None:
    with pytest.raises(UserError, match="^computer name "):
        check_settings(AnswerSettings(computer_name=name))


@pytest.mark.parametrize("name", ["12345", "A" * 16, "my_pc", "-pc", "pc-", "p c", "pc\u00e9", "", "PC\n"])
def test_computer_names_examples(name: str) -> None:
    with pytest.raises(UserError, match="computer name"):
        check_settings(AnswerSettings(computer_name=name))


@pytest.mark.parametrize("password", ["p\u00e4ss", "tab\there", "x" * 128, "\u20ac"])
def test_bad_passwords_are_refused(password: str) -> None:
    with pytest.raises(UserError, match="password") as error:
        check_settings(AnswerSettings(password=password))
    assert password not in str(error.value)  # never echo a password


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("language", "xx-XX", "language 'xx-XX' is not a Windows language tag"),
        ("language", "english", "language"),
        ("keyboard", "qwerty", "keyboard"),
        ("keyboard", "0409:0409", "keyboard"),
        ("keyboard", "de-DE;;", "keyboard"),
        ("drivers_pass", "oobeSystem", "drivers pass"),
        ("windows", "12", "Windows version"),
        ("arch", "amd64", "architecture"),
        ("edition_index", 0, "edition index"),
        ("product_key", "ABCDE-12345", "product key"),
        ("product_key", "abcde-12345-abcde-12345-abcde", "product key"),
        ("disk_id", -1, "disk number"),
        ("edition_name", "", "edition name"),
        ("edition_name", "Pro\n", "edition name"),
    ],
)
def test_other_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(UserError, match=match):
        check_settings(AnswerSettings(**{field: value}))  # type: ignore[arg-type]


def test_both_edition_forms_refused() -> None:
    with pytest.raises(UserError, match="give one of them"):
        check_settings(AnswerSettings(edition_index=1, edition_name="Windows 11 Pro"))


def test_render_refuses_its_own_invalid_output(monkeypatch: pytest.MonkeyPatch) -> None:
    import winarm.answer.render as module

    monkeypatch.setattr(module, "DESKTOP_READY_COMMAND", "x" * 1100)
    with pytest.raises(RuntimeFailure, match=r"\[max-length\]"):
        render(AnswerSettings())


# --- the validator, rule by rule --------------------------------------------------------------------------------


def test_rendered_file_is_valid_as_text_and_bytes(base: str) -> None:
    assert validate(base) == []
    assert validate(base.encode("ascii")) == []


def test_rule_component_pass_nonwinpe_in_specialize(base: str) -> None:
    block = (
        '    <component name="Microsoft-Windows-PnpCustomizationsNonWinPE" processorArchitecture="arm64" '
        'publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">\n'
        "      <DriverPaths>\n"
        '        <PathAndCredentials wcm:action="add" wcm:keyValue="1">\n'
        "          <Path>D:\\drivers</Path>\n"
        "        </PathAndCredentials>\n"
        "      </DriverPaths>\n"
        "    </component>\n"
    )
    anchor = '<settings pass="specialize">\n'
    broken = base.replace(anchor, anchor + block)
    line = line_of(broken, "PnpCustomizationsNonWinPE")
    assert rules_and_lines(validate(broken)) == [("component-pass", line), ("setting-pass", line + 1)]
    # The same component in auditSystem is fine.
    fine = base.replace("</unattend>", '  <settings pass="auditSystem">\n' + block + "  </settings>\n</unattend>")
    assert validate(fine) == []


def test_rule_component_pass_setup_outside_windowspe(base: str) -> None:
    broken = replace_nth(base, "Microsoft-Windows-Deployment", "Microsoft-Windows-Setup")
    line = line_of(broken, '<component name="Microsoft-Windows-Setup"', 1)
    assert rules_and_lines(validate(broken)) == [("component-pass", line), ("setting-pass", line + 1)]


def test_rule_setting_pass(base: str) -> None:
    # ComputerName moved from specialize into the oobeSystem Shell-Setup.
    broken = base.replace("      <ComputerName>WINARM</ComputerName>\n", "")
    broken = broken.replace("      <OOBE>\n", "      <ComputerName>WINARM</ComputerName>\n      <OOBE>\n")
    assert rules_and_lines(validate(broken)) == [("setting-pass", line_of(broken, "<ComputerName>"))]
    # FirstLogonCommands in specialize.
    broken = base.replace(
        "      <ComputerName>WINARM</ComputerName>\n",
        "      <ComputerName>WINARM</ComputerName>\n      <FirstLogonCommands/>\n",
    )
    assert rules_and_lines(validate(broken)) == [("setting-pass", line_of(broken, "<FirstLogonCommands/>"))]


def test_rule_duplicate_order(base: str) -> None:
    broken = replace_nth(base, "<Order>2</Order>", "<Order>1</Order>")  # the MSR CreatePartition
    findings = validate(broken)
    assert rules_and_lines(findings) == [("duplicate-key", line_of(broken, '<CreatePartition wcm:action="add">', 1))]
    assert "already used on line" in findings[0].message


def test_rule_duplicate_partition_id(base: str) -> None:
    broken = replace_nth(base, "<PartitionID>2</PartitionID>", "<PartitionID>1</PartitionID>")
    assert rules_and_lines(validate(broken)) == [
        ("duplicate-key", line_of(broken, '<ModifyPartition wcm:action="add">', 1))
    ]


def test_rule_missing_wcm_action(base: str) -> None:
    broken = base.replace('<Disk wcm:action="add">', "<Disk>")
    assert rules_and_lines(validate(broken)) == [("list-action", line_of(broken, "<Disk>"))]
    broken = replace_nth(base, '<SynchronousCommand wcm:action="add">', '<SynchronousCommand wcm:action="append">')
    assert rules_and_lines(validate(broken)) == [("list-action", line_of(broken, 'wcm:action="append"'))]


def test_rule_missing_key(base: str) -> None:
    broken = re.sub(r"          <Order>\d+</Order>\n(          <Description>Tell winarm the desktop is ready<)", r"\1",
                    base)
    assert broken != base
    at = broken.index("<Description>Tell winarm the desktop is ready<")
    line = broken.count("\n", 0, broken.rindex('<SynchronousCommand wcm:action="add">', 0, at)) + 1
    assert rules_and_lines(validate(broken)) == [("list-key", line)]


def test_rule_wrong_architecture(base: str) -> None:
    broken = replace_nth(base, 'processorArchitecture="arm64"', 'processorArchitecture="amd64"', 2)
    line = line_of(broken, "amd64")
    findings = validate(broken)
    assert rules_and_lines(findings) == [("component-arch", line)]
    assert "'amd64'" in findings[0].message
    # The same file is right for amd64 everywhere but there.
    assert len(validate(broken, arch="amd64")) == base.count("<component ") - 1


def test_rule_component_attributes(base: str) -> None:
    broken = replace_nth(base, ' publicKeyToken="31bf3856ad364e35"', "", 1)
    line = line_of(broken, '<component name="Microsoft-Windows-Setup"')
    assert rules_and_lines(validate(broken)) == [("component-attributes", line)]
    broken = replace_nth(base, 'language="neutral"', 'language="en-US"', 0)
    assert rules_and_lines(validate(broken)) == [("component-attributes", line_of(broken, 'language="en-US"'))]


def test_rule_long_path(base: str) -> None:
    path = "reg add HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\OOBE"
    broken = base.replace(path, "x" * 300)
    findings = validate(broken)
    assert rules_and_lines(findings) == [("max-length", line_of(broken, "x" * 300))]
    assert "334 characters, at most 259" in findings[0].message  # 300 + " /v BypassNRO /t REG_DWORD /d 1 /f"
    exactly = base.replace(path, "y" * 259).replace(" /v BypassNRO /t REG_DWORD /d 1 /f", "")
    assert validate(exactly) == []


def test_rule_long_command_line(base: str) -> None:
    broken = base.replace("cmd.exe /c echo WINARM-PHASE desktop-ready &gt; COM1",
                          "cmd.exe /c echo " + "z" * 1024 + " &gt; COM1")
    assert rules_and_lines(validate(broken)) == [("max-length", line_of(broken, "z" * 1024))]


def test_rule_non_ascii(base: str) -> None:
    broken = base.replace("<FullName>Docker</FullName>", "<FullName>D\u00f6cker</FullName>")
    line = line_of(broken, "D\u00f6cker")
    assert rules_and_lines(validate(broken)) == [("ascii", line)]
    assert rules_and_lines(validate(broken.encode("utf-8"))) == [("ascii", line)]


def test_rule_password_suffix(base: str) -> None:
    wrong = base64.b64encode("admin".encode("utf-16-le")).decode()  # the suffix forgotten
    broken = replace_nth(base, encode_password("admin"), wrong, 1)  # the AutoLogon password
    findings = validate(broken)
    assert rules_and_lines(findings) == [("password-encoding", line_of(broken, wrong))]
    assert "does not end with 'Password'" in findings[0].message
    broken = replace_nth(base, encode_password("admin"), "%%%", 0)
    assert rules_and_lines(validate(broken)) == [("password-encoding", line_of(broken, "%%%"))]
    # PlainText true: the value is the password itself, not checked.
    plain = replace_nth(base, encode_password("admin"), "admin", 0).replace(
        "<PlainText>false</PlainText>", "<PlainText>true</PlainText>", 1
    )
    assert validate(plain) == []


def test_rule_administrator_password_suffix(base: str) -> None:
    def with_admin(value: str) -> str:
        return base.replace(
            "      <UserAccounts>\n",
            "      <UserAccounts>\n        <AdministratorPassword>\n"
            f"          <Value>{value}</Value>\n          <PlainText>false</PlainText>\n"
            "        </AdministratorPassword>\n",
        )

    assert validate(with_admin(encode_password("x", "AdministratorPassword"))) == []
    broken = with_admin(encode_password("x"))
    assert rules_and_lines(validate(broken)) == [("password-encoding", line_of(broken, encode_password("x")))]


def test_rule_unknown_and_duplicate_pass(base: str) -> None:
    broken = base.replace('pass="specialize"', 'pass="specialise"')
    findings = validate(broken)
    assert rules_and_lines(findings) == [("unknown-pass", line_of(broken, "specialise"))]
    assert "'specialise'" in findings[0].message
    broken = base.replace('pass="oobeSystem"', 'pass="windowsPE"')
    findings = validate(broken)
    assert findings[0] == Finding(line_of(broken, 'pass="windowsPE"', 1), "duplicate-pass", findings[0].message)
    assert "first on line 4" in findings[0].message


def test_rule_root(base: str) -> None:
    broken = base.replace('<unattend xmlns="urn:schemas-microsoft-com:unattend"', '<unattend xmlns="urn:example"')
    assert rules_and_lines(validate(broken)) == [("root", 2)]
    broken = base.replace("<unattend ", "<answers ").replace("</unattend>", "</answers>")
    assert rules_and_lines(validate(broken)) == [("root", 2)]


def test_rule_well_formed(base: str) -> None:
    broken = base.replace("</ComputerName>", "</ComputerNam>")
    assert rules_and_lines(validate(broken)) == [("well-formed", line_of(broken, "</ComputerNam>"))]
    broken = base.replace("<Group>Administrators</Group>", "<Group>&xxe;</Group>")
    assert rules_and_lines(validate(broken)) == [("well-formed", line_of(broken, "&xxe;"))]
    assert rules_and_lines(validate("")) == [("well-formed", 1)]
    broken = base.replace('xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State" ', "")
    assert rules_and_lines(validate(broken)) == [("well-formed", line_of(broken, "wcm:action"))]


def test_rule_dtd_refused(base: str) -> None:
    bomb = '<!DOCTYPE unattend [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    broken = base.replace("?>\n", "?>\n" + bomb, 1)
    assert rules_and_lines(validate(broken)) == [("dtd", 2)]


def test_finding_str() -> None:
    assert str(Finding(7, "ascii", "bad")) == "line 7: [ascii] bad"


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


@pytest.mark.parametrize(
    "folders", [["a b"], ["x&y"], [".."], [""], ["vi\u00f6"], ["a%b"], ["ok", "OK"], ["a!b"], ["viostor\n"]]
)
def test_driver_script_refuses_bad_folders(folders: list[str]) -> None:
    with pytest.raises(UserError, match="driver folder"):
        render_driver_script(folders)


# --- the CLI ----------------------------------------------------------------------------------------------------


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("USERNAME", "PASSWORD", "LANGUAGE", "KEYBOARD"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_cli_render_stdout_and_env(runner: CliRunner) -> None:
    result = runner.invoke(unattend, ["render", "--windows", "10", "--no-tpm"])
    assert result.exit_code == 0, result.output
    assert validate(result.stdout) == [] and "LabConfig" not in result.stdout
    assert "<Name>Docker</Name>" in result.stdout

    result = runner.invoke(
        unattend,
        ["render", "--no-tpm"],
        env={"USERNAME": "alice", "PASSWORD": "s3cret", "LANGUAGE": "nl-NL", "KEYBOARD": "de-DE"},
    )
    assert result.exit_code == 0, result.output
    root = parse(result.stdout)
    shell = component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert shell.findtext("u:AutoLogon/u:Username", namespaces=NS) == "alice"
    assert decode_password(shell.findtext("u:AutoLogon/u:Password/u:Value", namespaces=NS) or "") == "s3cret"
    intl = component(root, "oobeSystem", "Microsoft-Windows-International-Core")
    assert intl.findtext("u:UILanguage", namespaces=NS) == "nl-NL"
    assert intl.findtext("u:InputLocale", namespaces=NS) == "de-DE"
    assert "BypassTPMCheck" in result.stdout

    result = runner.invoke(
        unattend, ["render", "--username", "bob", "--edition", "Windows 11 Pro"], env={"USERNAME": "alice"}
    )
    assert "<Name>bob</Name>" in result.stdout and "alice" not in result.stdout
    assert "<Key>/IMAGE/NAME</Key>" in result.stdout
    result = runner.invoke(unattend, ["render", "--edition", "6", "--drivers-pass", "firstlogon"])
    assert "<Key>/IMAGE/INDEX</Key>" in result.stdout and "<Value>6</Value>" in result.stdout


def test_cli_render_out_is_private_and_atomic(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "Autounattend.xml"
    out.write_text("old")
    out.chmod(0o644)
    result = runner.invoke(unattend, ["render", "--out", str(out), "--password", "pw"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert validate(out.read_bytes()) == []
    assert os.listdir(tmp_path) == ["Autounattend.xml"]


@pytest.mark.parametrize(
    "args",
    [
        ["--username", "Administrator"],
        ["--username", "a/b"],
        ["--computer-name", "1234"],
        ["--windows", "12"],
        ["--disk-bus", "ide"],
        ["--drivers-pass", "later"],
        ["--language", "klingon"],
        ["--edition", "0"],
        ["--out", "/nonexistent-dir/x.xml"],
    ],
)
def test_cli_render_bad_value_is_one_line(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(unattend, ["render", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("winarm: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_cli_render_bad_env_value(runner: CliRunner) -> None:
    result = runner.invoke(unattend, ["render"], env={"PASSWORD": "p\u00e4ss"})
    assert result.exit_code == 2 and result.stderr.startswith("winarm: the password")


def test_cli_validate(runner: CliRunner, tmp_path: Path, base: str) -> None:
    good = tmp_path / "good.xml"
    good.write_text(base)
    result = runner.invoke(unattend, ["validate", str(good)])
    assert (result.exit_code, result.stdout) == (0, "valid\n")

    bad = tmp_path / "bad.xml"
    bad.write_text(base.replace('pass="specialize"', 'pass="later"').replace('<Disk wcm:action="add">', "<Disk>"))
    result = runner.invoke(unattend, ["validate", str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(re.fullmatch(r"line \d+: \[[a-z-]+\] .+", line) for line in lines)
    assert {re.search(r"\[(.*?)\]", line).group(1) for line in lines} == {"unknown-pass", "list-action"}  # type: ignore[union-attr]

    for missing in (tmp_path / "missing.xml", tmp_path):
        result = runner.invoke(unattend, ["validate", str(missing)])
        assert result.exit_code == 2
        assert result.stderr.startswith("winarm: cannot read") and result.stderr.count("\n") == 1


def test_cli_registered_on_main(runner: CliRunner) -> None:
    from winarm.cli.main import main

    result = runner.invoke(main, ["unattend", "render", "--computer-name", "BOX-1"])
    assert result.exit_code == 0, result.output
    assert "<ComputerName>BOX-1</ComputerName>" in result.stdout
    helps = runner.invoke(main, ["unattend", "render", "--help"]).stdout
    for option in (
        "--windows",
        "--username",
        "--password",
        "--computer-name",
        "--language",
        "--keyboard",
        "--edition",
        "--product-key",
        "--disk-bus",
        "--drivers-pass",
        "--tpm",
        "--secure-boot",
        "--out",
    ):
        assert option in helps


def _commands(root: Element, pass_name: str, tag: str) -> list[str]:
    settings_el = [s for s in root.findall("u:settings", NS) if s.get("pass") == pass_name][0]
    return [el.text or "" for el in settings_el.iter(f"{{{NS['u']}}}{tag}")]


def test_shares_are_named_allowed_and_mapped() -> None:
    root = parse(render(AnswerSettings(shares=("Data", "Music"))))
    specialize = _commands(root, "specialize", "Path")
    assert r"cmd.exe /c (echo.& echo 10.0.2.4 host.lan)>>%WINDIR%\System32\drivers\etc\hosts" in specialize
    assert any("AllowInsecureGuestAuth /t REG_DWORD /d 1" in c for c in specialize)
    assert any("RequireSecuritySignature /t REG_DWORD /d 0" in c for c in specialize)
    firstlogon = _commands(root, "oobeSystem", "CommandLine")
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
    specialize = _commands(root, "specialize", "Path")
    assert not any("AllowInsecureGuestAuth" in c for c in specialize)
    firstlogon = _commands(root, "oobeSystem", "CommandLine")
    assert "cmdkey.exe /add:host.lan /user:alice /pass:p@ss!w0rd$" in firstlogon
    assert r"net.exe use Z: \\host.lan\Data p@ss!w0rd$ /user:alice /persistent:yes" in firstlogon
    assert validate(text, "arm64") == []


def test_no_share_no_share_commands() -> None:
    text = render(AnswerSettings())
    assert "host.lan" not in text and "net.exe use" not in text


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"shares": ("bad name",)}, "share name 'bad name' is not allowed"),
        ({"shares": tuple(f"S{i}" for i in range(9))}, "at most 8 can be mapped"),
        ({"shares": ("Data",), "share_user": "alice", "share_password": "two words"}, "without spaces"),
    ],
)
def test_bad_share_settings(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        check_settings(AnswerSettings(**changes))  # type: ignore[arg-type]
