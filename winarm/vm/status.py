"""A VM's status: what the daemon answers on its control socket, ``winarm status`` prints, and metrics read.

One typed record travels the whole way: the supervisor builds it, the control server sends it as one JSON
object, the client reads it back (a VM with no daemon answering is reported ``stopped``), and the lines
``winarm status`` prints are written here from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

STOPPED_KEYS = ("name", "state", "healthy", "daemon_pid", "qemu_pid", "run_dir", "state_dir")
"""The keys of a VM no daemon answers for; a live daemon reports every field."""


@dataclass(frozen=True)
class VmStatus:
    """One VM's status; the field order is the order of ``winarm status --json``."""

    name: str
    state: str
    paused: str | None = None
    """``storage full`` while the VM waits for room, else None."""
    log_behind: bool = False
    healthy: bool = False
    problem: str | None = None
    """Why the VM is unhealthy when the firmware booted no OS or Secure Boot refused a loader (one line), else
    None."""
    daemon_pid: int | None = None
    qemu_pid: int | None = None
    run_dir: str = ""
    state_dir: str = ""
    accel: str | None = None
    tpm: bool = False
    share: dict[str, Any] | None = None
    vnc: str | None = None
    vnc_password: bool = False
    phase: str | None = None
    phase_source: str | None = None
    """Who named the phase under way: ``boot-order`` (inferred), ``guest``, ``share``, ``serial`` or None."""
    progress: dict[str, Any] | None = None
    """The phase's progress where it is known (the image apply: ``percent``, ``line``...)."""
    activity: dict[str, Any] | None = None
    """The last minute: disk and install-medium bytes, network driver, CPU (see :mod:`winarm.vm.traffic`)."""
    reports: dict[str, Any] | None = None
    """The guest channel: reports accepted and refused, the last one's name; None when the channel is off."""
    stall: dict[str, Any] | None = None
    """The stall watch (see :mod:`winarm.vm.stall`): ``stalled``, since when, the last activity."""
    uptime: float | None = None

    @property
    def live(self) -> bool:
        """Whether a daemon answered (a stopped VM has none)."""
        return self.daemon_pid is not None

    def as_json(self) -> dict[str, Any]:
        """The JSON object: every field from a live daemon, the :data:`STOPPED_KEYS` for a stopped VM."""
        data = asdict(self)
        return data if self.live else {key: data[key] for key in STOPPED_KEYS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VmStatus:
        """Read a daemon's answer; unknown keys are ignored, missing ones take their defaults. Raises
        KeyError without ``name`` or ``state``."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def status_lines(reports: list[VmStatus], *, as_json: bool) -> Iterator[str]:
    """What ``winarm status`` prints for ``reports``: one JSON document (a list for several VMs), or for each VM
    a line, then its shares and the share's health."""
    if as_json:
        documents = [r.as_json() for r in reports]
        yield json.dumps(documents[0] if len(documents) == 1 else documents, indent=2)
        return
    for report in reports:
        line = f"{report.name}: {report.state}"
        if report.qemu_pid:
            line += (
                f", healthy={'yes' if report.healthy else 'no'}, qemu pid {report.qemu_pid}, "
                f"phase {report.phase or '-'}, vnc {report.vnc or '-'}, run dir {report.run_dir}"
            )
        yield line
        if report.problem:
            yield f"  PROBLEM: {report.problem}"
        yield from _activity_lines(report)
        if isinstance(report.share, dict):
            yield from _share_lines(report.share)


def _megabytes(value: Any) -> str:
    return f"{int(value or 0) / 1e6:.1f} MB"


def _activity_lines(report: VmStatus) -> Iterator[str]:
    """The phase's source and progress, the last minute's activity, the guest channel and a stall."""
    if report.phase and report.phase_source == "boot-order":
        yield f"  phase {report.phase}: inferred from the boot order (no guest report in this boot yet)"
    if report.progress and report.progress.get("line"):
        yield f"  {report.progress['line']}"
    activity = report.activity or {}
    if activity:
        parts = [f"disk {_megabytes(activity.get('disk_written'))} written, {_megabytes(activity.get('disk_read'))} "
                 f"read", f"install medium {_megabytes(activity.get('iso_read'))} read"]
        if activity.get("screen_changes") is not None:
            parts.append(f"screen changed {activity['screen_changes']} times")
        if activity.get("cpu_percent") is not None:
            parts.append(f"CPU {activity['cpu_percent']:.0f} %")
        parts.append("network driver up" if activity.get("nic_up") else "network driver not seen yet")
        yield "  last minute: " + ", ".join(parts)
    if report.reports is not None:
        reports = report.reports
        yield (f"  guest channel: {reports.get('accepted', 0)} reports, last {reports.get('last') or '-'}"
               + (f", {reports['refused']} refused" if reports.get("refused") else ""))
    stall = report.stall or {}
    if stall.get("stalled"):
        yield (f"  STALLED since {stall.get('stalled_since')} s: nothing moved for "
               f"{stall.get('seconds_since_activity')} s (last: {stall.get('last_activity')} at "
               f"{stall.get('last_activity_at')} s); screenshots beside the phase log")


def _share_lines(share: dict[str, Any]) -> Iterator[str]:
    for item in share.get("shares", []):
        yield f"  share {item['guest_unc']} -> {item['path']}{' (read-only)' if item['readonly'] else ''}"
    yield (
        f"  share owner {share['uid']}:{share['gid']}, modes {share['file_mode']}/{share['dir_mode']}, "
        f"{share['login']} login, smbd 127.0.0.1:{share['host_port']}, "
        f"healthy={'yes' if share.get('healthy') else 'no'}"
        + (f" ({share['error']})" if share.get("error") else "")
        + (f", {share['restarts']} restarts" if share.get("restarts") else "")
    )
