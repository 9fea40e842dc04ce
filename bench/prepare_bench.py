#!/usr/bin/env python3
"""Benchmark of ``winarm prepare`` against the two ways other launchers prepare media, side by side in one run.

winarm never remasters the user's ISO: it reads the ISO's descriptors and the install image's header and XML,
then writes a small answer ISO (Autounattend.xml + drivers) with pycdlib. Measured here, medians over ``--runs``:

(1) winarm prepare on a 1 GiB and a 5 GiB Windows-shaped ISO (sparse UDF bridges from ``build_bridge_iso``, built
    once per bench run) with the placeholder virtio-win tree: cold (a fresh storage directory: inspect, plan,
    build the answer ISO) and a cache hit (the same inputs again), in-process (host probe, load_config,
    plan_install, build_answer_medium, as ``winarm prepare`` does) and as a whole command
    (``python -m winarm prepare``), beside the bare interpreter start-up. Targets: cold <= 0.5 s whatever the
    ISO's size, cache hit <= 50 ms.
(2) over ``--slow-runs``, on the same ISOs and with the same answer file and drivers:
    (a) a full remaster: ``7z x`` of the ISO (xorriso reads no UDF, and a Windows ISO's ISO 9660 tree holds only
        README.TXT), the answer files copied in, ``genisoimage -udf`` with an El Torito EFI entry;
    (b) a FAT overlay: ``7z e`` of sources/install.wim, its editions read with wimlib (``wiminfo --xml``), then
        ``mkfs.fat`` + ``mcopy`` of the answer files into a small FAT image.

The fast measurements run first, the slow ones after them, so the gigabytes the slow ones write do not sit in
the page cache's write-back queue while winarm is timed. Nothing is fsynced (launchers do not either), and the
page cache is not dropped (other work shares the machine): "cold" means a fresh storage directory, not a cold
cache. The test ISOs are sparse, so reading their install image costs no disk reads; a real ISO makes the slow
paths slower still, and winarm's reads stay a few hundred KiB. Everything made lives in one temporary directory,
removed at the end, on failure and on SIGTERM. ``--smoke`` is one run of everything on one 64 MiB ISO, which checks
that every median is a positive number. Usage:
    python bench/prepare_bench.py [--runs 5] [--slow-runs 2] [--sizes 1,5] [--skip-slow] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import REPO, BenchError, GiB, MiB, load_line, machine_line, med, run, sane, timed, workspace
from _prepare_others import check_remastered, fat_overlay, gib, probe_notes, remaster, tool_versions

from winarm.answer.medium import build_answer_medium, medium_files
from winarm.answer.plan import InstallPlan, plan_install
from winarm.config import host
from winarm.config.vm import ENV_NAMES, load_config
from winarm_testbed.virtio_tree import make_fake_virtio_tree
from winarm_testbed.wim_image import build_bridge_iso

PYTHON = sys.executable
COLD_TARGET = 0.5
HIT_TARGET = 0.050
TOOLS = ("7z", "xorriso", "genisoimage", "wiminfo", "mkfs.fat", "mcopy")
SMOKE_SIZE = 0.0625
"""The ISO of ``--smoke``, GiB (64 MiB)."""


def clean_env() -> dict[str, str]:
    """The environment without winarm's own variables, so a stray USERNAME or DRIVERS cannot change the inputs."""
    names = {n for group in ENV_NAMES.values() for n in group}
    return {k: v for k, v in os.environ.items() if k not in names}


@dataclass
class Samples:
    """Seconds per measurement name."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.values.setdefault(key, []).append(seconds)

    def med(self, key: str) -> float:
        return med(self.values[key])


@dataclass
class Inputs:
    """What every measurement works on: the test ISOs by size (GiB), the drivers, the answer files as winarm
    puts them on its medium (the remaster and the FAT overlay add the same) and the plan they came from."""

    sizes: list[float]
    isos: dict[float, Path]
    drivers: Path
    answer_tree: Path
    plan: InstallPlan


# ---------------------------------------------------------------------------------------------------- winarm


def inprocess_prepare(iso: Path, drivers: Path, storage: Path, env: dict[str, str]) -> tuple[dict[str, float], bool]:
    """What ``winarm prepare`` does after its imports, timed in parts: seconds by part and whether it built."""
    t0 = time.perf_counter()
    flags = {"iso": str(iso), "drivers": str(drivers), "storage": str(storage), "name": "bench",
             "unattend": True, "disk_size": "64M", "secure_boot": False}  # the placeholder drivers are unsigned
    cfg = load_config(flags, env, host.probe())
    t1 = time.perf_counter()
    plan = plan_install(cfg, {})
    assert plan is not None
    t2 = time.perf_counter()
    cfg.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _, built = build_answer_medium(cfg.state_dir, plan.settings, plan.selection)
    t3 = time.perf_counter()
    return {"config": t1 - t0, "plan": t2 - t1, "build": t3 - t2, "total": t3 - t0}, built


def command_prepare(iso: Path, drivers: Path, storage: Path, env: dict[str, str]) -> tuple[float, bool]:
    """Seconds for ``python -m winarm prepare`` as a whole command, and whether it built."""
    argv = [PYTHON, "-m", "winarm", "prepare", "--iso", str(iso), "--drivers", str(drivers),
            "--storage", str(storage), "--name", "bench", "--no-secure-boot"]
    start = time.perf_counter()
    result = run(argv, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    log = result.stderr.decode(errors="replace")
    if "built" not in log and "cached" not in log:
        raise BenchError(f"winarm prepare said neither built nor cached:\n{log}")
    return elapsed, "cached" not in log


def plan_for(iso: Path, drivers: Path, storage: Path, env: dict[str, str]) -> InstallPlan:
    cfg = load_config({"iso": str(iso), "drivers": str(drivers), "storage": str(storage), "name": "bench",
                       "unattend": True, "disk_size": "64M", "secure_boot": False}, env, host.probe())
    plan = plan_install(cfg, {})
    assert plan is not None
    return plan


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


# ---------------------------------------------------------------------------------------------------- steps


def build_inputs(work: Path, sizes: list[float], env: dict[str, str]) -> Inputs:
    """The sparse test ISOs (built once per bench run), the placeholder drivers and the answer files; printed."""
    efisys = work / "efisys.bin"
    run(["mkfs.fat", "-C", str(efisys), "1440"])  # Microsoft's efisys.bin is a 1.44 MB FAT image too
    isos: dict[float, Path] = {}
    described = []
    for size in sizes:
        iso = work / f"windows-{size:g}g.iso"
        start = time.perf_counter()
        build_bridge_iso(iso, wim_padding=int(size * GiB) - 4 * MiB,
                         extra_files={"efi/microsoft/boot/efisys.bin": efisys}, efi_boot_image=efisys)
        seconds = time.perf_counter() - start
        isos[size] = iso
        described.append(f"{gib(size)} ({iso.stat().st_size / GiB:.2f} GiB apparent, "
                         f"{iso.stat().st_blocks * 512 / MiB:.1f} MiB on disk, built in {seconds:.1f} s)")
    print(f"test ISOs (sparse UDF bridges, 2 editions): {', '.join(described)}", flush=True)
    drivers = make_fake_virtio_tree(work / "virtio-win")
    driver_files = [f for f in drivers.rglob("*") if f.is_file()]
    plan = plan_for(isos[sizes[0]], drivers, work / "plan-storage", env)
    answer_tree = work / "answer-files"
    files = medium_files(plan.settings, plan.selection)
    for item in files:
        target = answer_tree / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.read())
    payload = sum(len(item.read()) for item in files)
    picked = [p.driver.name for p in (*plan.selection.boot_critical, *plan.selection.others)]
    print(f"drivers: placeholder virtio-win tree, {len(driver_files)} files, "
          f"{sum(f.stat().st_size for f in driver_files) / MiB:.1f} MiB; picked {', '.join(picked)}; "
          f"answer medium content: {len(files)} files, {payload / 1024:.0f} KiB", flush=True)
    return Inputs(sizes, isos, drivers, answer_tree, plan)


def measure_inprocess(inputs: Inputs, size: float, storage: Path, fast: Samples) -> None:
    """A cold in-process prepare and a cache hit on the same storage, timed in parts."""
    env = clean_env()
    for kind, want_built in (("cold", True), ("hit", False)):
        parts, built = inprocess_prepare(inputs.isos[size], inputs.drivers, storage, env)
        if built != want_built:
            raise BenchError(f"an in-process prepare ({kind}) {'found a cached medium' if want_built else 'built'}")
        for part, seconds in parts.items():
            fast.add(f"{kind}-{part}-{size}", seconds)
    shutil.rmtree(storage)


def measure_command(inputs: Inputs, size: float, storage: Path, fast: Samples) -> None:
    """``python -m winarm prepare`` cold, then again as a cache hit."""
    env = clean_env()
    for kind, want_built in (("cmd-cold", True), ("cmd-hit", False)):
        seconds, built = command_prepare(inputs.isos[size], inputs.drivers, storage, env)
        if built != want_built:
            raise BenchError(f"a winarm prepare command ({kind}) {'found a cached medium' if want_built else 'built'}")
        fast.add(f"{kind}-{size}", seconds)
    shutil.rmtree(storage)


def measure_fast(inputs: Inputs, work: Path, runs: int) -> Samples:
    """(1): winarm in-process and as a command, alternating sizes and ways; and the interpreter's start-up."""
    env = clean_env()
    # warm-up, not counted: the first in-process call imports pycdlib and the rest
    inprocess_prepare(inputs.isos[inputs.sizes[0]], inputs.drivers, work / "warm", env)
    shutil.rmtree(work / "warm")
    fast = Samples()
    for index in range(runs):
        for size in inputs.sizes:
            measure_inprocess(inputs, size, work / f"s{size:g}-{index}", fast)
            measure_command(inputs, size, work / f"c{size:g}-{index}", fast)
        fast.add("python", timed(lambda: run([PYTHON, "-c", "pass"], env=env))[0])
        fast.add("cli", timed(lambda: run([PYTHON, "-m", "winarm", "--version"], env=env, cwd=REPO))[0])
    return fast


def measure_slow(inputs: Inputs, work: Path, runs: int, notes: list[str]) -> Samples:
    """(2): the remaster and the FAT overlay, alternating sizes; notes on the first rebuilt ISOs added."""
    slow = Samples()
    for index in range(runs):
        for size in inputs.sizes:
            scratch = work / f"remaster-{size:g}-{index}"
            scratch.mkdir()
            for step, seconds in remaster(inputs.isos[size], inputs.answer_tree, scratch).items():
                slow.add(f"remaster-{step}-{size}", seconds)
            if index == 0:
                notes.append(check_remastered(scratch / "remastered.iso", size))
            shutil.rmtree(scratch)
            scratch = work / f"fat-{size:g}-{index}"
            scratch.mkdir()
            steps, editions = fat_overlay(inputs.isos[size], inputs.answer_tree, scratch)
            if editions != [e.name for e in inputs.plan.info.editions]:
                raise BenchError(f"wimlib read editions {editions}, winarm {inputs.plan.info.editions}")
            for step, seconds in steps.items():
                slow.add(f"fat-{step}-{size}", seconds)
            shutil.rmtree(scratch)
    return slow


# ---------------------------------------------------------------------------------------------------- tables


def heads(sizes: list[float]) -> str:
    ratio_head = f"{f'{sizes[-1]:g}/{sizes[0]:g}':>9}" if len(sizes) > 1 else ""
    return "".join(f"{gib(s):>11}" for s in sizes) + ratio_head


def row(label: str, values: list[float], *, fmt: str = "{:>11.1f}", tail: str = "") -> None:
    """One table row: a value per ISO size, the last-to-first ratio when there are several, then ``tail``."""
    ratio = f"{values[-1] / values[0]:>8.2f}x" if len(values) > 1 and values[0] else ""
    print(f"    {label:<48}" + "".join(fmt.format(v) for v in values) + ratio + tail)


def print_fast(fast: Samples, sizes: list[float], runs: int) -> None:
    print()
    print(f"{f'(1) winarm prepare, medians of {runs}, ms':<52}{heads(sizes)}   target")
    for label, key, target in (
            ("in-process cold: config + inspect/plan + build", "cold-total", "<= 500, same for any size"),
            ("  host probe + load_config", "cold-config", ""),
            ("  plan_install (ISO inspect, drivers, settings)", "cold-plan", ""),
            ("  build_answer_medium (pycdlib write)", "cold-build", ""),
            ("in-process cache hit", "hit-total", "<= 50"),
            ("  plan_install (ISO inspect, drivers, settings)", "hit-plan", ""),
            ("  build_answer_medium (hash inputs, file exists)", "hit-build", ""),
            ("whole command cold: python -m winarm prepare", "cmd-cold", ""),
            ("whole command cache hit", "cmd-hit", "")):
        row(label, [fast.med(f"{key}-{s}") * 1000 for s in sizes], tail=f"   {target}" if target else "")
    python_ms, cli_ms = fast.med("python") * 1000, fast.med("cli") * 1000
    print(f"    {'interpreter start-up: python -c pass':<48}{python_ms:>11.1f}")
    print(f"    {'start-up + winarm CLI import: -m winarm --version':<48}{cli_ms:>11.1f}")
    for size in sizes:
        extra = (fast.med(f"cmd-cold-{size}") - fast.med(f"cold-total-{size}")) * 1000
        print(f"    whole command minus in-process, cold, {gib(size)}: {extra:.1f} ms "
              f"(interpreter {python_ms:.1f} ms, CLI import {cli_ms - python_ms:.1f} ms, rest "
              f"{extra - cli_ms:.1f} ms: the imports prepare makes on first use, the output)")


def print_slow(slow: Samples, fast: Samples, sizes: list[float], runs: int, notes: list[str]) -> None:
    print()
    title = f"(2) the other launchers' ways, medians of {runs}, s"
    print(f"{title:<52}{heads(sizes)}   x winarm cold ({', '.join(gib(s) for s in sizes)})")
    for label, key, against in (
            ("(a) remaster: 7z x + copy + genisoimage -udf", "remaster-total", True),
            ("  7z x (whole ISO, UDF)", "remaster-extract", False),
            ("  copy the answer files into the tree", "remaster-add", False),
            ("  genisoimage -udf -e efisys.bin", "remaster-rebuild", False),
            ("(b) FAT overlay: 7z e + wiminfo + mkfs.fat/mcopy", "fat-total", True),
            ("  7z e sources/install.wim", "fat-extract", False),
            ("  wiminfo --xml (editions)", "fat-wiminfo", False),
            ("  mkfs.fat + mcopy -s", "fat-fat", False)):
        values = [slow.med(f"{key}-{s}") for s in sizes]
        times = "   " + ", ".join(f"{v / fast.med(f'cold-total-{s}'):.0f}x" for v, s in
                                  zip(values, sizes, strict=True)) if against else ""
        row(label, values, fmt="{:>11.2f}", tail=times)
    for note in notes:
        print(f"    note: {note}")


def print_verdicts(fast: Samples, sizes: list[float]) -> None:
    print()
    colds = [fast.med(f"cold-total-{s}") for s in sizes]
    hits = [fast.med(f"hit-total-{s}") for s in sizes]
    spread = f", {sizes[-1]:g}/{sizes[0]:g} GiB ratio {colds[-1] / colds[0]:.2f}x" if len(sizes) > 1 else ""
    print(f"cold prepare: {', '.join(f'{ms(c)} ms at {gib(s)}' for c, s in zip(colds, sizes, strict=True))}"
          f"{spread}: target <= 500 ms, {verdict(max(colds) <= COLD_TARGET)}")
    print(f"cache hit: {', '.join(f'{ms(h)} ms at {gib(s)}' for h, s in zip(hits, sizes, strict=True))}: "
          f"target <= 50 ms, {verdict(max(hits) <= HIT_TARGET)}")
    print(f"{load_line()} at the end ({os.cpu_count()} CPUs; other work may share them)")


def check_sane(fast: Samples, slow: Samples | None) -> None:
    """Every median is a positive number (``--smoke``). Raises BenchError."""
    for samples in (fast, slow) if slow is not None else (fast,):
        for key in samples.values:
            sane(key, samples.med(key))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of winarm's measurements [5]")
    parser.add_argument("--slow-runs", type=int, default=2, help="runs of the remaster and the FAT overlay [2]")
    parser.add_argument("--sizes", default="1,5", help="ISO sizes in GiB, comma-separated [1,5]")
    parser.add_argument("--skip-slow", action="store_true", help="measure winarm only")
    parser.add_argument("--smoke", action="store_true", help="one run of everything on a 64 MiB ISO, checked")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.slow_runs, args.sizes = 1, 1, str(SMOKE_SIZE)
    if args.runs < 1 or args.slow_runs < 1:
        parser.error("--runs and --slow-runs must be at least 1")
    try:
        args.sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: write GiB numbers separated by commas, like 1,5")
    if not args.sizes or min(args.sizes) * GiB <= 8 * MiB:
        parser.error("--sizes: every ISO must be larger than 8 MiB (0.01 GiB)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing and not args.skip_slow:
        parser.error(f"missing tools for the other launchers' ways: {', '.join(missing)} (or pass --skip-slow)")
    return args


def main() -> int:
    args = parse_args()
    print(f"{machine_line()}; {load_line()} at start", flush=True)
    if not args.skip_slow:
        print(f"tools: {tool_versions()}", flush=True)
    with workspace("winarm-prepare-bench-") as work:
        inputs = build_inputs(work, args.sizes, clean_env())
        fast = measure_fast(inputs, work, args.runs)
        slow = None
        if not args.skip_slow:
            notes = probe_notes(work, inputs.isos[args.sizes[0]])
            slow = measure_slow(inputs, work, args.slow_runs, notes)
        print_fast(fast, args.sizes, args.runs)
        if slow is not None:
            print_slow(slow, fast, args.sizes, args.slow_runs, notes)
        print_verdicts(fast, args.sizes)
        if args.smoke:
            check_sane(fast, slow)
    return 0


if __name__ == "__main__":
    sys.exit(main())
