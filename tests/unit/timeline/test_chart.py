"""Benchmark and phase charts: both formats written, labels searchable in the SVG, colours keyed by phase name."""

from __future__ import annotations

import os
import re
import statistics
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from defusedxml.ElementTree import fromstring

from winarm.errors import RuntimeFailure, UserError
from winarm.timeline.chart import FALLBACK_COLORS, PHASE_COLORS, benchmark_chart, chart_paths, phase_color, phases_chart

SVG = "{http://www.w3.org/2000/svg}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PHASE_ORDER = [
    "launch", "firmware", "boot-cd", "windowsPE", "boot-disk", "specialize", "oobeSystem", "first-logon",
    "desktop-ready", "ready", "shutdown",
]  # fmt: skip

VARIANTS = ["drivers=windowsPE", "drivers=offlineServicing"]


def _boot(scale: float, pe: float) -> list[tuple[str, int, float | None]]:
    """A from-scratch install: three boots (setup from the CD, specialize, OOBE), then a shutdown."""
    return [
        ("launch", 0, 0.3), ("firmware", 1, 2.6 * scale), ("boot-cd", 1, 3.1 * scale), ("windowsPE", 1, pe * scale),
        ("firmware", 2, 2.4 * scale), ("boot-disk", 2, 4.0 * scale), ("specialize", 2, 9.5 * scale),
        ("firmware", 3, 2.5 * scale), ("boot-disk", 3, 3.2 * scale), ("oobeSystem", 3, 6.1 * scale),
        ("first-logon", 3, 4.4 * scale), ("desktop-ready", 3, 2.0 * scale), ("ready", 3, 0.8 * scale),
        ("shutdown", 3, 3.0 * scale),
    ]  # fmt: skip


def _run(index: int, spec: list[tuple[str, int, float | None]], status: str = "ok") -> dict[str, Any]:
    clock = 0.0
    phases: list[dict[str, Any]] = []
    by_phase: dict[str, float] = {}
    for name, boot, duration in spec:
        end = None if duration is None else round(clock + duration, 3)
        phases.append({"name": name, "boot": boot, "start": round(clock, 3), "end": end, "duration": duration})
        if duration is not None:
            by_phase[name] = round(by_phase.get(name, 0.0) + duration, 3)
            clock = end or clock
    return {
        "index": index, "sequence": index, "status": status,
        "error": None if status == "ok" else "QEMU exited with status 1 during boot-disk",
        "total": round(clock, 3) if status == "ok" else None, "phases": phases, "by_phase": by_phase,
    }  # fmt: skip


def _variant(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [run for run in runs if run["status"] == "ok"]
    summary: dict[str, dict[str, float]] = {}
    for phase in [*PHASE_ORDER, "total"]:
        values = [run["total"] if phase == "total" else run["by_phase"][phase] for run in ok]
        summary[phase] = {"median": statistics.median(values), "min": min(values), "max": max(values), "ratio": 1.0}
    return {"name": name, "settings": {"drivers_pass": name.split("=")[1]}, "runs": runs, "summary": summary}


def make_result() -> dict[str, Any]:
    """2 variants x 2 runs; the second variant's run 2 failed in its third boot, its last phase still open."""
    failed = _boot(1.0, 7.5)[:8] + [("boot-disk", 3, None)]
    return {
        "mode": "from-scratch",
        "runs_per_variant": 2,
        "phase_order": PHASE_ORDER,
        "variants": [
            _variant(VARIANTS[0], [_run(1, _boot(1.0, 12.0)), _run(2, _boot(1.06, 12.0))]),
            _variant(VARIANTS[1], [_run(1, _boot(0.97, 7.5)), _run(2, failed, status="failed")]),
        ],
    }


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def texts(element: Element) -> list[str]:
    """Every <text> under ``element``, in document order (with svg.fonttype none, labels are plain text)."""
    return ["".join(node.itertext()).strip() for node in element.iter(f"{SVG}text")]


def by_id(root: Element) -> dict[str, Element]:
    return {node.attrib["id"]: node for node in root.iter() if "id" in node.attrib}


def fill_of(group: Element, ids: dict[str, Element]) -> str:
    """The fill colour of a segment's <path>; a hatched fill is a pattern whose background <rect> has the colour."""
    path = group.find(f"{SVG}path")
    assert path is not None
    match = re.search(r"fill:\s*([^;]+)", path.attrib.get("style", ""))
    assert match, f"no fill on {group.attrib['id']}"
    fill = match.group(1).strip()
    pattern = re.fullmatch(r"url\(#(.+)\)", fill)
    if pattern:
        rect = ids[pattern.group(1)].find(f"{SVG}rect")
        assert rect is not None
        fill = rect.attrib["fill"]
    return fill.lower()


def left_x(group: Element) -> float:
    path = group.find(f"{SVG}path")
    assert path is not None
    return float(path.attrib["d"].split()[1])


@pytest.fixture(scope="module")
def bench_chart(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Element]:
    folder = tmp_path_factory.mktemp("bench")
    paths = benchmark_chart(make_result(), folder / "bench")
    return paths, fromstring(paths[1].read_bytes())


def segments(root: Element) -> dict[str, Element]:
    return {key: node for key, node in by_id(root).items() if key.startswith("seg-")}


def test_benchmark_chart_writes_png_and_svg(bench_chart: tuple[list[Path], Element]) -> None:
    paths, _ = bench_chart
    folder = paths[0].parent
    assert paths == [folder / "bench.png", folder / "bench.svg"]
    width, height = png_size(paths[0])
    assert width > 300 and height > 300
    assert paths[1].read_bytes().lstrip().startswith(b"<?xml")
    assert sorted(p.name for p in folder.iterdir()) == ["bench.png", "bench.svg"], "a temporary file was left"


def test_benchmark_svg_labels_are_text(bench_chart: tuple[list[Path], Element]) -> None:
    _, root = bench_chart
    labels = texts(root)
    for name in [*PHASE_ORDER, *VARIANTS, "median", "failed", "run 1", "run 2", "seconds since winarm up"]:
        assert name in labels, f"{name!r} is not a text label of the chart"
    assert any("from-scratch" in label and "2 runs per variant" in label for label in labels), "title"
    assert any(label.startswith("after ") and "QEMU exited" in label for label in labels), "failure detail"
    assert labels.count("median") == 2, "one median bar per variant"


def test_benchmark_legend_follows_phase_order(bench_chart: tuple[list[Path], Element]) -> None:
    _, root = bench_chart
    legend = by_id(root)["legend-phases"]
    assert [label for label in texts(legend) if label in PHASE_ORDER] == PHASE_ORDER


def test_benchmark_same_phase_same_colour_everywhere(bench_chart: tuple[list[Path], Element]) -> None:
    _, root = bench_chart
    ids = by_id(root)
    colours: dict[str, set[str]] = {}
    for key, group in segments(root).items():
        name = key.split("-", 4)[-1] if "-median-" not in key else key.split("-median-", 1)[1]
        colours.setdefault(name, set()).add(fill_of(group, ids))
    assert set(colours) == set(PHASE_ORDER)
    for name, seen in colours.items():
        assert seen == {PHASE_COLORS[name]}, f"{name} drawn in {seen}"
    assert len({PHASE_COLORS[name] for name in PHASE_ORDER}) == len(PHASE_ORDER), "two phases share a colour"
    # Both variants draw each phase, in runs and in their median bar.
    for variant in (1, 2):
        for name in PHASE_ORDER:
            assert f"seg-{variant}-median-{name}" in ids
            assert any(re.fullmatch(rf"seg-{variant}-1-\d+-{name}", key) for key in ids)


def test_benchmark_runs_are_timelines_and_open_phases_are_skipped(bench_chart: tuple[list[Path], Element]) -> None:
    _, root = bench_chart
    segs = segments(root)
    for variant, run, count in ((1, 1, 14), (1, 2, 14), (2, 1, 14), (2, 2, 8)):
        keys = sorted((int(k.split("-")[3]), k) for k in segs if k.startswith(f"seg-{variant}-{run}-"))
        assert [n for n, _ in keys] == list(range(1, count + 1)), f"variant {variant} run {run}"
        lefts = [left_x(segs[k]) for _, k in keys]
        assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts), "segments not in time order"
    # The failed run's ninth phase (boot-disk, never ended) has no bar.
    assert not any(k.startswith("seg-2-2-9-") for k in segs)
    # Median bars stack in phase_order.
    median = [left_x(segs[f"seg-1-median-{name}"]) for name in PHASE_ORDER]
    assert median == sorted(median)


def test_benchmark_chart_suffix_names_the_pair(tmp_path: Path) -> None:
    written = benchmark_chart(make_result(), tmp_path / "result.svg")
    assert written == [tmp_path / "result.png", tmp_path / "result.svg"]
    assert png_size(written[0])[0] > 300
    assert b"drivers=offlineServicing" in written[1].read_bytes()


def test_chart_paths() -> None:
    assert chart_paths(Path("a/b.png")) == [Path("a/b.png"), Path("a/b.svg")]
    assert chart_paths(Path("a/b.SVG")) == [Path("a/b.png"), Path("a/b.SVG")]
    assert chart_paths(Path("bench")) == [Path("bench.png"), Path("bench.svg")]
    assert chart_paths(Path("run.v2")) == [Path("run.v2.png"), Path("run.v2.svg")]


def test_phases_chart_one_row_per_phase(tmp_path: Path) -> None:
    phases = _run(1, _boot(1.0, 12.0))["phases"]
    phases.append({"name": "custom-step", "boot": 3, "start": 59.0, "end": None, "duration": None})
    written = phases_chart(phases, tmp_path / "boot.png", "one boot")
    assert written == [tmp_path / "boot.png", tmp_path / "boot.svg"]
    width, height = png_size(written[0])
    assert width > 300 and height > 300
    root = fromstring(written[1].read_bytes())
    labels = texts(root)
    rows = [label for label in labels if label.split("  (boot")[0] in {p["name"] for p in phases}]
    assert [row.split("  (boot")[0] for row in rows] == [p["name"] for p in phases], "one row a phase, in order"
    assert "firmware  (boot 2)" in labels, "rows of later boots say which boot"
    assert "12.0 s" in labels and "9.5 s" in labels, "durations at the bars' ends"
    assert "running" in labels, "the open phase is shown as running"
    assert any(label.startswith("one boot") and "total 55.9 s" in label for label in labels)
    ids = by_id(root)
    bars = {key: node for key, node in ids.items() if key.startswith("phase-")}
    assert len(bars) == len(phases) - 1, "the open phase has no bar"
    for key, group in bars.items():
        assert fill_of(group, ids) == phase_color(key.split("-", 2)[2])
    assert fill_of(ids["phase-2-firmware"], ids) == fill_of(ids["phase-5-firmware"], ids) == PHASE_COLORS["firmware"]


def test_inferred_phases_are_drawn_apart(tmp_path: Path) -> None:
    """A phase named by the boot order is labelled [inferred] and its bar hatched; a reported one is not."""
    phases = [{"name": "windowsPE", "boot": 1, "start": 2.0, "end": 60.0, "source": "boot-order"},
              {"name": "first-logon", "boot": 1, "start": 60.0, "end": 70.0, "source": "guest"}]
    svg = phases_chart(phases, tmp_path / "install.png", "install")[1].read_bytes()
    root = fromstring(svg)
    labels = texts(root)
    assert "windowsPE  [inferred]" in labels and "first-logon" in labels
    ids = by_id(root)
    assert "phase-1-windowsPE-inferred" in ids and "phase-2-first-logon" in ids
    assert b"<pattern" in svg, "the inferred bar is hatched"


def test_unknown_phase_colour_is_stable_across_processes() -> None:
    """No salted hash() and no eager matplotlib import: two interpreters, two hash seeds, one answer."""
    code = (
        "import sys, winarm.timeline.chart as c;"
        "print(c.phase_color('boot-net'), c.phase_color('my-marker'), 'matplotlib' in sys.modules)"
    )
    answers = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        answers.add(done.stdout.strip())
    assert len(answers) == 1
    net, marker, imported = answers.pop().split()
    assert imported == "False", "import winarm.timeline.chart pulled in matplotlib"
    assert net in FALLBACK_COLORS and marker in FALLBACK_COLORS
    assert net == phase_color("boot-net")
    assert phase_color("firmware") == PHASE_COLORS["firmware"]


def test_missing_matplotlib_is_a_runtime_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeFailure, match=r"matplotlib is not installed: pip install 'winarm\[chart\]'"):
        benchmark_chart(make_result(), tmp_path / "bench")
    with pytest.raises(RuntimeFailure, match="matplotlib is not installed"):
        phases_chart(make_result()["variants"][0]["runs"][0]["phases"], tmp_path / "boot", "boot")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        phases_chart(make_result()["variants"][0]["runs"][0]["phases"], tmp_path / "nope" / "boot", "boot")
