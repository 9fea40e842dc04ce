#!/usr/bin/env python3
"""The container ENTRYPOINT: ``winarm up`` configured from the environment, run correctly as PID 1.

As PID 1 a process inherits every orphan in the container and gets no default signal handling. So this file
stays a tiny init: it starts ``winarm up`` (with any extra arguments) as its child, forwards SIGTERM, SIGINT
and SIGHUP to it, reaps every child that ends (adopted orphans included), and exits with the daemon's status.
Outside PID 1 it simply becomes ``winarm up``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def daemon_argv() -> list[str]:
    """The command the container runs: ``winarm up`` plus the arguments given to the container."""
    return [sys.executable, "-m", "winarm", "up", *sys.argv[1:]]


def run_as_init(argv: list[str]) -> int:
    """Start ``argv``, forward signals to it, reap every child; return its exit status (128+N on signal N)."""
    child = os.fork()
    if child == 0:  # pragma: no cover - replaced by exec
        for signum in FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        os.execv(argv[0], argv)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def main() -> None:
    argv = daemon_argv()
    if os.getpid() != 1 and not os.environ.get("WINARM_AS_INIT"):
        os.execv(argv[0], argv)
    sys.exit(run_as_init(argv))


if __name__ == "__main__":
    main()
