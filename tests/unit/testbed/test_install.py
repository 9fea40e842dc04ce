"""Where the test guest is installed and where it is not: winarm's runtime distribution leaves winarm_testbed out,
the testbed's own distribution ships every file the guest runs, and ``winarm testbed`` says how to install it
where it is missing (one line, exit 2) and reports a failed build as one line with exit 1.
"""

from __future__ import annotations

import configparser
import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.vmtools import REPO_ROOT
from winarm.errors import RuntimeFailure
from winarm_testbed.guest import guest_inputs
from winarm_testbed.tools import GuestBuildError

BLOCKED = "import sys; sys.modules['winarm_testbed'] = None; from winarm.cli.main import main; main()"
"""winarm's CLI in a Python where importing winarm_testbed fails as if it were not installed (this tree's editable
install has it, and a scratch install without it would take a pip build: too slow for this tier)."""


def cli(*args: str, blocked: bool, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", BLOCKED, *args] if blocked else [sys.executable, "-m", "winarm", *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


def test_testbed_commands_without_the_testbed_say_how_to_install_it(tmp_path: Path) -> None:
    for command in (["testbed", "build"], ["testbed", "build", "--plain"], ["testbed", "drivers"]):
        proc = cli(*command, "--cache", str(tmp_path / "cache"), blocked=True, cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("winarm: winarm testbed needs the test guest package winarm_testbed")
        assert "make venv" in lines[0] and "pip install -e ./winarm_testbed" in lines[0]
    assert not (tmp_path / "cache").exists()
    help_text = cli("testbed", "build", "--help", blocked=True, cwd=tmp_path)
    assert help_text.returncode == 0 and "--plain" in help_text.stdout


def test_testbed_drivers_work_where_it_is_installed(tmp_path: Path) -> None:
    proc = cli("testbed", "drivers", "--cache", str(tmp_path), blocked=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tree = Path(proc.stdout.strip())
    assert tree == tmp_path / "virtio-win-placeholder"
    assert sorted(tree.glob("*/w11/ARM64/*.inf")), "the placeholder tree has ARM64 INFs"


def test_a_failed_build_is_one_line_and_exit_1(tmp_path: Path) -> None:
    assert issubclass(GuestBuildError, RuntimeFailure)
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be\n")
    proc = cli("testbed", "build", "--plain", "--cache", str(not_a_folder), blocked=False, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"winarm: cannot build the test guest in {not_a_folder}: ")
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_winarms_distribution_leaves_the_testbed_out() -> None:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    include = config["options.packages.find"]["include"].split()
    packages = sorted(".".join(p.parent.relative_to(REPO_ROOT).parts) for p in REPO_ROOT.glob("winarm*/**/__init__.py"))
    assert "winarm_testbed" in packages and "winarm.cli" in packages
    # setuptools' find_packages matches each dotted name against the include patterns with fnmatchcase
    shipped = [p for p in packages if any(fnmatch.fnmatchcase(p, pattern) for pattern in include)]
    assert shipped == [p for p in packages if p == "winarm" or p.startswith("winarm.")], shipped
    assert not config.has_option("options.package_data", "winarm_testbed")


def test_the_testbeds_distribution_ships_what_the_guest_is_made_of() -> None:
    project = tomllib.loads((REPO_ROOT / "winarm_testbed" / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["winarm_testbed"]
    data = [p for p in guest_inputs() if p.suffix != ".py"]
    assert {p.suffix for p in data} == {".sh", ".awk", ".cfg"}
    for path in data:
        assert any(path.match(pattern) for pattern in patterns), f"{path.name} is not package data"
    assert project["tool"]["setuptools"]["packages"] == ["winarm_testbed"]
