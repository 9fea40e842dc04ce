"""The TIMEZONE setting: a Windows time zone ID or an IANA name mapped to one (tzlocal's mapping), the host's zone by
default, anything else refused in one line before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tzlocal
from click.testing import CliRunner

from winarm.cli.main import main as cli
from winarm.config.host import HostFacts
from winarm.config.timezone import host_timezone, is_windows_zone, windows_timezone, windows_zone_ids
from winarm.config.vm import load_config
from winarm.errors import UserError


@pytest.mark.parametrize(("given", "windows"), [
    ("Europe/Berlin", "W. Europe Standard Time"),
    ("europe/berlin", "W. Europe Standard Time"),
    ("America/Los_Angeles", "Pacific Standard Time"),
    ("Asia/Tokyo", "Tokyo Standard Time"),
    ("Etc/UTC", "UTC"),
    ("UTC", "UTC"),
    ("w. europe standard time", "W. Europe Standard Time"),
    (" Pacific Standard Time ", "Pacific Standard Time"),
    ("pacific standard time_dstoff", "Pacific Standard Time_dstoff"),
])
def test_a_windows_id_or_an_iana_name_gives_the_windows_id(given: str, windows: str) -> None:
    assert windows_timezone(given) == windows
    assert is_windows_zone(windows)


@pytest.mark.parametrize("given", ["Mars/Olympus_Mons", "", "CET+1", "Berlin", "Europe/Berlin_dstoff",
                                   "W. Europe Standard Time_dst", "Europe/Berl\u00edn"])
def test_anything_else_is_refused_naming_the_value_and_an_example(given: str) -> None:
    with pytest.raises(UserError) as caught:
        windows_timezone(given)
    message = str(caught.value)
    assert "\n" not in message and ascii(given.strip()) in message
    assert message.endswith("use for example 'W. Europe Standard Time' or Europe/Berlin")


def test_the_known_ids_are_windows_ones_only() -> None:
    ids = windows_zone_ids()
    assert {"UTC", "W. Europe Standard Time", "Pacific Standard Time", "Tokyo Standard Time"} <= ids
    assert "Europe/Berlin" not in ids and not is_windows_zone("Europe/Berlin")
    assert not is_windows_zone("pacific standard time"), "the answer file's value must be spelled as Windows does"


@pytest.fixture
def host_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lets a test set the host's zone through TZ (tzlocal caches what it found, so the cache is reset around)."""
    yield
    monkeypatch.undo()
    tzlocal.reload_localzone()


@pytest.mark.usefixtures("host_zone")
@pytest.mark.parametrize(("tz", "windows"), [("Asia/Tokyo", "Tokyo Standard Time"), ("Etc/UTC", "UTC"),
                                             ("Antarctica/Troll", "UTC")])
def test_the_default_is_the_host_s_zone_mapped_or_utc(monkeypatch: pytest.MonkeyPatch, tz: str, windows: str) -> None:
    """Antarctica/Troll is a real zone with no Windows equivalent in the mapping: UTC then."""
    monkeypatch.setenv("TZ", tz)
    tzlocal.reload_localzone()
    assert host_timezone() == windows


def test_up_takes_timezone_from_the_flag_or_the_environment(tmp_path: Path, host: HostFacts) -> None:
    base: dict[str, object] = {"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}
    assert load_config({**base, "timezone": "Europe/Paris"}, {}, host).timezone == "Romance Standard Time"
    assert load_config(base, {"TIMEZONE": "Tokyo Standard Time"}, host).timezone == "Tokyo Standard Time"
    with pytest.raises(UserError, match=r"^time zone 'Nowhere/Special' is neither"):
        load_config(base, {"TIMEZONE": "Nowhere/Special"}, host)
    assert not (tmp_path / "s").exists(), "nothing written"


def test_the_cli_refuses_a_bad_zone_in_one_line_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["unattend", "render", "--timezone", "Mars/Olympus_Mons"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert "'Mars/Olympus_Mons'" in result.output and "Europe/Berlin" in result.output
    result = CliRunner().invoke(cli, ["unattend", "render"], env={"TIMEZONE": "Asia/Tokyo"})
    assert result.exit_code == 0 and result.output.count("<TimeZone>Tokyo Standard Time</TimeZone>") == 2
