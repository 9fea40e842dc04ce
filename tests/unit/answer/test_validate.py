"""The validator, rule by rule: each test takes a rendered file, breaks one thing and checks the exact rule and
line reported.
"""

from __future__ import annotations

import base64
import re

from tests.unit.answer.xmltools import line_of, replace_nth, rules_and_lines
from winarm.answer.settings import encode_password
from winarm.answer.validate import Finding, validate


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
    broken = base.replace("winarm-report.vbs&#34; first-logon",
                          "winarm-report.vbs&#34; " + "z" * 1024)
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
