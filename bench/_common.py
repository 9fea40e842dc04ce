"""What the bench scripts share: medians, timing, running a tool, the machine line, a running ``winarm up`` read
line by line with a deadline, a work directory removed on every exit, and the smoke modes' sanity check.

The scripts run as ``python bench/x.py`` from the repository root, so this folder is on ``sys.path`` and they
import this module as ``_common``. Importing it also puts the repository root first on ``sys.path``, so a
script measures the tree it lives in even when another winarm is installed.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WINARM = [sys.executable, "-m", "winarm"]
"""The winarm command of this interpreter (run from the repository root, it is this tree's winarm)."""
MiB = 1 << 20
GiB = 1 << 30
T = TypeVar("T")


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (a step failed, a figure is not sane)."""


def med(values: Sequence[float]) -> float:
    """The median of ``values``. Raises :class:`BenchError` when there are none."""
    if not values:
        raise BenchError("no values to take the median of")
    return float(statistics.median(values))


def timed(func: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``func()`` took (perf_counter) and what it returned."""
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def sane(label: str, value: float) -> float:
    """``value`` when it is a finite positive number, as every measured time or rate must be. Raises
    :class:`BenchError` naming ``label`` otherwise (the smoke modes call it on every figure they print)."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise BenchError(f"{label} is {value!r}, not a positive number: the benchmark measured nothing")
    return value


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run a tool to completion, capturing its output. Raises :class:`BenchError` with its output's tail when it
    exits non-zero."""
    result = subprocess.run(argv, capture_output=True, check=False, **kwargs)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout or b"").decode(errors="replace")[-1500:]
        raise BenchError(f"{argv[0]} exited {result.returncode}: {' '.join(argv)}\n{tail}")
    return result


def winarm_output(*args: str, env: dict[str, str] | None = None) -> str:
    """The last line ``winarm ARGS`` printed on stdout (a path, for ``testbed build``). Raises BenchError."""
    lines = run([*WINARM, *args], env=env, cwd=REPO).stdout.decode(errors="replace").strip().splitlines()
    if not lines:
        raise BenchError(f"winarm {' '.join(args)} printed nothing")
    return lines[-1]


def qemu_version() -> str:
    """QEMU's version line, or "qemu-system-aarch64 missing"."""
    try:
        out = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "qemu-system-aarch64 missing"
    return (out.stdout.splitlines() or ["qemu-system-aarch64: no version"])[0]


def machine_line(*extra: str) -> str:
    """``machine: 2 CPUs, 24 GiB, x86_64, Python 3.11.2`` and ``extra`` parts, for the top of every report."""
    import psutil

    parts = [f"{os.cpu_count()} CPUs", f"{psutil.virtual_memory().total / GiB:.0f} GiB", os.uname().machine,
             f"Python {sys.version.split()[0]}", *extra]
    return "machine: " + ", ".join(parts)


def load_line() -> str:
    """The load averages, which say how busy the (possibly shared) machine was."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


@contextlib.contextmanager
def workspace(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A new directory under /tmp, removed when the block ends (unless ``keep``), on failure and on SIGTERM too:
    SIGTERM is turned into SystemExit while the block runs."""
    def on_term(signum: int, _frame: Any) -> NoReturn:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield work
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


class Up:
    """A ``winarm up ARGS`` whose output (stdout and stderr) is read line by line, each wait with a deadline.

    Use as a context manager: leaving it kills winarm if it still runs and closes the pipe."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*WINARM, "up", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.lines: list[str] = []
        self.arrived: list[float] = []
        """When each line was read (monotonic)."""

    def __enter__(self) -> Up:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

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
        now = time.monotonic()
        self.lines += [line.decode(errors="replace") for line in complete]
        self.arrived += [now] * len(complete)
        return True

    def wait_line(self, fragment: str, timeout: float) -> float:
        """Wait for a line containing ``fragment``; the monotonic time it was read. Raises :class:`BenchError`
        with everything printed when it does not come within ``timeout`` seconds or winarm's output ends."""
        deadline = time.monotonic() + timeout
        while True:
            for line, at in zip(self.lines, self.arrived, strict=True):
                if fragment in line:
                    return at
            if time.monotonic() >= deadline:
                raise BenchError(f"no {fragment!r} within {timeout} s:\n" + "\n".join(self.lines))
            if not self._read(deadline):
                raise BenchError(f"winarm up ended before {fragment!r}:\n" + "\n".join(self.lines))

    def finish(self, timeout: float) -> int:
        """Read to the end of winarm's output and reap it; its exit status. Raises BenchError on a timeout."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            if time.monotonic() >= deadline:
                raise BenchError("winarm up did not exit in time:\n" + "\n".join(self.lines))
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        """Kill winarm if it still runs; close the pipe and the selector (safe to call twice)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
