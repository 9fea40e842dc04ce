"""The phase log: every event a run records, by kind, appended to a JSON-lines file as it happens.

Every event is a dict ``{"t": seconds since winarm up started, "kind": ..., ...details}``. The kinds are the
members of :class:`EventKind`; on disk (and in ``winarm phases --json``) a kind is its plain string value.
"""

from __future__ import annotations

import json
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from winarm.files import append_some

Event = dict[str, Any]


class EventKind(StrEnum):
    """Every kind of event winarm records. The value is the string written to the log."""

    # launch
    START = "start"
    ANSWER_MEDIUM = "answer-medium"
    DISK_GROWN = "disk-grown"
    SWTPM_STARTED = "swtpm-started"
    SMBD_STARTED = "smbd-started"
    SPAWNED = "spawned"
    # the supervisor taking over
    QMP_READY = "qmp-ready"
    VNC_PASSWORD_SET = "vnc-password-set"
    SMBD_FAILED = "smbd-failed"
    SMBD_READY = "smbd-ready"
    METRICS_STARTED = "metrics-started"
    RUNNING = "running"
    # the share
    SMBD_EXITED = "smbd-exited"
    SMBD_GIVEN_UP = "smbd-given-up"
    SMBD_RESTARTED = "smbd-restarted"
    SHARE_HEALTH = "share-health"
    SHARE_WATCH_FAILED = "share-watch-failed"
    SHARE_READONLY = "share-readonly"
    SHARE_WRITABLE = "share-writable"
    # the console and the install
    FIRMWARE_OUTPUT = "firmware-output"
    BOOT_DEVICE = "boot-device"
    MARKER = "marker"
    MARKER_AGAIN = "marker-again"
    GUEST_EVENT = "guest-event"
    KEY_PRESSED = "key-pressed"
    CD_PROMPT_IGNORED = "cd-prompt-ignored"
    # the firmware (winarm.vm.firmware_watch): a loader Secure Boot refused, the install CD failing to boot, the
    # firmware booting no OS
    BOOT_REFUSED = "boot-refused"
    CD_BOOT_FAILED = "cd-boot-failed"
    NO_BOOT = "no-boot"
    ANSWER_MEDIUM_REMOVED = "answer-medium-removed"
    EVENTS_DROPPED = "events-dropped"
    # the guest channel (reports over the network) and what QEMU sees without the guest
    CHANNEL_READY = "channel-ready"
    REPORT = "report"
    REPORT_REFUSED = "report-refused"
    APPLY_PROGRESS = "apply-progress"
    NIC_UP = "nic-up"
    STALLED = "stalled"
    STALL_ENDED = "stall-ended"
    DESKTOP_READY_MISSING = "desktop-ready-missing"
    SCREENSHOT = "screenshot"
    FACTS_UNSAVED = "facts-unsaved"
    # QMP events
    RESET = "reset"
    SHUTDOWN = "shutdown"
    POWERDOWN = "powerdown"
    STOP = "stop"
    RESUME = "resume"
    GUEST_PANICKED = "guest_panicked"
    # the storage
    STORAGE_FULL = "storage-full"
    STORAGE_RESUMED = "storage-resumed"
    RESUME_FAILED = "resume-failed"
    IO_ERROR = "io-error"
    # the stop
    STOP_REQUESTED = "stop-requested"
    POWERDOWN_REQUESTED = "powerdown-requested"
    QUIT_SENT = "quit-sent"
    KILLED = "killed"
    SWTPM_LOST = "swtpm-lost"
    CRASH = "crash"
    EXIT = "exit"


class EventLog:
    """Appends events to a JSON-lines file, timestamped from a monotonic clock started at construction.

    Each event is written as it is recorded. ``t0`` may be given to count from an earlier moment (the
    process start), so the first phase includes winarm's own start-up. When the file cannot be written (the
    storage is full), events are kept in memory, in order, and written at the next :meth:`record` or
    :meth:`flush` that succeeds: the log is late, never torn or reordered, and the VM is never stopped for it.
    Opening raises OSError.
    """

    def __init__(self, path: Path, *, t0: float | None = None) -> None:
        self.path = path
        self.t0 = time.monotonic() if t0 is None else t0
        self.events: list[Event] = []
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._pending = b""
        self.write_error: OSError | None = None
        """The last write that failed, while events are waiting to be written; None when the file is whole."""

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def record(self, kind: str, *, at: float | None = None, **details: Any) -> Event:
        """Append one event (timestamped now, or ``at``) to memory and to the file; returns it. Never raises
        for a failed write."""
        event: Event = {"t": self.now() if at is None else at, "kind": kind, **details}
        self.events.append(event)
        self._pending += (json.dumps(event, sort_keys=False) + "\n").encode()
        self.flush()
        return event

    def flush(self) -> bool:
        """Write what is waiting; True when the file holds every event. Never raises for a failed write."""
        written, self.write_error = append_some(self._fd, self._pending)
        self._pending = self._pending[written:]
        return self.write_error is None

    def close(self) -> None:
        """A last flush, then the file is closed (idempotent)."""
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


def read_events(path: Path) -> list[Event]:
    """Events from a JSON-lines log; a torn last line (a crash mid-write) is skipped, not fatal. Raises OSError
    when the file cannot be read."""
    events: list[Event] = []
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            text = raw.strip()
            if not text:
                continue
            try:
                item = json.loads(text)
            except ValueError:
                continue
            if isinstance(item, dict):
                events.append(item)
    return events
