"""Every benchmark script's ``--smoke`` mode: one short run of the real path end to end, so a broken benchmark fails
``make test`` instead of rotting. Each script checks its own figures (a median must be a positive number) and exits
non-zero when one is not; here its exit status and the figures it printed are checked.

Every ``bench/*.py`` not starting with ``_`` is a benchmark and must be listed in FIGURES: a new one without a
``--smoke`` mode, or without figures named here, fails. Timings are never asserted (the machine is shared)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vmtools import REPO_ROOT

NUMBER = r"(\d+(?:\.\d+)?)"
FIGURES: dict[str, list[str]] = {
    "boot_bench.py": [rf"smoke: drivers=specialize: median total {NUMBER} s", rf"(?m)^total\s+{NUMBER}"],
    "crash_rounds.py": [rf"crash rounds: 1 \(seed 37\), {NUMBER} s each", r"verdict: PASS()"],
    "cycles_bench.py": [rf"total \d+ s, {NUMBER} s per cycle", rf"daemon MiB\s+{NUMBER}",
                        r"everything stayed flat()"],
    "prepare_bench.py": [rf"cold prepare: {NUMBER} ms at 0.0625 GiB", rf"cache hit: {NUMBER} ms",
                         rf"\(a\) remaster: 7z x \+ copy \+ genisoimage -udf\s+{NUMBER}",
                         rf"\(b\) FAT overlay: 7z e \+ wiminfo \+ mkfs.fat/mcopy\s+{NUMBER}"],
    "share_bench.py": [rf"total: before spawn to wait_ready returning\s+{NUMBER}",
                       rf"write \(open, write, close; no fsync\)\s+{NUMBER}", rf"read \(page cache\)\s+{NUMBER}",
                       rf"guest session setup, median of 2: {NUMBER} ms"],
    "spine_bench.py": [rf"\(a\) launch to QMP 'running', median of 1: winarm {NUMBER} ms",
                       rf"bare qemu {NUMBER} ms",
                       rf"to the last marker: {NUMBER} s against [\d.]+ s with plain -cpu max",
                       rf"with plain -cpu max: {NUMBER}x faster",
                       rf"\(c\) winarm resident memory while the VM runs: median {NUMBER} MiB"],
}
"""Per script, patterns its smoke output must match; each one's group is a figure that must be positive (an
empty group: a verdict line, present is enough)."""


def benchmarks() -> list[str]:
    return sorted(p.name for p in (REPO_ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_is_listed() -> None:
    assert benchmarks() == sorted(FIGURES), "every bench/*.py needs a --smoke mode and its figures in FIGURES"


@pytest.mark.qemu
@pytest.mark.parametrize("script", benchmarks())
def test_smoke(script: str, run_base: Path) -> None:
    assert script in FIGURES, f"bench/{script} has no figures listed here: give it a --smoke mode and list them"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / script), "--smoke"], cwd=REPO_ROOT,
                          env={**os.environ, "WINARM_RUN_DIR": str(run_base)}, capture_output=True, text=True,
                          timeout=1500, check=False)
    report = done.stdout[-5000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    for pattern in FIGURES[script]:
        found = re.search(pattern, done.stdout)
        assert found is not None, f"{pattern!r} not in the output:\n{report}"
        if found.group(1):
            assert float(found.group(1)) > 0, f"{found.group(0)!r} is not a positive figure:\n{report}"
