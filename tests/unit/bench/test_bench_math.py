"""The benchmark's arithmetic and its variant syntax, without booting anything."""

from __future__ import annotations

from typing import Any

import pytest

from winarm.bench.stats import by_phase, format_table, phase_order, ratio, summarize
from winarm.bench.variants import Variant, parse_settings, parse_variant, up_options
from winarm.errors import UserError


def run(status: str, total: float | None, **phases: float) -> dict[str, object]:
    return {"status": status, "total": total, "by_phase": phases, "phases": [], "index": 1, "error": None}


def test_variants_and_settings() -> None:
    assert parse_variant("drivers=windowsPE") == Variant("drivers=windowsPE", {"drivers_pass": "windowsPE"})
    assert parse_variant("fast:cpus=4,disk-bus=nvme") == Variant("fast", {"cpus": "4", "disk_bus": "nvme"})
    assert parse_settings("RAM=8G,tpm=no") == {"ram": "8G", "tpm": "no"}
    assert up_options({"drivers_pass": "specialize", "tpm": "no", "secure_boot": "yes", "cpus": "4"}) == [
        "--drivers-pass", "specialize", "--no-tpm", "--secure-boot", "--cpus", "4"]


@pytest.mark.parametrize(("text", "needle"), [
    ("drivers", "is not key=value"),
    ("colour=red", "'colour' is not a setting winarm bench can vary"),
    ("cpus=2,cpus=4", "'cpus' is given twice"),
    ("cpus=", "is not key=value"),
])
def test_bad_variants(text: str, needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        parse_variant(text)


def test_phase_order_merges_timelines_in_boot_order() -> None:
    a = ["launch", "firmware", "boot-cd", "windowsPE", "firmware", "boot-disk", "specialize", "ready"]
    b = ["launch", "firmware", "boot-disk", "specialize", "oobeSystem", "first-logon", "desktop-ready", "ready"]
    assert phase_order([a, b]) == ["launch", "firmware", "boot-cd", "windowsPE", "boot-disk", "specialize",
                                   "oobeSystem", "first-logon", "desktop-ready", "ready"]
    assert phase_order([]) == []


def test_by_phase_adds_up_repeated_phases_and_skips_open_ones() -> None:
    phases: list[dict[str, Any]] = [{"name": "firmware", "duration": 2.0}, {"name": "boot-disk", "duration": 1.5},
              {"name": "firmware", "duration": 2.25}, {"name": "ready", "duration": None}]
    assert by_phase(phases) == {"firmware": 4.25, "boot-disk": 1.5}


def test_ratio() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 3.0) == 0.3333
    assert ratio(None, 2.0) is None and ratio(2.0, None) is None and ratio(2.0, 0.0) is None


def test_summary_medians_ranges_ratios_and_failed_runs_left_out() -> None:
    first = [run("ok", 10.0, firmware=2.0, setup=8.0), run("ok", 14.0, firmware=4.0, setup=10.0),
             run("ok", 12.0, firmware=3.0, setup=9.0)]
    second = [run("ok", 5.0, firmware=2.0, setup=3.0), run("failed", None, firmware=50.0),
              run("ok", 7.0, firmware=2.0, setup=5.0), run("timeout", None, firmware=1.0, setup=99.0)]
    summary = summarize([first, second], ["firmware", "setup", "extra"])
    assert summary[0]["firmware"] == {"median": 3.0, "min": 2.0, "max": 4.0, "runs": 3, "ratio": 1.0}
    assert summary[0]["total"] == {"median": 12.0, "min": 10.0, "max": 14.0, "runs": 3, "ratio": 1.0}
    assert summary[1]["firmware"] == {"median": 2.0, "min": 2.0, "max": 2.0, "runs": 2, "ratio": 0.6667}
    assert summary[1]["setup"] == {"median": 4.0, "min": 3.0, "max": 5.0, "runs": 2, "ratio": 0.4444}
    assert summary[1]["total"]["median"] == 6.0 and summary[1]["total"]["ratio"] == 0.5
    assert "extra" not in summary[0], "a phase no run had is absent, not zero"


def test_a_phase_only_the_second_variant_has_gets_no_ratio() -> None:
    summary = summarize([[run("ok", 1.0, a=1.0)], [run("ok", 3.0, a=1.0, b=2.0)]], ["a", "b"])
    assert summary[1]["b"]["ratio"] is None


def test_table_shows_medians_ratios_and_failures() -> None:
    variants: list[dict[str, Any]] = [
        {"name": "drivers=windowsPE", "runs": [run("ok", 10.0, firmware=2.0)], "summary": {}},
        {"name": "drivers=specialize", "runs": [run("ok", 8.0, firmware=2.0),
                                                {**run("timeout", None), "error": "no desktop-ready"}],
         "summary": {}},
    ]
    for variant, summary in zip(variants, summarize([v["runs"] for v in variants], ["firmware"]), strict=True):
        variant["summary"] = summary
    lines = format_table({"phase_order": ["firmware"], "variants": variants})
    total = next(line for line in lines if line.startswith("total"))
    assert "10.00" in total and "8.00" in total and "0.80x" in total
    assert "drivers=specialize run 1: timeout: no desktop-ready" in lines[-1]
    assert "drivers=specialize: 1/2" in lines[-2]
