"""Charts of boot timelines: a benchmark's runs side by side, and one boot's phases as a Gantt chart.

Both functions draw with matplotlib's object API (a :class:`matplotlib.figure.Figure`, no pyplot, no global
backend switch), write a PNG *and* an SVG next to each other, atomically, and return the paths written.
matplotlib is optional (``pip install 'winarm[chart]'``): it is imported only when a chart is drawn, so
``import winarm.timeline.chart`` is cheap and a missing matplotlib is one clear :class:`RuntimeFailure`.

Colours are keyed by phase name (:func:`phase_color`), the same in every chart: a fixed palette for the phases
winarm knows, a stable hash into a qualitative palette for the rest (``boot-net``, a custom marker).
SVG text stays text (``svg.fonttype = "none"``), so labels can be searched; each drawn segment carries an
id (``seg-<variant>-<run>-<n>-<phase>``, ``seg-<variant>-median-<phase>``, ``phase-<n>-<phase>``).
"""

from __future__ import annotations

import importlib
import io
import statistics
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from winarm.errors import RuntimeFailure
from winarm.files import write_atomic
from winarm.timeline.phases import INFERRED

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

MISSING_MATPLOTLIB = "matplotlib is not installed: pip install 'winarm[chart]' (charts are optional)"

TIME_LABEL = "seconds since winarm up"

# The phases winarm names itself, in boot order; neighbours in a boot get clearly different colours.
PHASE_COLORS: dict[str, str] = {
    "launch": "#7f7f7f",
    "init": "#c7c7c7",  # the testbed guest's start in each boot
    "firmware": "#8c564b",
    "boot-cd": "#bcbd22",
    "windowsPE": "#1f77b4",
    "boot-disk": "#17becf",
    "specialize": "#ff7f0e",
    "oobeSystem": "#9467bd",
    "first-logon": "#2ca02c",
    "desktop-ready": "#98df8a",
    "ready": "#e377c2",
    "shutdown": "#d62728",
}

# matplotlib's qualitative "tab20b", for phase names not in PHASE_COLORS.
FALLBACK_COLORS: tuple[str, ...] = (
    "#393b79", "#5254a3", "#6b6ecf", "#9c9ede", "#637939", "#8ca252", "#b5cf6b", "#cedb9c", "#8c6d31", "#bd9e39",
    "#e7ba52", "#e7cb94", "#843c39", "#ad494a", "#d6616b", "#e7969c", "#7b4173", "#a55194", "#ce6dbd", "#de9ed6",
)  # fmt: skip

FAILED_STATUSES_HATCH = "////"
MEDIAN_HATCH = ".."
MAX_ERROR_CHARS = 44


def phase_color(name: str) -> str:
    """The colour of phase ``name`` in every chart: fixed for known phases, a stable hash for others."""
    known = PHASE_COLORS.get(name)
    if known is not None:
        return known
    return FALLBACK_COLORS[zlib.crc32(name.encode("utf-8")) % len(FALLBACK_COLORS)]


def chart_paths(out: Path) -> list[Path]:
    """The two files a chart written to ``out`` lands in: ``[png, svg]``.

    ``x.png`` or ``x.svg`` (any case) names one of them and the other is its sibling; any other name gets both
    suffixes appended (``bench`` -> ``bench.png``, ``bench.svg``; ``run.v2`` -> ``run.v2.png``, ``run.v2.svg``).
    """
    suffix = out.suffix.lower()
    if suffix == ".png":
        return [out, out.with_suffix(".svg")]
    if suffix == ".svg":
        return [out.with_suffix(".png"), out]
    return [out.with_name(out.name + ".png"), out.with_name(out.name + ".svg")]


def benchmark_chart(result: dict[str, Any], out: Path) -> list[Path]:
    """Draw a ``winarm bench`` result as a timeline and write it as PNG and SVG (see :func:`chart_paths`).

    One horizontal bar a run, time on the x axis, stacked from the run's phases in time order and coloured by
    phase name; runs are grouped under their variant's name. Under each group a ``median`` bar stacks the
    per-phase medians (``summary[phase]["median"]``, else the median over the ok runs) in ``phase_order``,
    hatched, and a dashed line marks the median total. Failed and timed-out runs are drawn faded and hatched
    with their status beside the bar; phases with no end yet are left out. The legend lists the phases in
    ``phase_order`` (then any other name seen).

    Returns the paths written, ``[png, svg]``. Raises :class:`RuntimeFailure` when matplotlib is missing and
    :class:`UserError` when the files cannot be written (no such folder, a folder in the way, disk full).
    """
    _require_matplotlib()
    import matplotlib

    with matplotlib.rc_context(_RC):
        figure = _draw_benchmark(result)
        return _save(figure, out)


def phases_chart(phases: list[dict[str, Any]], out: Path, title: str) -> list[Path]:
    """Draw one boot's phases as a Gantt chart and write it as PNG and SVG (see :func:`chart_paths`).

    ``phases`` are :meth:`winarm.timeline.phases.Phase.as_dict` dicts in time order. One row a phase, top to bottom,
    a bar from its start to its end coloured by name (as in :func:`benchmark_chart`), its duration written at
    the bar's end; a phase still open is shown as ``running`` at its start. Rows of later boots say which boot.

    Returns the paths written, ``[png, svg]``. Raises :class:`RuntimeFailure` when matplotlib is missing and
    :class:`UserError` when the files cannot be written.
    """
    _require_matplotlib()
    import matplotlib

    with matplotlib.rc_context(_RC):
        figure = _draw_phases(phases, title)
        return _save(figure, out)


# --- drawing -------------------------------------------------------------------------------------------------

_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "winarm",
    "font.size": 10,
    "axes.titlesize": 13,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "hatch.linewidth": 0.8,
}

ROW_HEIGHT_IN = 0.36
# Labels beside bars sit on a white box, so the median-total line never runs through their digits.
_LABEL_BOX: dict[str, Any] = {"facecolor": "white", "edgecolor": "none", "pad": 1.0, "alpha": 0.9}
BAR_HEIGHT = 0.72


def _require_matplotlib() -> None:
    try:
        # sys.modules["matplotlib"] = None must fail here, before any submodule is drawn with
        importlib.import_module("matplotlib")
        importlib.import_module("matplotlib.figure")
    except ImportError:
        raise RuntimeFailure(MISSING_MATPLOTLIB) from None


def _closed(phase: dict[str, Any]) -> tuple[float, float] | None:
    """(start, end) of a phase that has ended, else None."""
    start, end = phase.get("start"), phase.get("end")
    if start is None or end is None:
        return None
    return float(start), float(end)


def _legend_names(phase_order: Sequence[str], seen: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(phase_order))
    for name in seen:
        if name not in names:
            names.append(name)
    return names


def _median_by_phase(variant: dict[str, Any], names: Sequence[str]) -> list[tuple[str, float]]:
    """(phase, median seconds) in ``names`` order: the summary's median, else the median over ok runs."""
    summary = variant.get("summary") or {}
    ok_runs = [run for run in variant.get("runs", []) if run.get("status", "ok") == "ok"]
    medians: list[tuple[str, float]] = []
    for name in names:
        entry = summary.get(name)
        value: float | None = None
        if isinstance(entry, dict) and entry.get("median") is not None:
            value = float(entry["median"])
        else:
            samples = [float(run["by_phase"][name]) for run in ok_runs if (run.get("by_phase") or {}).get(name)]
            value = statistics.median(samples) if samples else None
        if value:
            medians.append((name, value))
    return medians


def _median_total(variant: dict[str, Any]) -> float | None:
    entry = (variant.get("summary") or {}).get("total")
    if isinstance(entry, dict) and entry.get("median") is not None:
        return float(entry["median"])
    totals = [float(run["total"]) for run in variant.get("runs", [])
              if run.get("status", "ok") == "ok" and run.get("total") is not None]  # fmt: skip
    return statistics.median(totals) if totals else None


def _run_end(run: dict[str, Any]) -> float:
    ends = [span[1] for span in map(_closed, run.get("phases") or []) if span is not None]
    return max(ends, default=0.0)


def _draw_benchmark(result: dict[str, Any]) -> Figure:
    from matplotlib.figure import Figure

    variants: list[dict[str, Any]] = list(result.get("variants") or [])
    seen = [str(p.get("name")) for v in variants for run in v.get("runs", []) for p in run.get("phases") or []]
    names = _legend_names([str(n) for n in result.get("phase_order") or []], seen)

    # Rows top to bottom: a header row with the variant's name, one row a run, the median row, a gap.
    rows = sum(len(v.get("runs", [])) + 2 for v in variants) + 0.6 * max(len(variants) - 1, 0)
    height = max(2.2 + ROW_HEIGHT_IN * rows, 1.6 + 0.27 * (len(names) + 5))  # the legend's rows need room too
    figure = Figure(figsize=(13.0, height), layout="constrained")
    ax = figure.add_subplot()

    x_max = _benchmark_x_max(variants, names)
    ticks: list[float] = []
    labels: list[str] = []
    y = 0.0
    for v_index, variant in enumerate(variants, 1):
        y = _draw_variant(ax, variant, names, y, v_index=v_index, rows=(ticks, labels), pad=0.008 * x_max)
    _time_axis(ax, ticks, labels, x_max * 1.2)
    ax.set_ylim(max(y - 1.6, 0) + 0.6, -0.3)  # top to bottom

    runs = result.get("runs_per_variant")
    runs_text = f"{runs} run{'s' if runs != 1 else ''} per variant" if runs is not None else "runs per variant unknown"
    ax.set_title(f"winarm bench: {result.get('mode', 'boot')}, {runs_text}", loc="left", fontweight="bold")
    if not variants:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", fontsize=12)
    _benchmark_legend(ax, names)
    return figure


def _benchmark_x_max(variants: Sequence[dict[str, Any]], names: Sequence[str]) -> float:
    """The furthest any run, median bar or median total reaches (1.0 when nothing does)."""
    x_max = 0.0
    for variant in variants:
        for run in variant.get("runs", []):
            x_max = max(x_max, _run_end(run))
        x_max = max(x_max, sum(v for _, v in _median_by_phase(variant, names)), _median_total(variant) or 0.0)
    return x_max or 1.0


def _draw_variant(ax: Axes, variant: dict[str, Any], names: Sequence[str], y: float, *, v_index: int,
                  rows: tuple[list[float], list[str]], pad: float) -> float:
    """A variant's group from row ``y`` down: its name, a bar a run, the median bar and the median-total line,
    their rows added to ``rows`` (ticks, labels); returns where the next group starts."""
    ticks, labels = rows
    if v_index > 1:
        ax.axhline(y - 0.8, color="#bbbbbb", linewidth=0.8)
    # The variant's name heads its group, left-aligned over the bars: long names do not squeeze the plot.
    ax.text(0.0, y + 0.15, str(variant.get("name", f"variant {v_index}")), transform=ax.get_yaxis_transform(),
            ha="left", va="center", fontsize=11.5, fontweight="bold")  # fmt: skip
    y += 1
    first_run_y = y
    for r_pos, run in enumerate(variant.get("runs", []), 1):
        run_index = run.get("index", r_pos)
        ticks.append(y)
        labels.append(f"run {run_index}")
        _draw_run(ax, run, y, v_index=v_index, run_index=run_index, pad=pad)
        y += 1
    ticks.append(y)
    labels.append("median")
    left = 0.0
    for name, value in _median_by_phase(variant, names):
        bar = ax.barh(y, value, left=left, height=BAR_HEIGHT, color=phase_color(name), edgecolor="black",
                      linewidth=0.9, hatch=MEDIAN_HATCH)  # fmt: skip
        bar.patches[0].set_gid(f"seg-{v_index}-median-{name}")
        left += value
    total = _median_total(variant)
    if total is not None:
        ax.vlines(total, first_run_y - 0.5, y + 0.5, colors="black", linestyles="--", linewidth=1.1, zorder=3)
        ax.text(max(left, total) + pad, y, f"median total {total:.1f} s", va="center", fontsize=9,
                fontweight="bold", bbox=_LABEL_BOX, zorder=4)  # fmt: skip
    return y + 1.6


def _benchmark_legend(ax: Axes, names: Sequence[str]) -> None:
    """The phases in boot order, then the median, median-total and failed-run styles."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(facecolor=phase_color(name), label=name) for name in names]
    handles += [
        Patch(facecolor="white", edgecolor="none", label=" "),
        Patch(facecolor="#dddddd", edgecolor="black", linewidth=0.9, hatch=MEDIAN_HATCH,
              label="median per phase"),
        Line2D([], [], color="black", linestyle="--", linewidth=1.1, label="median total"),
        Patch(facecolor="#cccccc", edgecolor="#555555", alpha=0.5, hatch=FAILED_STATUSES_HATCH,
              label="failed / timeout run"),
    ]  # fmt: skip
    legend = ax.legend(handles=handles, title="phases (boot order)", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       frameon=False, alignment="left")  # fmt: skip
    legend.set_gid("legend-phases")


def _draw_run(ax: Axes, run: dict[str, Any], y: float, *, v_index: int, run_index: Any, pad: float) -> None:
    """One run's bar: its closed phases in time order, faded and hatched unless the run is ok."""
    status = str(run.get("status", "ok"))
    ok = status == "ok"
    end = 0.0
    for n, phase in enumerate(run.get("phases") or [], 1):
        span = _closed(phase)
        if span is None:
            continue
        start, stop = span
        name = str(phase.get("name"))
        style: dict[str, Any] = {"edgecolor": "white", "linewidth": 0.6}
        if not ok:
            style = {"edgecolor": "#444444", "linewidth": 0.4, "alpha": 0.55, "hatch": FAILED_STATUSES_HATCH}
        bar = ax.barh(y, stop - start, left=start, height=BAR_HEIGHT, color=phase_color(name), **style)
        bar.patches[0].set_gid(f"seg-{v_index}-{run_index}-{n}-{name}")
        end = max(end, stop)
    if ok:
        total = run.get("total")
        ax.text(end + pad, y, f"{float(total) if total is not None else end:.1f} s", va="center", fontsize=9,
                bbox=_LABEL_BOX, zorder=4)  # fmt: skip
        return
    error = str(run.get("error") or "").strip().splitlines()
    detail = error[0] if error else ""
    if len(detail) > MAX_ERROR_CHARS:
        detail = detail[: MAX_ERROR_CHARS - 1] + "\u2026"
    label = ax.text(end + pad, y, status, va="center", fontsize=9, fontweight="bold", color="#b00020", bbox=_LABEL_BOX,
                    zorder=4)  # fmt: skip
    note = f"after {end:.1f} s" + (f": {detail}" if detail else "")
    # Chained to the status label's box, so the note starts right after it whatever the font.
    ax.annotate(note, xy=(1.0, 0.5), xycoords=label, xytext=(3, 0), textcoords="offset points", va="center",
                fontsize=8.5, color="#b00020", bbox=_LABEL_BOX, zorder=4)  # fmt: skip


def _draw_phases(phases: list[dict[str, Any]], title: str) -> Figure:
    from matplotlib.figure import Figure

    boots = {int(p.get("boot", 0)) for p in phases}
    several_boots = len(boots - {0}) > 1
    ends = [span[1] for span in map(_closed, phases) if span is not None]
    x_max = max([*ends, *(float(p.get("start") or 0.0) for p in phases)], default=0.0) or 1.0
    pad = 0.008 * x_max

    figure = Figure(figsize=(11.0, 1.9 + ROW_HEIGHT_IN * max(len(phases), 3)), layout="constrained")
    ax = figure.add_subplot()
    labels: list[str] = []
    for row, phase in enumerate(phases):
        name = str(phase.get("name"))
        boot = int(phase.get("boot", 0))
        inferred = phase.get("source") == INFERRED  # named by the boot order: drawn hatched and labelled so
        label = f"{name}  (boot {boot})" if several_boots and boot > 0 else name
        labels.append(f"{label}  [inferred]" if inferred else label)
        span = _closed(phase)
        if span is None:
            start = float(phase.get("start") or 0.0)
            ax.plot([start], [row], marker=">", color=phase_color(name), markersize=8)
            ax.text(start + pad * 2, row, "running", va="center", fontsize=9, style="italic")
            continue
        start, stop = span
        bar = ax.barh(row, stop - start, left=start, height=BAR_HEIGHT, color=phase_color(name), edgecolor="white",
                      linewidth=0.6, hatch="///" if inferred else None, alpha=0.6 if inferred else 1.0)  # fmt: skip
        bar.patches[0].set_gid(f"phase-{row + 1}-{name}{'-inferred' if inferred else ''}")
        ax.text(stop + pad, row, f"{stop - start:.1f} s", va="center", fontsize=9)
    _time_axis(ax, list(range(len(phases))), labels, x_max * 1.12)
    ax.set_ylim(len(phases) - 0.4, -0.6)
    if ends:
        total = max(ends)
        ax.axvline(total, color="black", linestyle="--", linewidth=1.0)
        title = f"{title} (total {total:.1f} s)"
    if not phases:
        ax.text(0.5, 0.5, "no phases recorded", transform=ax.transAxes, ha="center", va="center", fontsize=12)
    ax.set_title(title, loc="left", fontweight="bold")
    return figure


# --- writing -------------------------------------------------------------------------------------------------


def _save(figure: Figure, out: Path) -> list[Path]:
    """Render both formats in memory first (a drawing error leaves no file), then write each atomically."""
    targets = chart_paths(out)
    rendered: list[bytes] = []
    for target in targets:
        buffer = io.BytesIO()
        fmt = target.suffix.lower().lstrip(".")
        metadata = {"Date": None} if fmt == "svg" else None
        figure.savefig(buffer, format=fmt, dpi=110, metadata=metadata)
        rendered.append(buffer.getvalue())
    for target, data in zip(targets, rendered, strict=True):
        write_atomic(target, data, mode=0o644, what="chart")
    return targets


def _time_axis(ax: Any, ticks: Sequence[float], labels: Sequence[str], x_limit: float) -> None:
    """The shared look of both charts: row labels without ticks, seconds on x from 0, a light x grid, no frame."""
    ax.set_yticks(ticks, labels)
    ax.tick_params(axis="y", length=0)
    ax.set_xlim(0, x_limit)
    ax.set_xlabel(TIME_LABEL)
    ax.grid(axis="x", color="#dddddd", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


