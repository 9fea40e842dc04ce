"""One boot of the crash rounds, as this script sees it: the VM's event log read as winarm appends to it (inotify,
no polling), what the boot showed and how far it got, and the processes to kill and reap afterwards."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from winarm.vm.watch import IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_MOVED_TO, Watch

HELPERS = ("qemu-system", "smbd", "swtpm", "notifyd", "cleanupd", "socat")
"""Process names (prefixes) of what winarm starts: QEMU, swtpm, smbd and its helpers, the share relay."""
HANG = 600.0
"""Seconds without the awaited event after which a boot counts as hung (a guard, never a measurement)."""
_PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------------------------------
# The VM's event log, read as winarm appends to it


class EventLog:
    """The VM's phase log (``events.jsonl``) of the run started after this object: each call to :meth:`next`
    returns the events appended since the last one, waiting on inotify (no polling) until there are some."""

    def __init__(self, vm_dir: Path) -> None:
        self.path = vm_dir / "events.jsonl"
        self.watch = Watch(vm_dir, IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO)
        try:
            self._old: int | None = self.path.stat().st_ino  # the last run's log, moved aside by the next run
        except FileNotFoundError:
            self._old = None
        self._inode: int | None = None
        self._offset = 0
        self._rest = b""

    def _read(self) -> list[dict[str, Any]]:
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            return []
        if inode == self._old:
            return []
        if inode != self._inode:
            self._inode, self._offset, self._rest = inode, 0, b""
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        *lines, self._rest = (self._rest + data).split(b"\n")
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    events.append(item)
        return events

    def next(self, timeout: float, also: int) -> list[dict[str, Any]]:
        """New events; an empty list when ``timeout`` seconds passed without any, or the file descriptor
        ALSO (a pidfd: the process ended) became readable first."""
        events = self._read()
        if events:
            return events
        ready, _, _ = select.select([self.watch.fd, also], [], [], max(0.0, timeout))
        if self.watch.fd in ready:
            self.watch.drain()
        return self._read()

    def close(self) -> None:
        self.watch.close()


# --------------------------------------------------------------------------------------------------
# Processes


def become_subreaper() -> None:
    """Adopt orphaned descendants (QEMU when winarm dies first, say), so that they are reaped here, not left
    as zombies under a PID 1 that may not reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_tree(pid: int) -> list[str]:
    """SIGKILL the process PID and all its descendants at once; wait until they are gone. Returns the names
    of the processes killed (read before the kill: a dead process's name is cut at 15 characters)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    names = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            names.append(proc.name())
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)
    reap()
    return names


def reap() -> None:
    """Reap every child that has ended (adopted orphans included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def leftovers(paths: list[Path]) -> list[str]:
    """Live processes of this VM after a kill: winarm's helpers (by name) that are descendants of this
    process or mention one of PATHS on their command line, and any other live descendant."""
    reap()
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or [])
        ours = info["pid"] in mine or any(str(p) in cmdline for p in paths)
        helper = any((info["name"] or "").startswith(h) for h in HELPERS)
        if ours and (helper or info["pid"] in mine):
            found.append(f"{info['name']}[{info['pid']}]")
    return found


# --------------------------------------------------------------------------------------------------
# One boot


@dataclass
class Boot:
    """What one ``winarm up`` showed: events with the time this script saw them (seconds since the start)."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    exit_status: int | None = None

    def seen(self, kind: str, name: str | None = None) -> float | None:
        for at, event in self.events:
            if event.get("kind") == kind and (name is None or event.get("name") == name):
                return at
        return None

    def fsck(self) -> list[str]:
        """The guest's check of this boot: the details of its fsck events ("clean", "errors ...", ...)."""
        return [str(e.get("detail", "")) for _, e in self.events
                if e.get("kind") == "guest-event" and e.get("name") == "fsck"]

    def phase_at(self, moment: float) -> str:
        """How far the boot had got at MOMENT (as this script saw the events): the furthest step in PROGRESS
        (the desktop-ready marker can come through the share after the guest's ``ready`` event)."""
        phase = "launch"
        for at, event in self.events:
            if at > moment:
                break
            label = step_of(event)
            if label is not None and PROGRESS.index(_rank(label)) >= PROGRESS.index(_rank(phase)):
                phase = label
        return phase

    def reached(self, step: str) -> bool:
        """Whether the boot got to STEP (a PROGRESS name) or further."""
        return PROGRESS.index(_rank(self.phase_at(float("inf")))) >= PROGRESS.index(step)


PROGRESS = ["launch", "firmware", "boot-disk", "init", "fsck", "share", "desktop-ready", "ready", "writing",
            "writing-failed", "poweroff"]
"""The steps of a boot from the installed disk, in order. Playing Windows, the test guest's own Linux steps
(init, ready, poweroff) are guest events, not markers; desktop-ready is the marker its Run key reports (over the
guest channel, or through the share's ready file); ready comes once those reports are sent, and the write load
starts right after it."""


def _rank(label: str) -> str:
    return label.split(" ", 1)[0] if label.startswith("fsck") else label if label in PROGRESS else "init"


_GUEST_STEPS = {"init": "init", "share-reconnected": "share", "ready": "ready", "guest-writing": "writing",
                "guest-writing-failed": "writing-failed", "poweroff": "poweroff"}


def step_of(event: dict[str, Any]) -> str | None:
    """The step an event marks ("fsck errors" for the guest's check that found something), or None. A marker is
    the step of its name (desktop-ready; the plain installer's init, ready and poweroff), a guest event of
    _GUEST_STEPS the step named there."""
    kind, name = event.get("kind"), event.get("name")
    if kind == "running":
        return "firmware"
    if kind == "boot-device":
        return f"boot-{event.get('device')}"
    if kind == "marker":
        return str(name)
    if kind != "guest-event":
        return None
    if name == "fsck":
        return f"fsck {str(event.get('detail', '')).split(' ', 1)[0]}"
    return _GUEST_STEPS.get(str(name))


def watch_boot(proc: subprocess.Popen[bytes], log: EventLog, boot: Boot, start: float,
               kill_after: tuple[tuple[str, ...], float] | None) -> float | None:
    """Follow a boot's events until winarm exits or, with KILL_AFTER (steps, seconds), until that many seconds
    after the first event of one of those steps (see step_of: "firmware" for QEMU running, "writing" for
    guest-writing) was seen; returns that moment (None when winarm exited first). A boot with no event for HANG
    seconds raises RuntimeError (the caller kills it). It may be called again on the same LOG and BOOT to follow
    the rest of the boot."""
    kill_at: float | None = None
    idle_until = time.monotonic() + HANG
    pidfd = os.pidfd_open(proc.pid)
    try:
        while True:
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                return now - start
            if now >= idle_until:
                raise RuntimeError(f"the boot made no progress for {HANG:.0f} s: {boot.events[-3:]}")
            ended = proc.poll() is not None
            events = log.next(0.0 if ended else (kill_at or idle_until) - now, pidfd)
            seen = time.monotonic() - start
            for event in events:
                boot.events.append((seen, event))
                idle_until = time.monotonic() + HANG
                if kill_after is not None and kill_at is None and step_of(event) in kill_after[0]:
                    kill_at = start + seen + kill_after[1]
            if not events and ended:
                boot.exit_status = proc.returncode
                return None
    finally:
        os.close(pidfd)
