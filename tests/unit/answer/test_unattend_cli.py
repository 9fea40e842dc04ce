"""``winarm unattend``: render to stdout or a private file, settings from flags and environment, validate a file.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.answer.xmltools import NS, component, parse
from winarm.answer.settings import decode_password
from winarm.answer.validate import validate
from winarm.cli.unattend import unattend


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("USERNAME", "PASSWORD", "LANGUAGE", "KEYBOARD", "TIMEZONE", "TZ"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_cli_render_stdout_and_env(runner: CliRunner) -> None:
    result = runner.invoke(unattend, ["render", "--windows", "10"])
    assert result.exit_code == 0, result.output
    assert validate(result.stdout) == [] and "LabConfig" not in result.stdout
    assert "<Name>Docker</Name>" in result.stdout

    result = runner.invoke(
        unattend,
        ["render"],
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
        "--timezone",
        "--out",
    ):
        assert option in helps
