"""The validator's rules about what an answer file says (winarm.answer.validate_facts): each test takes a rendered
file, breaks one fact and checks the exact rule and line reported, and that `winarm unattend validate` says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.answer.xmltools import line_of, rules_and_lines
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings
from winarm.answer.validate import validate
from winarm.cli.main import main

SETUP = '<component name="Microsoft-Windows-Setup"'


@pytest.mark.parametrize("missing", ["BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck", "BypassCPUCheck",
                                     "BypassStorageCheck"])
def test_windows_11_without_one_bypass_is_reported(base: str, missing: str) -> None:
    broken = re.sub(rf"\s*<RunSynchronousCommand wcm:action=\"add\">\s*<Order>\d</Order>\s*<Description>[^<]*"
                    rf"{missing}</Description>\s*<Path>[^<]*</Path>\s*</RunSynchronousCommand>", "", base)
    assert broken != base
    findings = validate(broken)
    assert rules_and_lines(findings) == [("windows11-bypasses", line_of(broken, SETUP))]
    assert f"lacks the LabConfig bypass(es) {missing} in windowsPE" in findings[0].message


def test_windows_11_is_known_by_its_image_name_or_winarm_s_comment(base: str) -> None:
    no_bypass = re.sub(r"\s*<RunSynchronous>.*?</RunSynchronous>", "", base, count=1, flags=re.DOTALL)
    assert "LabConfig" not in no_bypass
    assert [f.rule for f in validate(no_bypass)] == ["windows11-bypasses"], "winarm's comment says Windows 11"
    anonymous = no_bypass.replace("<!-- Windows 11 for arm64, written by winarm -->", "")
    assert validate(anonymous) == [], "by index and without the comment, the version is unknown: not checked"
    named = anonymous.replace("<Key>/IMAGE/INDEX</Key>", "<Key>/IMAGE/NAME</Key>").replace(
        "<Value>1</Value>", "<Value>Windows 11 Pro</Value>")
    assert [f.rule for f in validate(named)] == ["windows11-bypasses"]
    ten = named.replace("Windows 11 Pro", "Windows 10 Pro")
    assert validate(ten) == [], "a Windows 10 image needs no bypass"


def test_with_the_iso_the_build_of_the_indexed_image_says_windows_11(base: str) -> None:
    from winarm.media.iso import Edition

    no_bypass = re.sub(r"\s*<RunSynchronous>.*?</RunSynchronous>", "", base, count=1, flags=re.DOTALL)
    anonymous = no_bypass.replace("<!-- Windows 11 for arm64, written by winarm -->", "")
    eleven = (Edition(1, "Windows Pro", "22631", "arm64"),)
    ten = (Edition(1, "Windows Pro", "19045", "arm64"),)
    assert [f.rule for f in validate(anonymous, "arm64", eleven)] == ["windows11-bypasses"]
    assert validate(anonymous, "arm64", ten) == []


def test_windows_10_gets_no_bypass_and_needs_none() -> None:
    text = render(AnswerSettings(windows="10"))
    assert "LabConfig" not in text and validate(text) == []


def test_a_bypass_spelled_another_way_still_counts(base: str) -> None:
    other = base.replace(r"reg add HKLM\SYSTEM\Setup\LabConfig /v BypassCPUCheck /t REG_DWORD /d 1 /f",
                         r'reg.exe ADD "HKLM\SYSTEM\Setup\LabConfig" /v BypassCPUCheck /t REG_DWORD /d 1')
    assert other != base and validate(other) == []
    zero = base.replace("BypassCPUCheck /t REG_DWORD /d 1", "BypassCPUCheck /t REG_DWORD /d 0")
    assert [f.rule for f in validate(zero)] == ["windows11-bypasses"], "a value of 0 bypasses nothing"


def test_a_product_key_in_userdata_is_reported(base: str) -> None:
    key = "          <Key>VK7JG-NPHTM-C97JM-9MPGT-3V66T</Key>\n"
    broken = base.replace("        <ProductKey>\n", "        <ProductKey>\n" + key)
    assert rules_and_lines(validate(broken)) == [("product-key", line_of(broken, "<Key>VK7JG"))]
    empty = base.replace("        <ProductKey>\n", "        <ProductKey>\n          <Key></Key>\n")
    assert validate(empty) == [], "an empty Key is no key"


def test_dynamic_update_must_be_there_and_off(base: str) -> None:
    on = base.replace("<Enable>false</Enable>", "<Enable>true</Enable>")
    assert rules_and_lines(validate(on)) == [("dynamic-update", line_of(on, "<Enable>true"))]
    gone = re.sub(r"\s*<DynamicUpdate>.*?</DynamicUpdate>", "", base, flags=re.DOTALL)
    assert rules_and_lines(validate(gone)) == [("dynamic-update", line_of(gone, SETUP))]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Mars Standard Time", "utc", ""])
def test_a_time_zone_that_is_not_a_windows_id_is_reported(base: str, zone: str) -> None:
    broken = base.replace("<TimeZone>UTC</TimeZone>", f"<TimeZone>{zone}</TimeZone>", 1)
    assert rules_and_lines(validate(broken)) == [("timezone", line_of(broken, f"<TimeZone>{zone}</TimeZone>"))]
    fine = base.replace("<TimeZone>UTC</TimeZone>", "<TimeZone>Pacific Standard Time_dstoff</TimeZone>")
    assert validate(fine) == []


def test_a_time_zone_in_offline_servicing_is_a_setting_pass_finding(base: str) -> None:
    """TimeZone is valid in specialize, oobeSystem and auditSystem only (Microsoft's TimeZone reference)."""
    shell = ('  <settings pass="offlineServicing">\n'
             '    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="arm64" '
             'publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">\n'
             "      <TimeZone>UTC</TimeZone>\n    </component>\n  </settings>\n")
    moved = base.replace('  <settings pass="specialize">', shell + '  <settings pass="specialize">')
    assert rules_and_lines(validate(moved)) == [("setting-pass", line_of(moved, "<TimeZone>UTC"))]


def test_the_cli_reports_each_fact(tmp_path: Path, base: str) -> None:
    broken = base.replace("<Enable>false</Enable>", "<Enable>true</Enable>").replace(
        "<TimeZone>UTC</TimeZone>", "<TimeZone>Europe/Berlin</TimeZone>", 1)
    path = tmp_path / "Autounattend.xml"
    path.write_text(broken)
    result = CliRunner().invoke(main, ["unattend", "validate", str(path)])
    assert result.exit_code == 1
    assert [line.split("] ")[0].split("[")[1] for line in result.output.splitlines()] == ["dynamic-update", "timezone"]
