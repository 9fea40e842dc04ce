"""Report bodies read strictly, and what the known reports say: the drivers report's pnputil results (success
by the codes the driver script counts as success) and the hook report's exit codes."""

from __future__ import annotations

import pytest

from winarm.answer.render import render_driver_script
from winarm.guest import PNPUTIL_SUCCESS
from winarm.vm.report_body import BodyError, DriverResult, HookResult, Report, drivers_results, hook_results, parse_body


def test_key_value_lines_with_lf_or_crlf_blank_lines_skipped_and_empty_values() -> None:
    assert parse_body(b"") == ()
    assert parse_body(b"pass specialize\r\n\r\nempty\nspaced  two  spaces \nlast line") == (
        ("pass", "specialize"), ("empty", ""), ("spaced", " two  spaces "), ("last", "line"))
    assert parse_body(b"k " + b"~" * 200) == (("k", "~" * 200),)


@pytest.mark.parametrize("body", [b"k v\x7f", b"k v\x00", b" k v", b"k/x v", b"k\tv", b"\xff", b"k " + b"v" * 201,
                                  b"k v\n" * 65, b"k " + b"v" * 4095])
def test_anything_else_is_refused_whole(body: bytes) -> None:
    with pytest.raises(BodyError):
        parse_body(body)


def test_driver_results_are_ok_by_the_driver_script_s_success_codes() -> None:
    codes = " ".join(map(str, PNPUTIL_SUCCESS))
    assert f"for %%C in ({codes}) do" in render_driver_script(["NetKVM"]), "the script and the report read one list"
    report = Report("drivers", parse_body(b"pass specialize\ndriver NetKVM 0\ndriver viostor 3010\n"
                                          b"driver vioinput 259\ndriver viogpudo 1641\ndriver Balloon 5\n"
                                          b"driver pvpanic -1\ndriver broken\ndriver two words 1 2\n"))
    assert report.first("pass") == "specialize" and report.values("nothing") == [] and report.first("none") is None
    assert drivers_results(report) == [
        DriverResult("NetKVM", 0, True), DriverResult("viostor", 3010, True), DriverResult("vioinput", 259, True),
        DriverResult("viogpudo", 1641, True), DriverResult("Balloon", 5, False), DriverResult("pvpanic", -1, False)]
    assert drivers_results(Report("hook", report.items)) == [], "driver lines count only in a drivers report"
    assert report.as_json() == {"name": "drivers", "body": [list(item) for item in report.items]}


def test_hook_results_are_ok_at_exit_code_0() -> None:
    report = Report("hook", parse_body(b"hook tools 0\nhook setup.cmd 1\nhook x y\n"))
    assert hook_results(report) == [HookResult("tools", 0, True), HookResult("setup.cmd", 1, False)]
    assert hook_results(Report("drivers", report.items)) == []
