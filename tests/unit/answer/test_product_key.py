"""The product key: never in UserData (a key that does not match the edition stops Setup with no way out), but a
file on the answer medium that a first-logon script gives to ``slmgr.vbs /ipk``, whose exit code comes back over
the guest channel as "product key: applied" or "refused". Windows itself cannot run here: the script is checked as
text, the daemon's side with the report the script sends."""

from __future__ import annotations

from pathlib import Path

from tests.unit.answer.test_answer_media import read_joliet
from winarm.answer.medium import build_answer_medium, medium_files, product_key_files
from winarm.answer.render import render_product_key_script
from winarm.answer.settings import AnswerSettings
from winarm.answer.validate import validate
from winarm.guest import REPORT_NAMES, REPORT_PRODUCT_KEY, REPORT_SCRIPT
from winarm.media.drivers import DriverSelection
from winarm.vm.guest_reports import report_details, report_line
from winarm.vm.report_body import Report

KEY = "VK7JG-NPHTM-C97JM-9MPGT-3V66T"


def test_the_key_travels_as_a_file_on_the_medium_and_in_no_answer_file_line(tmp_path: Path) -> None:
    medium, _ = build_answer_medium(tmp_path, AnswerSettings(product_key=KEY), DriverSelection())
    files = read_joliet(medium)
    assert files["winarm/product-key.txt"] == f"{KEY}\r\n".encode()
    assert files["winarm/product-key.cmd"] == render_product_key_script().encode("ascii")
    answer = files["Autounattend.xml"]
    assert KEY.encode() not in answer and validate(answer) == []
    assert rb"call %d:\winarm\product-key.cmd" in answer
    others = [name for name, data in files.items() if KEY.encode() in data]
    assert others == ["winarm/product-key.txt"], "the key is in its own file only"


def test_without_a_key_the_medium_has_neither_file() -> None:
    assert product_key_files(AnswerSettings()) == []
    names = [f.path for f in medium_files(AnswerSettings(has_drivers=False), DriverSelection())]
    assert not any("product-key" in name for name in names)
    assert KEY not in repr(AnswerSettings(product_key=KEY)), "the key stays out of logs and tracebacks"


def test_the_script_reads_the_key_file_runs_slmgr_and_reports_its_exit_code() -> None:
    script = render_product_key_script()
    assert script.isascii() and script.endswith("\r\n") and "\n" not in script.replace("\r\n", "")
    lines = script.split("\r\n")
    assert 'set "KEYFILE=%~dp0product-key.txt"' in lines, "beside the script on the medium"
    assert 'if exist "%KEYFILE%" set /p KEY=<"%KEYFILE%"' in lines
    slmgr = lines.index('cscript.exe //nologo "%WINDIR%\\System32\\slmgr.vbs" /ipk %KEY% >nul 2>&1')
    assert lines[slmgr + 1] == 'set "RC=%ERRORLEVEL%"', "slmgr's own exit code, taken at once"
    assert '>"%REPORT%" echo code %RC%' in lines[slmgr + 1:]
    send = f'start "" wscript.exe //B //NoLogo "{REPORT_SCRIPT}" product-key "%REPORT%"'
    assert [line.strip() for line in lines].count(send) == 2, "with the code, or 'code missing' without a key file"
    assert "echo code missing" in script and "exit /b %RC%" in lines
    assert "%KEY%" not in "".join(line for line in lines if "REPORT" in line), "the key never goes into the report"


def test_the_daemon_says_applied_or_refused_and_never_the_key() -> None:
    assert REPORT_PRODUCT_KEY in REPORT_NAMES
    applied = report_details(Report("product-key", (("code", "0"),)))
    assert applied == {"code": 0, "ok": True}
    assert report_line("product-key", applied) == "product key: applied"
    refused = report_details(Report("product-key", (("code", "-1073418160"),)))
    assert refused == {"code": -1073418160, "ok": False}
    assert report_line("product-key", refused) == "product key: refused (code 0xC004F050)"
    assert report_line("product-key", report_details(Report("product-key", (("code", "5"),)))) == (
        "product key: refused (code 5)")
    missing = report_details(Report("product-key", (("code", "missing"),)))
    assert missing == {"code": None, "ok": False}
    assert report_line("product-key", missing).startswith("product key: not applied")
