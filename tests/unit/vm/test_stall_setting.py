"""The ``stall_timeout`` setting: its flag, its environment name, its default sized for TCG, and the values it
refuses in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from winarm.cli.main import main
from winarm.config.host import HostFacts
from winarm.config.table import BY_NAME, UP
from winarm.config.vm import load_config
from winarm.errors import UserError


def flags(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"storage": str(tmp_path / "storage"), "run_base": str(tmp_path / "run"), **extra}


def test_the_default_allows_for_tcg_and_says_why(tmp_path: Path, host: HostFacts) -> None:
    row = BY_NAME["stall_timeout"]
    assert row.flag == "--stall-timeout" and row.env == ("STALL_TIMEOUT",) and "stall_timeout" in UP
    assert load_config(flags(tmp_path), {}, host).stall_timeout == 1800.0
    assert "[env STALL_TIMEOUT; default 1800]" in row.help_text and "TCG" in row.help_text
    assert "0 turns the watch off" in row.help_text


def test_the_flag_wins_over_the_environment(tmp_path: Path, host: HostFacts) -> None:
    assert load_config(flags(tmp_path), {"STALL_TIMEOUT": "90.5"}, host).stall_timeout == 90.5
    assert load_config(flags(tmp_path, stall_timeout="8"), {"STALL_TIMEOUT": "90"}, host).stall_timeout == 8.0
    assert load_config(flags(tmp_path), {"STALL_TIMEOUT": "0"}, host).stall_timeout == 0.0, "0: off"


@pytest.mark.parametrize("text, message", [
    ("ten", "stall timeout 'ten' is not a number of seconds: use for example 1800, or 0 to turn the stall "
            "watch off"),
    ("10m", "stall timeout '10m' is not a number of seconds"),
    ("-1", "stall timeout '-1' is out of range: use 0 (off) to 604800 seconds"),
    ("nan", "stall timeout 'nan' is out of range"),
    ("inf", "stall timeout 'inf' is out of range"),
])
def test_a_bad_value_is_one_line_naming_it(tmp_path: Path, host: HostFacts, text: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        load_config(flags(tmp_path), {"STALL_TIMEOUT": text}, host)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_winarm_up_refuses_it_before_anything_is_made(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["up", "--storage", str(tmp_path / "s"), "--stall-timeout", "soon"],
                                env={"WINARM_RUN_DIR": str(tmp_path / "run")})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["winarm: stall timeout 'soon' is not a number of seconds: use "
                                                  "for example 1800, or 0 to turn the stall watch off"]
    assert not (tmp_path / "s").exists()
