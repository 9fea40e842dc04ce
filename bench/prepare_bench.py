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
removed at the end, on failure and on SIGTERM. Usage:
    python bench/prepare_bench.py [--runs 5] [--slow-runs 2] [--sizes 1,5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from winarm.answer.medium import build_answer_medium, medium_files  # noqa: E402
from winarm.answer.plan import InstallPlan, plan_install  # noqa: E402
from winarm.config import host  # noqa: E402
from winarm.config.vm import ENV_NAMES, load_config  # noqa: E402
from winarm_testbed.virtio_tree import make_fake_virtio_tree  # noqa: E402
from winarm_testbed.wim_image import build_bridge_iso  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20
PYTHON = sys.executable
COLD_TARGET = 0.5
HIT_TARGET = 0.050
TOOLS = ("7z", "xorriso", "genisoimage", "wiminfo", "mkfs.fat", "mcopy")


def med(values: list[float]) -> float:
    return statistics.median(values)


def clean_env() -> dict[str, str]:
    """The environment without winarm's own variables, so a stray USERNAME or DRIVERS cannot change the inputs."""
    names = {n for group in ENV_NAMES.values() for n in group}
    return {k: v for k, v in os.environ.items() if k not in names}


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run a tool; raise with its output when it fails."""
    result = subprocess.run(argv, capture_output=True, check=False, **kwargs)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout or b"").decode(errors="replace")[-1500:]
        raise RuntimeError(f"{argv[0]} exited {result.returncode}: {' '.join(argv)}\n{tail}")
    return result


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


@dataclass
class Samples:
    """Seconds per measurement name."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.values.setdefault(key, []).append(seconds)

    def med(self, key: str) -> float:
        return med(self.values[key])

    def has(self, key: str) -> bool:
        return bool(self.values.get(key))


# ---------------------------------------------------------------------------------------------------- winarm


def inprocess_prepare(iso: Path, drivers: Path, storage: Path, env: dict[str, str]) -> tuple[dict[str, float], bool]:
    """What ``winarm prepare`` does after its imports, timed in parts: seconds by part and whether it built."""
    t0 = time.perf_counter()
    flags = {"iso": str(iso), "drivers": str(drivers), "storage": str(storage), "name": "bench",
             "unattend": True, "disk_size": "64M"}
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
            "--storage", str(storage), "--name", "bench"]
    start = time.perf_counter()
    result = run(argv, env=env, cwd=REPO)
    elapsed = time.perf_counter() - start
    log = result.stderr.decode(errors="replace")
    if "built" not in log and "cached" not in log:
        raise RuntimeError(f"winarm prepare said neither built nor cached:\n{log}")
    return elapsed, "cached" not in log


def plan_for(iso: Path, drivers: Path, storage: Path, env: dict[str, str]) -> InstallPlan:
    cfg = load_config({"iso": str(iso), "drivers": str(drivers), "storage": str(storage), "name": "bench",
                       "unattend": True, "disk_size": "64M"}, env, host.probe())
    plan = plan_install(cfg, {})
    assert plan is not None
    return plan


# ---------------------------------------------------------------------------------------------- the others


def remaster(iso: Path, answer_tree: Path, scratch: Path) -> dict[str, float]:
    """Extract the whole ISO (7z reads its UDF tree), add the answer files, rebuild it with genisoimage -udf and
    the EFI El Torito entry Microsoft's media boot from. Seconds by step."""
    tree = scratch / "tree"
    out = scratch / "remastered.iso"
    times: dict[str, float] = {}
    times["extract"], _ = timed(lambda: run(["7z", "x", "-y", "-bd", f"-o{tree}", str(iso)]))
    times["add"], _ = timed(lambda: shutil.copytree(answer_tree, tree, dirs_exist_ok=True))
    (tree / "boot.cat").unlink(missing_ok=True)  # 7z hands out the old boot catalog as a file; genisoimage makes one
    times["rebuild"], _ = timed(lambda: run([
        "genisoimage", "-quiet", "-udf", "-iso-level", "3", "-J", "-joliet-long", "-allow-limited-size",
        "-V", "WINARM_REMASTER", "-e", "efi/microsoft/boot/efisys.bin", "-no-emul-boot",
        "-o", str(out), str(tree)]))
    times["total"] = sum(times.values())
    return times


def wim_editions(wim: Path) -> list[str]:
    """The edition names wimlib reports in the WIM's XML (``wiminfo --xml``: UTF-16 with a byte-order mark)."""
    raw = run(["wiminfo", str(wim), "--xml"]).stdout
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode(errors="replace")
    return re.findall(r"<IMAGE INDEX=\"\d+\">.*?<NAME>(.*?)</NAME>", text, flags=re.S)


def fat_overlay(iso: Path, answer_tree: Path, scratch: Path) -> tuple[dict[str, float], list[str]]:
    """Extract sources/install.wim, read its editions with wimlib, then put the answer files on a new FAT image.
    Seconds by step and the editions found."""
    times: dict[str, float] = {}
    times["extract"], _ = timed(lambda: run(["7z", "e", "-y", "-bd", f"-o{scratch}", str(iso), "sources/install.wim"]))
    times["wiminfo"], editions = timed(lambda: wim_editions(scratch / "install.wim"))
    image = scratch / "answer.img"

    def make_fat() -> None:
        payload = sum(f.stat().st_size for f in answer_tree.rglob("*") if f.is_file())
        kib = max(8 * 1024, (payload * 2 + 4 * MiB) // 1024)
        run(["mkfs.fat", "-C", "-n", "WINARM", str(image), str(kib)])
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
        run(["mcopy", "-s", "-Q", "-i", str(image), *[str(p) for p in sorted(answer_tree.iterdir())], "::/"],
            env=env)

    times["fat"], _ = timed(make_fat)
    times["total"] = sum(times.values())
    return times, editions


# ---------------------------------------------------------------------------------------------------- output


def tool_versions() -> str:
    def first(argv: list[str], pattern: str) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError:
            return "missing"
        found = re.search(pattern, out.stdout + out.stderr)
        return found.group(1) if found else "?"

    probes = [
        ("7-Zip", ["7z"], r"7-Zip (?:\[\d+\] )?([0-9.]+)"),
        ("xorriso", ["xorriso", "-version"], r"xorriso ([0-9.]+)"),
        ("genisoimage", ["genisoimage", "--version"], r"genisoimage ([0-9.]+)"),
        ("wimlib", ["wiminfo", "--version"], r"wimlib ([0-9.]+)"),
        ("mtools", ["mcopy", "--version"], r"mtools\) ([0-9.]+)"),
    ]
    return ", ".join(f"{name} {first(argv, pattern)}" for name, argv, pattern in probes)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> int:  # noqa: C901, PLR0912, PLR0915
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of winarm's measurements [5]")
    parser.add_argument("--slow-runs", type=int, default=2, help="runs of the remaster and the FAT overlay [2]")
    parser.add_argument("--sizes", default="1,5", help="ISO sizes in GiB, comma-separated [1,5]")
    parser.add_argument("--skip-slow", action="store_true", help="measure winarm only")
    args = parser.parse_args()
    if args.runs < 1 or args.slow_runs < 1:
        parser.error("--runs and --slow-runs must be at least 1")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing and not args.skip_slow:
        parser.error(f"missing tools for the other launchers' ways: {', '.join(missing)} (or pass --skip-slow)")

    def on_term(signum: int, _frame: Any) -> NoReturn:
        raise SystemExit(128 + signum)  # so the finally below removes the temporary directory

    signal.signal(signal.SIGTERM, on_term)

    print(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / GiB:.0f} GiB, {os.uname().machine}, "
          f"Python {sys.version.split()[0]}; {load_line()} at start", flush=True)
    if not args.skip_slow:
        print(f"tools: {tool_versions()}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="winarm-prepare-bench-"))
    env = clean_env()
    try:
        # --- inputs, once per bench run
        efisys = work / "efisys.bin"
        run(["mkfs.fat", "-C", str(efisys), "1440"])  # Microsoft's efisys.bin is a 1.44 MB FAT image too
        isos: dict[int, Path] = {}
        build_seconds: dict[int, float] = {}
        for size in sizes:
            iso = work / f"windows-{size}g.iso"
            start = time.perf_counter()
            build_bridge_iso(iso, wim_padding=size * GiB - 4 * MiB,
                             extra_files={"efi/microsoft/boot/efisys.bin": efisys}, efi_boot_image=efisys)
            build_seconds[size] = time.perf_counter() - start
            isos[size] = iso
        drivers = make_fake_virtio_tree(work / "virtio-win")
        driver_files = [f for f in drivers.rglob("*") if f.is_file()]
        described = ", ".join(
            f"{size} GiB ({isos[size].stat().st_size / GiB:.2f} GiB apparent, "
            f"{isos[size].stat().st_blocks * 512 / MiB:.1f} MiB on disk, built in {build_seconds[size]:.1f} s)"
            for size in sizes)
        print(f"test ISOs (sparse UDF bridges, 2 editions): {described}", flush=True)

        # the answer files as winarm puts them on its medium: the remaster and the FAT overlay add the same
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

        # warm-up, not counted: the first in-process call imports pycdlib and the rest
        inprocess_prepare(isos[sizes[0]], drivers, work / "warm", env)
        shutil.rmtree(work / "warm")

        # --- (1) winarm, alternating sizes and ways
        fast = Samples()
        for index in range(args.runs):
            for size in sizes:
                storage = work / f"s{size}-{index}"
                parts, built = inprocess_prepare(isos[size], drivers, storage, env)
                if not built:
                    raise RuntimeError("a cold in-process prepare found a cached medium")
                for part, seconds in parts.items():
                    fast.add(f"cold-{part}-{size}", seconds)
                parts, built = inprocess_prepare(isos[size], drivers, storage, env)
                if built:
                    raise RuntimeError("a repeated in-process prepare built again instead of hitting the cache")
                for part, seconds in parts.items():
                    fast.add(f"hit-{part}-{size}", seconds)
                shutil.rmtree(storage)

                storage = work / f"c{size}-{index}"
                seconds, built = command_prepare(isos[size], drivers, storage, env)
                if not built:
                    raise RuntimeError("a cold winarm prepare command found a cached medium")
                fast.add(f"cmd-cold-{size}", seconds)
                seconds, built = command_prepare(isos[size], drivers, storage, env)
                if built:
                    raise RuntimeError("a repeated winarm prepare command built again")
                fast.add(f"cmd-hit-{size}", seconds)
                shutil.rmtree(storage)
            fast.add("python", timed(lambda: run([PYTHON, "-c", "pass"], env=env))[0])
            fast.add("cli", timed(lambda: run([PYTHON, "-m", "winarm", "--version"], env=env, cwd=REPO))[0])

        # --- (2) the other launchers' ways
        slow = Samples()
        notes: list[str] = []
        if not args.skip_slow:
            probe = work / "xorriso-probe"
            run(["xorriso", "-osirrox", "on", "-indev", str(isos[sizes[0]]), "-extract", "/", str(probe)])
            seen = sorted(str(p.relative_to(probe)) for p in probe.rglob("*") if p.is_file())
            notes.append(f"xorriso -osirrox extracts {len(seen)} file(s) ({', '.join(seen)}) from a UDF bridge: it "
                         "reads ISO 9660/Joliet/Rock Ridge, not UDF, so the remaster extracts with 7z x")
            shutil.rmtree(probe, ignore_errors=True)
            wim_probe = work / "wim-probe"
            wim_probe.mkdir()
            run(["7z", "e", "-y", "-bd", f"-o{wim_probe}", str(isos[sizes[0]]), "sources/install.wim"])
            plain = subprocess.run(["wiminfo", str(wim_probe / "install.wim")], capture_output=True, text=True,
                                   check=False)
            count = re.search(r"Image Count:\s*(\d+)", plain.stdout)
            warning = " ".join(plain.stderr.split()) or "no warning"
            notes.append(f"plain wiminfo on the test WIM: exit {plain.returncode}, Image Count "
                         f"{count.group(1) if count else '?'} ({warning}): the test WIM has a real header and XML "
                         "but no image metadata, so the editions are read from wiminfo --xml (same extraction)")
            shutil.rmtree(wim_probe, ignore_errors=True)

            for index in range(args.slow_runs):
                for size in sizes:
                    scratch = work / f"remaster-{size}-{index}"
                    scratch.mkdir()
                    for step, seconds in remaster(isos[size], answer_tree, scratch).items():
                        slow.add(f"remaster-{step}-{size}", seconds)
                    if index == 0:  # the rebuilt ISO must still be what it claims: editions, answer file
                        out = scratch / "remastered.iso"
                        from winarm.media.iso import inspect_iso

                        info = inspect_iso(out)
                        listing = run(["7z", "l", str(out), "Autounattend.xml"]).stdout.decode(errors="replace")
                        notes.append(f"remastered {size} GiB ISO: {out.stat().st_size / GiB:.2f} GiB, inspect_iso "
                                     f"finds {len(info.editions)} editions, Autounattend.xml "
                                     f"{'present' if 'Autounattend.xml' in listing else 'MISSING'}")
                    shutil.rmtree(scratch)

                    scratch = work / f"fat-{size}-{index}"
                    scratch.mkdir()
                    steps, editions = fat_overlay(isos[size], answer_tree, scratch)
                    if editions != [e.name for e in plan.info.editions]:
                        raise RuntimeError(f"wimlib read editions {editions}, winarm {plan.info.editions}")
                    for step, seconds in steps.items():
                        slow.add(f"fat-{step}-{size}", seconds)
                    shutil.rmtree(scratch)

        # --- the table
        first, last = sizes[0], sizes[-1]
        heads = "".join(f"{f'{s} GiB':>11}" for s in sizes)
        ratio_head = f"{f'{last}/{first}':>9}" if len(sizes) > 1 else ""
        print()
        print(f"{f'(1) winarm prepare, medians of {args.runs}, ms':<52}{heads}{ratio_head}   target")

        def row(label: str, key: str, target: str = "", samples: Samples = fast, scale: float = 1000,  # noqa: PLR0917
                fmt: str = "{:>11.1f}") -> None:
            values = [samples.med(f"{key}-{s}") * scale for s in sizes]
            ratio = f"{values[-1] / values[0]:>8.2f}x" if len(sizes) > 1 and values[0] else ""
            print(f"    {label:<48}" + "".join(fmt.format(v) for v in values) + ratio + (f"   {target}" if target
                                                                                            else ""))

        row("in-process cold: config + inspect/plan + build", "cold-total", "<= 500, same for any size")
        row("  host probe + load_config", "cold-config")
        row("  plan_install (ISO inspect, drivers, settings)", "cold-plan")
        row("  build_answer_medium (pycdlib write)", "cold-build")
        row("in-process cache hit", "hit-total", "<= 50")
        row("  plan_install (ISO inspect, drivers, settings)", "hit-plan")
        row("  build_answer_medium (hash inputs, file exists)", "hit-build")
        row("whole command cold: python -m winarm prepare", "cmd-cold")
        row("whole command cache hit", "cmd-hit")
        python_ms, cli_ms = fast.med("python") * 1000, fast.med("cli") * 1000
        print(f"    {'interpreter start-up: python -c pass':<48}{python_ms:>11.1f}")
        print(f"    {'start-up + winarm CLI import: -m winarm --version':<48}{cli_ms:>11.1f}")
        for size in sizes:
            extra = (fast.med(f"cmd-cold-{size}") - fast.med(f"cold-total-{size}")) * 1000
            print(f"    whole command minus in-process, cold, {size} GiB: {extra:.1f} ms "
                  f"(interpreter {python_ms:.1f} ms, CLI import {cli_ms - python_ms:.1f} ms, rest "
                  f"{extra - cli_ms:.1f} ms: the imports prepare makes on first use, the output)")

        if not args.skip_slow:
            print()
            title = f"(2) the other launchers' ways, medians of {args.slow_runs}, s"
            print(f"{title:<52}{heads}{ratio_head}   x winarm cold ({', '.join(f'{s} GiB' for s in sizes)})")

            def slow_row(label: str, key: str, against: bool = False) -> None:
                values = [slow.med(f"{key}-{s}") for s in sizes]
                ratio = f"{values[-1] / values[0]:>8.2f}x" if len(sizes) > 1 and values[0] else ""
                times = ""
                if against:
                    times = "   " + ", ".join(f"{v / fast.med(f'cold-total-{s}'):.0f}x" for v, s in
                                              zip(values, sizes, strict=True))
                print(f"    {label:<48}" + "".join(f"{v:>11.2f}" for v in values) + ratio + times)

            slow_row("(a) remaster: 7z x + copy + genisoimage -udf", "remaster-total", against=True)
            slow_row("  7z x (whole ISO, UDF)", "remaster-extract")
            slow_row("  copy the answer files into the tree", "remaster-add")
            slow_row("  genisoimage -udf -e efisys.bin", "remaster-rebuild")
            slow_row("(b) FAT overlay: 7z e + wiminfo + mkfs.fat/mcopy", "fat-total", against=True)
            slow_row("  7z e sources/install.wim", "fat-extract")
            slow_row("  wiminfo --xml (editions)", "fat-wiminfo")
            slow_row("  mkfs.fat + mcopy -s", "fat-fat")
            for note in notes:
                print(f"    note: {note}")

        print()
        colds = [fast.med(f"cold-total-{s}") for s in sizes]
        hits = [fast.med(f"hit-total-{s}") for s in sizes]
        spread = f", {last}/{first} GiB ratio {colds[-1] / colds[0]:.2f}x" if len(sizes) > 1 else ""
        print(f"cold prepare: {', '.join(f'{ms(c)} ms at {s} GiB' for c, s in zip(colds, sizes, strict=True))}"
              f"{spread}: target <= 500 ms, {verdict(max(colds) <= COLD_TARGET)}")
        print(f"cache hit: {', '.join(f'{ms(h)} ms at {s} GiB' for h, s in zip(hits, sizes, strict=True))}: "
              f"target <= 50 ms, {verdict(max(hits) <= HIT_TARGET)}")
        print(f"{load_line()} at the end ({os.cpu_count()} CPUs; other work may share them)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
