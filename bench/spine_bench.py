#!/usr/bin/env python3
"""Benchmark of the spine, measured side by side in one run, medians over several runs.

(a) launch: from starting ``winarm up`` to QMP reporting ``running``, against bare qemu-system-aarch64 started
    with the same argv (from ``winarm up --dry-run``) and asked over its own QMP socket. Target: winarm's extra
    at most 150 ms.
(b) guest: time to the test guest's last marker (``ready``, after a reboot) with winarm's TCG CPU flags
    against plain ``-cpu max``. Target: at least 3x faster.
(c) memory: winarm's own resident set while the VM runs. Target: at most 60 MB.

Runs alternate between the variants so drift hits both alike. Usage:
    python bench/spine_bench.py [--runs 5] [--guest-runs 3] [--skip-guest]
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from qemu.qmp import QMPClient

WINARM = [sys.executable, "-m", "winarm"]
SMALL = ["--ram", "512M", "--cpus", "1", "--disk-size", "256M", "--no-secure-boot", "--no-tpm"]


def read_until(proc: subprocess.Popen[bytes], fragment: bytes, timeout: float) -> float:
    """Read the child's stdout until a line contains ``fragment``; return the monotonic time it arrived."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if fragment in line:
            return time.monotonic()
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"{fragment!r} never came")


def winarm_launch(storage: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawning ``winarm up`` to its 'running' line, and winarm's RSS (MiB) while running."""
    start = time.monotonic()
    proc = subprocess.Popen([*WINARM, "up", "--name", "b", "--storage", str(storage), *SMALL, "--timeout", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        running = read_until(proc, b"running (tcg)", 60)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # the second one skips the graceful wait: the firmware ignores it
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return running - start, rss


async def _bare_running(argv: list[str], qmp_path: Path) -> float:
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


def guest_boot(storage: Path, env: dict[str, str], iso: Path, cpu_model: str | None, name: str) -> dict[str, float]:
    """One fresh-disk boot of the test guest (install, reboot, ready). Returns seconds per phase, keyed
    ``boot/name``, plus ``ready``: from ``winarm up`` to the guest's ``ready`` marker."""
    shutil.rmtree(storage / name, ignore_errors=True)
    extra = ["--cpu-model", cpu_model] if cpu_model else []
    result = subprocess.run(
        [*WINARM, "up", "--name", name, "--storage", str(storage), "--iso", str(iso), "--ram", "1G", "--cpus", "2",
         "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--stop-at", "ready", "--timeout", "30", *extra],
        capture_output=True, env=env, timeout=1200, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stdout.decode(errors="replace")[-2000:])
    doc = json.loads(subprocess.run([*WINARM, "phases", "--name", name, "--storage", str(storage), "--json"],
                                    capture_output=True, env=env, check=True).stdout)
    out = {f"{p['boot']}/{p['name']}": float(p["duration"]) for p in doc["phases"]}
    out["ready"] = float(next(e["t"] for e in doc["events"] if e["kind"] == "marker" and e["name"] == "ready"))
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--guest-runs", type=int, default=3)
    parser.add_argument("--skip-guest", action="store_true")
    args = parser.parse_args()

    # an installed winarm runs from bytecode (pip compiles it); a source tree under PYTHONDONTWRITEBYTECODE
    # would compile every module at every start, which no user pays
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "winarm"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="winarm-bench-"))
    run_base = Path(tempfile.mkdtemp(prefix="wab-", dir="/tmp"))
    env = {**os.environ, "WINARM_RUN_DIR": str(run_base)}
    try:
        dry = subprocess.run([*WINARM, "up", "--name", "b", "--storage", str(work), *SMALL, "--dry-run"],
                             capture_output=True, text=True, env=env, check=True).stdout.split("\n")
        bare_argv = [a for a in dry if a and a != "-S"]
        qmp_path = run_base / "b" / "qmp.sock"
        winarm_launch(work, env)  # first run creates the disk and the UEFI variables: not counted
        ours, bare, rss = [], [], []
        for _ in range(args.runs):
            seconds, mib = winarm_launch(work, env)
            ours.append(seconds)
            rss.append(mib)
            bare.append(bare_launch(bare_argv, qmp_path))
        extra_ms = (med(ours) - med(bare)) * 1000
        qemu_version = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True,
                                      check=False).stdout.splitlines()[0]
        print(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
              f"{os.uname().machine}, {qemu_version}")
        print(f"(a) launch to QMP 'running', median of {args.runs}: winarm {med(ours) * 1000:.0f} ms, "
              f"bare qemu {med(bare) * 1000:.0f} ms, winarm's extra {extra_ms:.0f} ms (target <= 150 ms)")
        print(f"(c) winarm resident memory while the VM runs: median {med(rss):.1f} MiB, max {max(rss):.1f} MiB "
              "(target <= 60 MB)")
        if not args.skip_guest:
            iso = Path(subprocess.run([*WINARM, "testbed", "build"], capture_output=True, text=True, env=env,
                                      check=True).stdout.strip().splitlines()[-1])
            variants = {"max,pauth-impdef=on (winarm)": None, "max": "max", "neoverse-n1 (info)": "neoverse-n1"}
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for _ in range(args.guest_runs):
                for label, model in variants.items():
                    runs[label].append(guest_boot(work, env, iso, model, "g"))
            keys = [k for k in runs["max"][0] if k != "ready"] + ["ready"]
            print(f"(b) test guest from a fresh disk (install, reboot, ready), medians of {args.guest_runs}, seconds:")
            print(f"    {'phase':<16}" + "".join(f"{label:>30}" for label in variants) + f"{'max / ours':>12}")
            for key in keys:
                values = [med([r.get(key, 0.0) for r in runs[label]]) for label in variants]
                ratio = values[1] / values[0] if values[0] else float("nan")
                print(f"    {key:<16}" + "".join(f"{v:>30.2f}" for v in values) + f"{ratio:>11.2f}x")
            ours_ready = med([r["ready"] for r in runs["max,pauth-impdef=on (winarm)"]])
            plain_ready = med([r["ready"] for r in runs["max"]])
            print(f"    to the last marker: {ours_ready:.1f} s against {plain_ready:.1f} s with plain -cpu max: "
                  f"{plain_ready / ours_ready:.2f}x faster (target >= 3x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run_base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
