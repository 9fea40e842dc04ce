"""The statistics of ``winarm bench`` results: phases merged into boot order, durations per phase, medians,
ranges and ratios per variant, and the table people read. Pure functions over the run records."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_TIMEOUT = "timeout"
MIN_RATIO_BASE = 0.05
"""The table shows no ratio against a median shorter than this (seconds): it would be noise (the JSON has it)."""


def phase_order(timelines: Iterable[Sequence[str]]) -> list[str]:
    """Every phase name of the timelines, in boot order: each timeline's names in order of first appearance,
    merged so that a name new to the order goes right after the furthest name its timeline has passed (a
    repeated phase, like the firmware of a later boot, does not pull it back)."""
    order: list[str] = []
    for names in timelines:
        reached = -1  # the furthest position in ``order`` this timeline has been through
        for name in names:
            if name in order:
                reached = max(reached, order.index(name))
            else:
                reached += 1
                order.insert(reached, name)
    return order


def by_phase(phases: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Closed phases' durations summed per name (a name seen in several boots, like firmware, adds up)."""
    sums: dict[str, float] = {}
    for phase in phases:
        if phase.get("duration") is not None:
            sums[phase["name"]] = round(sums.get(phase["name"], 0.0) + float(phase["duration"]), 6)
    return sums


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return round(value / reference, 4)


def summarize(runs_per_variant: Sequence[Sequence[Mapping[str, Any]]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Per variant, per phase of ``order`` and ``total``: median, min and max over the variant's successful runs,
    and the ratio of its median to the first variant's median. A phase a run did not have counts as absent, not
    zero; ``runs`` says how many runs each figure stands on."""
    summaries: list[dict[str, Any]] = []
    for runs in runs_per_variant:
        ok = [r for r in runs if r["status"] == STATUS_OK]
        summary: dict[str, Any] = {}
        for key in [*order, "total"]:
            values = [float(r["total"]) if key == "total" else float(r["by_phase"][key])
                      for r in ok if (key == "total" and r.get("total") is not None) or key in r["by_phase"]]
            if values:
                summary[key] = {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
                                "max": round(max(values), 4), "runs": len(values)}
        summaries.append(summary)
    reference = summaries[0] if summaries else {}
    for summary in summaries:
        for key, figures in summary.items():
            base = reference.get(key)
            figures["ratio"] = ratio(figures["median"], base["median"] if base else None)
    return summaries


def format_table(result: Mapping[str, Any]) -> list[str]:
    """The result for people: per phase (boot order) and total, each variant's median, min-max and ratio to
    the first variant; then the runs that failed, with their reasons."""
    variants = result["variants"]
    keys = [*result["phase_order"], "total"]
    width = max([len("phase"), *(len(k) for k in keys)]) + 2
    column = 30
    head = f"{'phase':<{width}}" + "".join(f"{v['name'][:column - 2]:<{column}}" for v in variants)
    sub = f"{'':<{width}}" + "".join(f"{'median  min-max     ratio':<{column}}" for _ in variants)
    lines = [head, sub]
    for key in keys:
        row = f"{key:<{width}}"
        for variant in variants:
            figures = variant["summary"].get(key)
            if figures is None:
                row += f"{'-':<{column}}"
                continue
            spread = f"{figures['min']:.1f}-{figures['max']:.1f}"
            reference = variants[0]["summary"].get(key)
            meaningful = figures.get("ratio") is not None and reference and reference["median"] >= MIN_RATIO_BASE
            share = f"{figures['ratio']:.2f}x" if meaningful else "-"
            row += f"{figures['median']:>6.2f}  {spread:<11} {share:<{column - 20}}"
        lines.append(row.rstrip())
    counted = ", ".join(
        f"{v['name']}: {sum(r['status'] == STATUS_OK for r in v['runs'])}/{len(v['runs'])}" for v in variants
    )
    lines.append(f"seconds; medians over successful runs ({counted}); ratio = median / {variants[0]['name']}")
    for variant in variants:
        for run in variant["runs"]:
            if run["status"] != STATUS_OK:
                lines.append(f"{variant['name']} run {run['index']}: {run['status']}: {run['error']}")
    return lines
