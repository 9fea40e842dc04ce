#!/usr/bin/env python3
"""Benchmark of repeated starts and stops: does anything accumulate over many up/down cycles of one VM?

Each cycle starts a firmware-only VM (no ISO: QEMU under TCG sits in the AAVMF firmware) with a shared folder
through ``winarm up``, waits for ``running (tcg)`` and ``share: healthy`` (the health check has run, so its
imports count in the daemon's memory), reads the daemon's resident set and open file descriptors, then stops
it with ``winarm down`` (``--timeout 1``: the firmware ignores the power button, QEMU is told to quit after
1 s) and waits for ``winarm up`` to exit. After each cycle it records:

- fds: file descriptors open in this bench process;
- children: live (non-zombie) descendant processes of this bench process (should be 0);
- run entries: entries under the run-directory base (should be 0: the run dir is removed at stop);
- storage entries: files and directories below the VM's state directory, except the event-log history;
- history logs: the earlier starts' event logs in ``history/`` (one more per start until the cap of
  ``winarm.vm.launch.HISTORY_KEEP``, then the same);
- logs KiB: the size of the state directory's logs, ``*.log`` and ``*.log.1`` (each start moves qemu.log,
  serial.log and swtpm.log to ``*.log.1``, so this start's logs and the previous start's are kept);
- daemon MiB / daemon fds: the ``winarm up`` process's RSS and open fds while running;
- seconds: the whole cycle, from spawning ``winarm up`` to its exit.

Then first / median / last of each, and whether it stayed flat: counts the same in every cycle from the second
on (the first start creates the disk, UEFI variables and logs; the second the history directory), descendants
and run entries 0 throughout, the history one log more per start up to its cap, the daemon's RSS in the last
cycle within 10 % of the median of the first five; log growth and time are only reported. Exit status 1 when
something grew. ``--smoke`` runs 3 cycles and checks that the times and the daemon's memory are positive
numbers. Run as root (smbd acts as the share's owner). Usage:
    .venv/bin/python bench/cycles_bench.py [--cycles 50] [--quiet] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from _common import WINARM, BenchError, Up, machine_line, med, qemu_version, sane, workspace

from winarm.vm.launch import HISTORY_KEEP

FIRMWARE_ONLY = ["--ram", "256M", "--cpus", "1", "--disk-size", "64M", "--no-tpm", "--no-secure-boot",
                 "--timeout", "1"]
NAME = "cyc"
COLUMNS = [  # key, heading, format, how it must stay flat
    ("fds", "fds", "{:.0f}", "equal"),
    ("children", "children", "{:.0f}", "zero"),
    ("run_entries", "run entries", "{:.0f}", "zero"),
    ("storage_entries", "storage entries", "{:.0f}", "equal"),
    ("history", "history logs", "{:.0f}", "capped"),
    ("logs_kib", "logs KiB", "{:.1f}", "growth"),
    ("daemon_mib", "daemon MiB", "{:.1f}", "within10"),
    ("daemon_fds", "daemon fds", "{:.0f}", "equal"),
    ("seconds", "seconds", "{:.2f}", "info"),
]


def live_descendants(me: psutil.Process) -> int:
    count = 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            count += child.status() != psutil.STATUS_ZOMBIE
    return count


def cycle(storage: Path, run_base: Path, env: dict[str, str], folder: Path, me: psutil.Process) -> dict[str, float]:
    start = time.monotonic()
    with Up(["--name", NAME, "--storage", str(storage), *FIRMWARE_ONLY, "--shared", str(folder)], env) as vm:
        vm.wait_line("running (tcg)", 90)
        vm.wait_line("share: healthy", 90)
        daemon = psutil.Process(vm.proc.pid)
        daemon_mib = daemon.memory_info().rss / 2**20
        daemon_fds = daemon.num_fds()
        down = subprocess.run([*WINARM, "down", "--name", NAME, "--storage", str(storage)], capture_output=True,
                              text=True, env=env, timeout=60, check=False)
        if down.returncode != 0:
            raise BenchError(f"winarm down failed ({down.returncode}): {down.stdout}{down.stderr}")
        code = vm.finish(60)
        if code != 0:
            raise BenchError(f"winarm up exited {code}:\n" + "\n".join(vm.lines))
    seconds = time.monotonic() - start
    state_dir = storage / NAME
    history = [p for p in (state_dir / "history").glob("*") if p.is_file()]
    entries = [p for p in state_dir.rglob("*") if p not in history]
    return {
        "fds": me.num_fds(),
        "children": live_descendants(me),
        "run_entries": len(list(run_base.iterdir())),
        "storage_entries": len(entries),
        "history": len(history),
        "logs_kib": sum(p.stat().st_size for p in [*state_dir.glob("*.log"), *state_dir.glob("*.log.1")]) / 1024,
        "daemon_mib": daemon_mib,
        "daemon_fds": daemon_fds,
        "seconds": seconds,
    }


def _zero(values: list[float]) -> str:
    return "flat (0 every cycle)" if not any(values) else f"NOT FLAT (max {max(values):g})"


def _equal(values: list[float]) -> str:
    steady = values[1:]
    return "flat from cycle 2" if len(set(steady)) == 1 else f"NOT FLAT ({min(steady):g}..{max(steady):g})"


def _capped(values: list[float]) -> str:
    expected = [min(index, HISTORY_KEEP) for index in range(len(values))]
    if values != expected:
        return f"NOT AS EXPECTED (min(cycle - 1, {HISTORY_KEEP}) expected)"
    if max(values) == HISTORY_KEEP:
        return f"one more per start, capped at {HISTORY_KEEP}"
    return f"one more per start (cap {HISTORY_KEEP} not reached)"


def _within10(values: list[float]) -> str:
    base = med(values[:5])
    change = (values[-1] - base) / base * 100
    return f"{'flat' if change <= 10 else 'GROWS'} (last {change:+.1f} % against the median of the first 5)"


def _growth(values: list[float]) -> str:
    steady = values[1:]  # from the second start on, a previous start's logs are kept beside this start's
    per_cycle = (steady[-1] - steady[0]) / max(len(steady) - 1, 1)
    return (f"{per_cycle:+.2f} KiB per cycle from cycle 2 (each start moves the logs to *.log.1: this start's "
            "and the previous start's are kept)")


def _info(values: list[float]) -> str:
    half = len(values) // 2
    return f"(median of the second half {med(values[half:]) - med(values[:half]):+.3g} against the first)"


RULES = {"zero": _zero, "equal": _equal, "capped": _capped, "within10": _within10, "growth": _growth,
         "info": _info}


def verdict(rule: str, values: list[float]) -> str:
    """Whether a column stayed flat: from the second cycle on (the first start creates files), or as noted."""
    return RULES[rule](values)


def run_cycles(cycles: int, quiet: bool, me: psutil.Process) -> list[dict[str, float]]:
    """Every cycle, printed as it ends unless ``quiet``, in directories removed afterwards."""
    rows: list[dict[str, float]] = []
    with workspace("winarm-cycles-") as work, workspace("wac-") as run_base, \
            workspace("winarm-cycles-share-") as share_root:
        os.chmod(share_root, 0o755)
        folder = share_root / "shared"
        folder.mkdir()
        os.chown(folder, 4321, 4322)
        os.chmod(folder, 0o775)
        # firmware-only VMs on purpose: not refused as "nothing to boot", their UEFI shell not a problem
        env = {**os.environ, "WINARM_RUN_DIR": str(run_base), "WINARM_FIRMWARE_ONLY": "1"}
        if not quiet:
            print(f"{'cycle':>5}" + "".join(f"{heading:>17}" for _, heading, _, _ in COLUMNS))
        for index in range(cycles):
            row = cycle(work, run_base, env, folder, me)
            rows.append(row)
            if not quiet:
                print(f"{index + 1:>5}" + "".join(f"{fmt.format(row[key]):>17}" for key, _, fmt, _ in COLUMNS),
                      flush=True)
    return rows


def print_summary(rows: list[dict[str, float]]) -> bool:
    """First / median / last / min / max and the verdict of every column; whether everything stayed flat."""
    print()
    print(f"summary over {len(rows)} cycles (storage entries leave out the history logs, counted apart: each start "
          f"moves the previous event log there, keeping the newest {HISTORY_KEEP}):")
    print(f"  {'':<16}{'first':>10}{'median':>10}{'last':>10}{'min':>10}{'max':>10}  verdict")
    flat = True
    for key, heading, fmt, rule in COLUMNS:
        values = [row[key] for row in rows]
        text = verdict(rule, values)
        flat = flat and not text.startswith(("NOT", "GROWS"))
        print(f"  {heading:<16}" + "".join(f"{fmt.format(v):>10}" for v in (values[0], med(values), values[-1],
                                                                            min(values), max(values)))
              + f"  {text}")
    total = sum(row["seconds"] for row in rows)
    print(f"  total {total:.0f} s, {total / len(rows):.2f} s per cycle; load average "
          f"{os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} CPUs, possibly shared)")
    print("everything stayed flat" if flat else "SOMETHING GREW: see the verdicts above")
    return flat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--quiet", action="store_true", help="Print only the summary, not every cycle.")
    parser.add_argument("--smoke", action="store_true", help="3 cycles, the figures checked")
    args = parser.parse_args()
    if args.smoke:
        args.cycles = 3
    if args.cycles < 2:
        parser.error("--cycles must be at least 2")
    if os.geteuid() != 0:
        parser.error("run as root: smbd acts as the shared folder's owner")
    me = psutil.Process()
    print(machine_line(qemu_version()))
    print(f"{args.cycles} up/down cycles of a firmware-only VM with a shared folder (--timeout 1); "
          f"bench fds before: {me.num_fds()}", flush=True)
    rows = run_cycles(args.cycles, args.quiet, me)
    for row in rows:
        sane("a cycle's seconds", row["seconds"])
        sane("the daemon's MiB", row["daemon_mib"])
    return 0 if print_summary(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
