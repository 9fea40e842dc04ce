"""Facts about the machine winarm runs on, and the accelerator choice that follows from them."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from .errors import UserError

KVM_DEVICE = Path("/dev/kvm")


@dataclass(frozen=True)
class HostFacts:
    """What the configuration is checked against. Built by :func:`probe`, or by hand in tests."""

    arch: str
    """``platform.machine()``: ``aarch64``, ``x86_64``, ..."""
    total_ram: int
    """Bytes of physical memory."""
    available_ram: int
    """Bytes the kernel says can be given to a new process without swapping."""
    cpus: int
    """Logical CPUs this process may run on."""
    kvm_usable: bool
    """``/dev/kvm`` exists and opens read-write."""


def _kvm_usable(device: Path = KVM_DEVICE) -> bool:
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def probe() -> HostFacts:
    """Read the facts of this machine (psutil, /dev/kvm). Never raises for a missing /dev/kvm."""
    mem = psutil.virtual_memory()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - Linux always has it
        cpus = os.cpu_count() or 1
    return HostFacts(
        arch=platform.machine(),
        total_ram=int(mem.total),
        available_ram=int(mem.available),
        cpus=cpus,
        kvm_usable=_kvm_usable(),
    )


def free_disk(path: Path) -> int:
    """Bytes free for an unprivileged writer on the file system that holds ``path`` (or would hold it:
    the nearest existing ancestor is asked, so nothing needs to be created first)."""
    probe_at = path
    while not probe_at.exists() and probe_at != probe_at.parent:
        probe_at = probe_at.parent
    return shutil.disk_usage(probe_at).free


def choose_accel(requested: str, host: HostFacts) -> str:
    """Resolve ``auto|kvm|tcg`` to ``kvm`` or ``tcg``.

    KVM runs an aarch64 guest only on an aarch64 host; a ``/dev/kvm`` on an x86_64 host is of no use to it.
    Raises :class:`UserError` when ``kvm`` is asked for and cannot work here.
    """
    kvm_possible = host.arch in ("aarch64", "arm64") and host.kvm_usable
    if requested == "auto":
        return "kvm" if kvm_possible else "tcg"
    if requested == "kvm" and not kvm_possible:
        if host.arch not in ("aarch64", "arm64"):
            raise UserError(f"--accel kvm needs an aarch64 host, this one is {host.arch}: use --accel tcg or auto")
        raise UserError(
            f"--accel kvm: {KVM_DEVICE} is missing or not writable: pass the device to the container "
            "(--device /dev/kvm) or use --accel tcg"
        )
    return requested
