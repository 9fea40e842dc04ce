#!/usr/bin/env python3
"""Benchmark of the spine, measured side by side in one run, medians over several runs.

(a) launch: from starting ``winarm up`` to QMP reporting ``running``, against bare qemu-system-aarch64 started
    with the same argv (from ``winarm up --dry-run``) and asked over its own QMP socket. Target: winarm's extra
    at most 150 ms.
(b) guest: time to the plain test guest's last marker (``ready``, after a reboot; booted as it is, with
    ``--no-unattend``: it plays no Windows Setup) with winarm's TCG CPU flags against plain ``-cpu max``.
    Target: at least 3x faster.
(c) memory: winarm's own resident set while the VM runs. Target: at most 60 MB.

Runs alternate between the variants so drift hits both alike. ``--smoke`` is one short run of each part (one
launch of each kind, one guest boot with winarm's CPU model and one with plain ``max``), which checks that every
figure printed is a positive number. Usage:
    python bench/spine_bench.py [--runs 5] [--guest-runs 3] [--skip-guest] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, WINARM, BenchError, Up, machine_line, med, qemu_version, sane, winarm_output, workspace

SMALL = ["--ram", "512M", "--cpus", "1", "--disk-size", "256M", "--no-secure-boot", "--no-tpm"]
OURS = "max,pauth-impdef=on (winarm)"
PLAIN = "max"
GUEST_VARIANTS = {OURS: None, PLAIN: "max", "neoverse-n1 (info)": "neoverse-n1"}
"""Label -> ``--cpu-model`` (None: winarm's default)."""


def winarm_launch(storage: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawning ``winarm up`` to its 'running' line, and winarm's RSS (MiB) while running."""
    import psutil

    with Up(["--name", "b", "--storage", str(storage), *SMALL, "--timeout", "1"], env) as vm:
        running = vm.wait_line("running (tcg)", 60)
        rss = psutil.Process(vm.proc.pid).memory_info().rss / 2**20
        vm.proc.send_signal(signal.SIGTERM)
        vm.proc.send_signal(signal.SIGTERM)  # the second one skips the graceful wait: the firmware ignores it
        vm.finish(30)
    return running - vm.started, rss


async def _bare_running(argv: list[str], qmp_path: Path) -> float:
    from qemu.qmp import QMPClient

    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = QMPClient("bench")
    try:
        while True:  # bare QEMU offers nothing better than trying until its socket answers
            try:
                await client.connect(str(qmp_path))
                break
            except Exception:
                await asyncio.sleep(0.002)
        while (await client.execute("query-status"))["status"] != "running":  # type: ignore[index]
            await asyncio.sleep(0.002)
        elapsed = time.monotonic() - start
        await client.execute("quit")
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return elapsed


def bare_launch(argv: list[str], qmp_path: Path) -> float:
    """Seconds from spawning bare QEMU (same argv, not paused) to QMP answering ``running``."""
    qmp_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in qmp_path.parent.glob("*.sock"):
        stale.unlink()
    return asyncio.run(_bare_running(argv, qmp_path))


def guest_boot(storage: Path, env: dict[str, str], iso: Path, cpu_model: str | None) -> dict[str, float]:
    """One fresh-disk boot of the plain test guest (install, reboot, ready). Returns seconds per phase, keyed
    ``boot/name``, plus ``ready``: from ``winarm up`` to the guest's ``ready`` marker. Raises BenchError."""
    name = "g"
    shutil.rmtree(storage / name, ignore_errors=True)
    extra = ["--cpu-model", cpu_model] if cpu_model else []
    result = subprocess.run(
        [*WINARM, "up", "--name", name, "--storage", str(storage), "--iso", str(iso), "--no-unattend",
         "--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--stop-at", "ready",
         "--timeout", "30", *extra],
        capture_output=True, env=env, timeout=1200, check=False)
    if result.returncode != 0:
        raise BenchError(f"winarm up exited {result.returncode}:\n"
                         + (result.stdout + result.stderr).decode(errors="replace")[-2000:])
    doc = json.loads(subprocess.run([*WINARM, "phases", "--name", name, "--storage", str(storage), "--json"],
                                    capture_output=True, env=env, check=True).stdout)
    out = {f"{p['boot']}/{p['name']}": float(p["duration"]) for p in doc["phases"]}
    out["ready"] = float(next(e["t"] for e in doc["events"] if e["kind"] == "marker" and e["name"] == "ready"))
    return out


def launch_part(work: Path, run_base: Path, env: dict[str, str], runs: int) -> None:
    """(a) and (c): winarm's launch against bare QEMU's, alternated, and winarm's RSS; printed."""
    dry = subprocess.run([*WINARM, "up", "--name", "b", "--storage", str(work), *SMALL, "--dry-run"],
                         capture_output=True, text=True, env=env, check=True).stdout.split("\n")
    bare_argv = [a for a in dry if a and a != "-S"]
    qmp_path = run_base / "b" / "qmp.sock"
    winarm_launch(work, env)  # first run creates the disk and the UEFI variables: not counted
    ours, bare, rss = [], [], []
    for _ in range(runs):
        seconds, mib = winarm_launch(work, env)
        ours.append(seconds)
        rss.append(mib)
        bare.append(bare_launch(bare_argv, qmp_path))
    extra_ms = (med(ours) - med(bare)) * 1000
    print(f"(a) launch to QMP 'running', median of {runs}: winarm {sane('winarm launch', med(ours)) * 1000:.0f} ms, "
          f"bare qemu {sane('bare launch', med(bare)) * 1000:.0f} ms, winarm's extra {extra_ms:.0f} ms "
          "(target <= 150 ms)")
    print(f"(c) winarm resident memory while the VM runs: median {sane('RSS', med(rss)):.1f} MiB, "
          f"max {max(rss):.1f} MiB (target <= 60 MB)", flush=True)


def guest_part(work: Path, env: dict[str, str], runs: int, variants: dict[str, str | None]) -> None:
    """(b): the plain guest to its last marker, per CPU model, alternated; a table and the ratio, printed."""
    iso = Path(winarm_output("testbed", "build", "--plain", env=env))
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for _ in range(runs):
        for label, model in variants.items():
            results[label].append(guest_boot(work, env, iso, model))
    keys = [k for k in results[PLAIN][0] if k != "ready"] + ["ready"]
    print(f"(b) plain test guest from a fresh disk (install, reboot, ready), medians of {runs}, seconds:")
    print(f"    {'phase':<16}" + "".join(f"{label:>30}" for label in variants) + f"{'max / ours':>12}")
    for key in keys:
        values = [med([r.get(key, 0.0) for r in results[label]]) for label in variants]
        ratio = values[1] / values[0] if values[0] else float("nan")
        print(f"    {key:<16}" + "".join(f"{v:>30.2f}" for v in values) + f"{ratio:>11.2f}x")
    ours_ready = sane("ready with winarm's CPU model", med([r["ready"] for r in results[OURS]]))
    plain_ready = sane("ready with plain max", med([r["ready"] for r in results[PLAIN]]))
    print(f"    to the last marker: {ours_ready:.1f} s against {plain_ready:.1f} s with plain -cpu max: "
          f"{plain_ready / ours_ready:.2f}x faster (target >= 3x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--guest-runs", type=int, default=3)
    parser.add_argument("--skip-guest", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="one short run of each part, figures checked")
    args = parser.parse_args()
    if args.runs < 1 or args.guest_runs < 1:
        parser.error("--runs and --guest-runs must be at least 1")
    variants = dict(GUEST_VARIANTS)
    if args.smoke:
        args.runs, args.guest_runs = 1, 1
        variants = {OURS: GUEST_VARIANTS[OURS], PLAIN: GUEST_VARIANTS[PLAIN]}

    # an installed winarm runs from bytecode (pip compiles it); a source tree under PYTHONDONTWRITEBYTECODE
    # would compile every module at every start, which no user pays
    compileall.compile_dir(str(REPO / "winarm"), quiet=1)
    with workspace("winarm-bench-") as work, workspace("wab-") as run_base:
        # firmware-only VMs on purpose: not refused as "nothing to boot", their UEFI shell not a problem
        env = {**os.environ, "WINARM_RUN_DIR": str(run_base), "WINARM_FIRMWARE_ONLY": "1"}
        print(machine_line(qemu_version()), flush=True)
        launch_part(work, run_base, env, args.runs)
        if not args.skip_guest:
            guest_part(work, env, args.guest_runs, variants)
    return 0


if __name__ == "__main__":
    sys.exit(main())
