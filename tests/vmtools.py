"""Driving a real ``winarm up`` from tests: start it, wait for the lines it prints, read its phase log."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

WINARM = [sys.executable, "-m", "winarm"]
FIRMWARE_ONLY = ["--ram", "256M", "--cpus", "1", "--disk-size", "64M", "--no-tpm", "--no-secure-boot", "--timeout", "2"]
"""A VM with no ISO: it sits in the firmware, enough to test what winarm does around a running QEMU."""
FIRMWARE_ONLY_ENV = {"WINARM_FIRMWARE_ONLY": "1"}
"""What lets ``winarm up`` start a VM that has nothing to boot (it refuses one otherwise): every :class:`Up` has it."""


def winarm(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a short winarm command to completion and capture its output."""
    return subprocess.run(
        [*WINARM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Up:
    """A ``winarm up`` running in the background, its stdout read line by line as it comes."""

    def __init__(self, storage: Path, run_base: Path, *args: str, name: str = "t",
                 env: dict[str, str] | None = None, uid: int | None = None) -> None:
        """``uid``: run winarm as that user and group (through setpriv, without root's supplementary groups)."""
        self.name = name
        self.storage = storage
        self.env = {**os.environ, "WINARM_RUN_DIR": str(run_base), **FIRMWARE_ONLY_ENV, **(env or {})}
        as_user = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        self.proc = subprocess.Popen(
            [*as_user, *WINARM, "up", "--name", name, "--storage", str(storage), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self.lines: list[str] = []

    def _read(self, until: float) -> bool:
        """Read what is available (waiting at most until ``until``); False at end of output."""
        assert self.proc.stdout is not None
        if not self._selector.select(timeout=max(0.0, until - time.monotonic())):
            return True
        chunk = self.proc.stdout.read()
        if not chunk:
            return False
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines += [line.decode(errors="replace") for line in complete]
        return True

    def wait_line(self, fragment: str, timeout: float) -> str:
        """Block until a printed line contains ``fragment``; fail with everything printed if it never does."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if fragment in line:
                    return line
            seen = len(self.lines)
            if time.monotonic() >= deadline:
                raise AssertionError(f"no line with {fragment!r} within {timeout} s:\n" + "\n".join(self.lines))
            if not self._read(deadline) and fragment not in "".join(self.lines[seen:]):
                raise AssertionError(f"winarm exited before {fragment!r}:\n" + "\n".join(self.lines))

    def wait(self, timeout: float) -> int:
        """Wait for winarm to exit (reading all it prints); returns its status."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            if time.monotonic() >= deadline:
                raise AssertionError("winarm did not exit in time:\n" + "\n".join(self.lines))
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def status(self) -> dict[str, Any]:
        result = winarm("status", "--name", self.name, "--storage", str(self.storage), "--json", env=self.env)
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data

    def events(self) -> list[dict[str, Any]]:
        from winarm.timeline.events import read_events

        return read_events(self.storage / self.name / "events.jsonl")

    def wait_event(self, kind: str, name: str | None, timeout: float) -> dict[str, Any]:
        """The first event of ``kind`` (and ``name``, for markers and guest events) in the phase log, waited for
        as it is written; fails with what winarm printed if it does not come or winarm ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.storage / self.name / "events.jsonl"
            for event in self.events() if log.exists() else []:  # no log yet: winarm is still starting
                if event.get("kind") == kind and (name is None or event.get("name") == name):
                    return event
            if self.proc.poll() is not None:
                break
            self._read(min(deadline, time.monotonic() + 0.5))  # what winarm prints meanwhile, half a second at most
        raise AssertionError(f"no {kind} {name or ''} event within {timeout} s:\n" + "\n".join(self.lines))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        """Kill winarm if it still runs and close the pipe and selector this test process holds for it."""
        self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._selector.close()


def tree_digest(root: Path) -> str:
    """A hash of every path and file content below ``root``: equal before and after means nothing changed."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def family(pid: int) -> list[psutil.Process]:
    """A process and all its descendants, as they are now."""
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def live_names(processes: list[psutil.Process]) -> set[str]:
    """The names of those processes still alive: smbd forks a short-lived child per connection (the health
    check's), which may end between listing and naming."""
    names = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            names.add(process.name())
    return names


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A real small tmpfs at ``where`` (root only), unmounted after."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> None:
    """Write ``folder/filler`` until the file system holding ``folder`` is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\xff" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout: the Dockerfile, compose and Kubernetes files the tests read."""
