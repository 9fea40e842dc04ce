"""``winarm inspect``: the editions as a table or JSON, and one line with exit 2 for media winarm cannot use."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from tests.unit.media.isotools import ARM64_MEDIA, iso_with_wim, wim_with_xml
from winarm.cli.main import main
from winarm.media.iso import inspect_iso
from winarm_testbed.wim_image import build_bridge_iso


def test_cli_json_prints_x64_and_exits_0_while_human_form_exits_2(isos: Path) -> None:
    iso = build_bridge_iso(isos / "x64-cli.iso", arch="x64")
    runner = CliRunner()
    result = runner.invoke(main, ["inspect", str(iso), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["arch"] == "x64"
    assert data == inspect_iso(iso, require_arm64=False).as_json()
    human = runner.invoke(main, ["inspect", str(iso)])
    assert human.exit_code == 2
    assert human.stdout == ""
    assert human.stderr == f"winarm: ISO {str(iso)!r} is an x64 ISO: {ARM64_MEDIA}\n"


def test_cli_human_table_and_json(good_iso: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["inspect", str(good_iso)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "arch:     arm64" in lines
    assert "image:    sources/install.wim" in lines
    table = [line.split() for line in lines[lines.index(next(x for x in lines if x.startswith("index"))) :]]
    assert table == [
        ["index", "name", "build", "arch", "languages"],
        ["1", "Windows", "11", "Home", "26100", "arm64", "en-US*"],
        ["2", "Windows", "11", "Pro", "26100", "arm64", "en-US*"],
    ]
    assert any("default: 2 Windows 11 Pro" in line for line in lines)
    as_json = runner.invoke(main, ["inspect", str(good_iso), "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == inspect_iso(good_iso).as_json()


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_text("hello\n" * 10000)
    for args in (["inspect", str(junk)], ["inspect", str(junk), "--json"], ["inspect", str(tmp_path / "none.iso")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert re.fullmatch(r"winarm: [^\n]+\n", result.stderr), result.stderr
        assert "Traceback" not in result.output


def test_cli_shows_each_editions_languages_default_first(isos: Path) -> None:
    iso = iso_with_wim(isos, "languages.iso", wim_with_xml(b"\xff\xfe" + (
        '<WIM><IMAGE INDEX="1"><WINDOWS><ARCH>12</ARCH><LANGUAGES><LANGUAGE>en-US</LANGUAGE><LANGUAGE>de-DE'
        '</LANGUAGE><DEFAULT>de-DE</DEFAULT></LANGUAGES></WINDOWS><NAME>Windows 11 Pro</NAME></IMAGE>'
        '<IMAGE INDEX="2"><WINDOWS><ARCH>12</ARCH></WINDOWS><NAME>Windows 11 Home</NAME></IMAGE></WIM>'
    ).encode("utf-16-le"), images=2))
    result = CliRunner().invoke(main, ["inspect", str(iso)])
    assert result.exit_code == 0, result.output
    rows = [line.split()[-1] for line in result.stdout.splitlines()[-2:]]
    assert rows == ["de-DE*,en-US", "-"], "the default first and starred; none named is '-', not an empty cell"


def test_prepare_refuses_a_ui_language_the_image_lacks_and_writes_nothing(good_iso: Path, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    result = CliRunner().invoke(main, ["prepare", "--name", "p", "--storage", str(storage), "--iso", str(good_iso),
                                       "--disk-bus", "nvme", "--language", "de-DE", "--ui-language", "de-DE"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == ("winarm: UI language de-DE is not in edition 2 (Windows 11 Pro) of this ISO, which "
                             "has en-US: pass --ui-language en-US or use an ISO in de-DE\n")
    assert not (storage / "p").exists()


def test_unattend_validate_with_the_iso_checks_the_ui_language(good_iso: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    answer = tmp_path / "Autounattend.xml"
    for ui, expected in (("en-US", 0), ("de-DE", 1)):
        rendered = runner.invoke(main, ["unattend", "render", "--edition", "2", "--language", "de-DE",
                                        "--ui-language", ui, "--out", str(answer)])
        assert rendered.exit_code == 0, rendered.output
        plain = runner.invoke(main, ["unattend", "validate", str(answer)])
        checked = runner.invoke(main, ["unattend", "validate", str(answer), "--iso", str(good_iso)])
        assert (plain.stdout, checked.exit_code) == ("valid\n", expected), checked.output
    assert [line.split()[2] for line in checked.stdout.splitlines()] == ["[ui-language]"] * 3
    missing = runner.invoke(main, ["unattend", "validate", str(answer), "--iso", str(tmp_path / "none.iso")])
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr


def test_prepare_keeps_the_english_ui_for_german_locales_and_says_so(good_iso: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["prepare", "--name", "p", "--storage", str(tmp_path / "s"), "--iso",
                                       str(good_iso), "--disk-bus", "nvme", "--language", "de-DE"])
    assert result.exit_code == 0, result.output
    assert "UI language: en-US; locales: de-DE (the edition has en-US)\n" in result.stderr
