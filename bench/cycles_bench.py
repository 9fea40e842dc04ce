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
- logs KiB: the size of the state directory's ``*.log`` (qemu.log and serial.log are appended to at each start);
- daemon MiB / daemon fds: the ``winarm up`` process's RSS and open fds while running;
- seconds: the whole cycle, from spawning ``winarm up`` to its exit.

Then first / median / last of each, and whether it stayed flat: counts the same in every cycle from the second
on (the first start creates the disk, UEFI variables and logs; the second the history directory), descendants
and run entries 0 throughout, the history one log more per start up to its cap, the daemon's RSS in the last
cycle within 10 % of the median of the first five; log growth and time are only reported. Exit status 1 when
something grew. Run as root (smbd acts as the share's owner). Usage:
    .venv/bin/python bench/cycles_bench.py [--cycles 50] [--quiet]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from winarm.vm.launch import HISTORY_KEEP  # noqa: E402

WINARM = [sys.executable, "-m", "winarm"]
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


class Up:
    """One ``winarm up`` whose output is read line by line; closes its pipe when done."""

    def __init__(self, storage: Path, env: dict[str, str], folder: Path) -> None:
        self.proc = subprocess.Popen(
            [*WINARM, "up", "--name", NAME, "--storage", str(storage), *FIRMWARE_ONLY, "--shared", str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert self.proc.stdout is not None
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.lines: list[str] = []

    def _read(self, deadline: float) -> bool:
        """Take in what winarm printed, waiting at most until ``deadline``; False once its output has ended."""
        assert self.proc.stdout is not None
        if not self.selector.select(max(0.0, deadline - time.monotonic())):
            return True
        chunk = self.proc.stdout.read()
        if chunk == b"":
            return False
        self.buffer += chunk or b""
        *complete, self.buffer = self.buffer.split(b"\n")
        self.lines += [line.decode(errors="replace") for line in complete]
        return True

    def wait_line(self, fragment: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(fragment in line for line in self.lines):
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no {fragment!r} within {timeout} s:\n" + "\n".join(self.lines))
            if not self._read(deadline):
                raise RuntimeError(f"winarm up ended before {fragment!r}:\n" + "\n".join(self.lines))

    def finish(self, timeout: float) -> int:
        """Read to the end of winarm's output and reap it; its exit status."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            if time.monotonic() >= deadline:
                raise RuntimeError("winarm up did not exit in time:\n" + "\n".join(self.lines))
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        """Kill winarm if it still runs; close the pipe and the selector (safe to call twice)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def live_descendants(me: psutil.Process) -> int:
    count = 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            count += child.status() != psutil.STATUS_ZOMBIE
    return count


def cycle(storage: Path, run_base: Path, env: dict[str, str], folder: Path, me: psutil.Process) -> dict[str, float]:
    start = time.monotonic()
    vm = Up(storage, env, folder)
    try:
        vm.wait_line("running (tcg)", 90)
        vm.wait_line("share: healthy", 90)
        daemon = psutil.Process(vm.proc.pid)
        daemon_mib = daemon.memory_info().rss / 2**20
        daemon_fds = daemon.num_fds()
        down = subprocess.run([*WINARM, "down", "--name", NAME, "--storage", str(storage)], capture_output=True,
                              text=True, env=env, timeout=60, check=False)
        if down.returncode != 0:
            raise RuntimeError(f"winarm down failed ({down.returncode}): {down.stdout}{down.stderr}")
        code = vm.finish(60)
        if code != 0:
            raise RuntimeError(f"winarm up exited {code}:\n" + "\n".join(vm.lines))
    finally:
        vm.close()
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
        "logs_kib": sum(p.stat().st_size for p in state_dir.glob("*.log")) / 1024,
        "daemon_mib": daemon_mib,
        "daemon_fds": daemon_fds,
        "seconds": seconds,
    }


def verdict(rule: str, values: list[float]) -> str:  # noqa: PLR0911
    """Whether a column stayed flat: from the second cycle on (the first start creates files), or as noted."""
    steady = values[1:]
    if rule == "zero":
        return "flat (0 every cycle)" if not any(values) else f"NOT FLAT (max {max(values):g})"
    if rule == "equal":
        return "flat from cycle 2" if len(set(steady)) == 1 else f"NOT FLAT ({min(steady):g}..{max(steady):g})"
    if rule == "capped":
        expected = [min(index, HISTORY_KEEP) for index in range(len(values))]
        if values == expected:
            return (f"one more per start, capped at {HISTORY_KEEP}" if max(values) == HISTORY_KEEP
                    else f"one more per start (cap {HISTORY_KEEP} not reached)")
        return f"NOT AS EXPECTED (min(cycle - 1, {HISTORY_KEEP}) expected)"
    if rule == "within10":
        base = statistics.median(values[:5])
        change = (values[-1] - base) / base * 100
        return f"{'flat' if change <= 10 else 'GROWS'} (last {change:+.1f} % against the median of the first 5)"
    if rule == "growth":
        per_cycle = (values[-1] - values[0]) / (len(values) - 1)
        return f"grows {per_cycle:.2f} KiB per cycle (qemu.log, serial.log: appended at each start, never rotated)"
    half = len(values) // 2
    return f"(median of the second half {statistics.median(values[half:]) - statistics.median(values[:half]):+.3g} " \
        "against the first)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--quiet", action="store_true", help="Print only the summary, not every cycle.")
    args = parser.parse_args()
    if args.cycles < 2:
        parser.error("--cycles must be at least 2")
    if os.geteuid() != 0:
        parser.error("run as root: smbd acts as the shared folder's owner")

    work = Path(tempfile.mkdtemp(prefix="winarm-cycles-"))
    run_base = Path(tempfile.mkdtemp(prefix="wac-", dir="/tmp"))
    share_root = Path(tempfile.mkdtemp(prefix="winarm-cycles-share-", dir="/tmp"))
    os.chmod(share_root, 0o755)
    folder = share_root / "shared"
    folder.mkdir()
    os.chown(folder, 4321, 4322)
    os.chmod(folder, 0o775)
    env = {**os.environ, "WINARM_RUN_DIR": str(run_base)}
    me = psutil.Process()
    rows: list[dict[str, float]] = []
    try:
        qemu_version = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True,
                                      check=False).stdout.splitlines()[0]
        print(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
              f"{os.uname().machine}, {qemu_version}")
        print(f"{args.cycles} up/down cycles of a firmware-only VM with a shared folder (--timeout 1); "
              f"bench fds before: {me.num_fds()}", flush=True)
        header = f"{'cycle':>5}" + "".join(f"{heading:>17}" for _, heading, _, _ in COLUMNS)
        if not args.quiet:
            print(header)
        for index in range(args.cycles):
            row = cycle(work, run_base, env, folder, me)
            rows.append(row)
            if not args.quiet:
                print(f"{index + 1:>5}" + "".join(f"{fmt.format(row[key]):>17}" for key, _, fmt, _ in COLUMNS),
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run_base, ignore_errors=True)
        shutil.rmtree(share_root, ignore_errors=True)

    print()
    print(f"summary over {len(rows)} cycles (storage entries leave out the history logs, counted apart: each start "
          f"moves the previous event log there, keeping the newest {HISTORY_KEEP}):")
    print(f"  {'':<16}{'first':>10}{'median':>10}{'last':>10}{'min':>10}{'max':>10}  verdict")
    flat = True
    for key, heading, fmt, rule in COLUMNS:
        values = [row[key] for row in rows]
        text = verdict(rule, values)
        flat = flat and not text.startswith(("NOT", "GROWS"))
        print(f"  {heading:<16}" + "".join(f"{fmt.format(v):>10}" for v in (values[0], statistics.median(values),
                                                                            values[-1], min(values), max(values)))
              + f"  {text}")
    total = sum(row["seconds"] for row in rows)
    print(f"  total {total:.0f} s, {total / len(rows):.2f} s per cycle; load average "
          f"{os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} CPUs, possibly shared)")
    print("everything stayed flat" if flat else "SOMETHING GREW: see the verdicts above")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
