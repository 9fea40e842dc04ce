"""An ``Autounattend.xml`` at the user's ISO's root (Setup may take it instead of winarm's): found in every tree
in any case, and said by ``inspect`` and ``prepare`` (``up`` says it through the same function; its QEMU run is
in the system tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from winarm.cli.main import main
from winarm.media.iso import inspect_iso
from winarm.media.iso_answer import answer_file_warning
from winarm_testbed.wim_image import build_bridge_iso

ANSWER = b'<?xml version="1.0"?><unattend xmlns="urn:schemas-microsoft-com:unattend"/>\n'
WARNING = "winarm: warning: ISO {iso!r} has its own answer file at its root ({names}): Windows Setup searches"


@pytest.mark.parametrize(("layout", "name"), [
    ("bridge", "Autounattend.xml"),  # UDF, as Microsoft's ISOs
    ("bridge", "AUTOUNATTEND.XML"),
    ("joliet", "autounattend.xml"),
    ("iso9660", "AUTOUNATTEND.XML"),
])
def test_an_answer_file_at_the_root_is_found_in_any_tree_and_case(isos: Path, layout: str, name: str) -> None:
    iso = build_bridge_iso(isos / f"answer-{layout}-{name}.iso", layout=layout,  # type: ignore[arg-type]
                           extra_files={name: ANSWER})
    info = inspect_iso(iso)
    assert info.answer_files == (name,)
    assert info.as_json()["answer_files"] == [name]
    warning = answer_file_warning(info, iso)
    assert warning is not None and f"({name})" in warning and "instead of winarm's answer medium" in warning


def test_no_answer_file_or_one_elsewhere_is_not_warned_about(isos: Path, good_iso: Path) -> None:
    assert inspect_iso(good_iso).answer_files == ()
    assert answer_file_warning(inspect_iso(good_iso), good_iso) is None
    elsewhere = build_bridge_iso(isos / "answer-in-sources.iso", extra_files={
        "sources/Autounattend.xml": ANSWER,  # searched after every removable medium's root: winarm's wins
        "Autounattend.xml.bak": ANSWER, "unattend.xml": ANSWER})
    assert inspect_iso(elsewhere).answer_files == ()


def test_inspect_warns_in_one_line_and_lists_it_in_json(isos: Path, good_iso: Path) -> None:
    iso = build_bridge_iso(isos / "answer-cli.iso", extra_files={"Autounattend.xml": ANSWER})
    runner = CliRunner()
    human = runner.invoke(main, ["inspect", str(iso)])
    assert human.exit_code == 0, human.output
    assert human.stderr.count("\n") == 1 and human.stderr.startswith(WARNING.format(iso=str(iso),
                                                                                      names="Autounattend.xml"))
    assert "arch:     arm64" in human.stdout.splitlines()
    as_json = runner.invoke(main, ["inspect", str(iso), "--json"])
    assert json.loads(as_json.stdout)["answer_files"] == ["Autounattend.xml"]
    clean = runner.invoke(main, ["inspect", str(good_iso)])
    assert clean.exit_code == 0 and "warning" not in clean.stderr


def test_prepare_warns_about_the_isos_answer_file(isos: Path, good_iso: Path, tmp_path: Path) -> None:
    iso = build_bridge_iso(isos / "answer-prepare.iso", extra_files={"autounattend.xml": ANSWER})
    for source, warned in ((iso, True), (good_iso, False)):
        result = CliRunner().invoke(main, ["prepare", "--name", "p", "--storage", str(tmp_path / source.stem),
                                           "--iso", str(source), "--disk-bus", "nvme"])
        assert result.exit_code == 0, result.output
        lines = [line for line in result.stderr.splitlines() if line.startswith("winarm: warning:")]
        assert len(lines) == (1 if warned else 0), result.stderr
        if warned:
            assert lines[0].startswith(WARNING.format(iso=str(source), names="autounattend.xml"))
        assert Path(result.stdout.strip()).is_file(), "the medium is built all the same"


def test_unattend_validate_with_the_iso_warns_and_still_judges_the_file(isos: Path, good_iso: Path,
                                                                         tmp_path: Path) -> None:
    runner = CliRunner()
    answer = tmp_path / "Autounattend.xml"
    rendered = runner.invoke(main, ["unattend", "render", "--edition", "2", "--out", str(answer)])
    assert rendered.exit_code == 0, rendered.output
    iso = build_bridge_iso(isos / "answer-validate.iso", extra_files={"Autounattend.xml": ANSWER})
    for source, warned in ((iso, True), (good_iso, False)):
        checked = runner.invoke(main, ["unattend", "validate", str(answer), "--iso", str(source)])
        assert (checked.exit_code, checked.stdout) == (0, "valid\n"), checked.output
        assert checked.stderr.startswith(WARNING.format(iso=str(source), names="Autounattend.xml")) is warned
        assert checked.stderr.count("\n") == (1 if warned else 0)
