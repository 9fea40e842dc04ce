"""Facts about the machine winarm runs on, and the accelerator choice that follows from them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winarm.errors import UserError

KVM_DEVICE = Path("/dev/kvm")
MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
CPUINFO = Path("/proc/cpuinfo")

ATOMICS_FIRST_BUILD = 26100
"""Windows 11 24H2 (build 26100) and later need the Armv8.1 atomics (LSE)."""
TCG_MODELS_NOT_24H2 = frozenset({"neoverse-n1", "cortex-a76", "cortex-a35", "cortex-a53", "cortex-a57",
                                 "cortex-a72"})
"""QEMU CPU models that do not boot build 26100 under TCG: ``neoverse-n1`` and ``cortex-a76`` are reported not
to boot its WinPE; the Armv8.0 ones lack the atomics altogether."""
FIX_OLDER_WINDOWS = "an older Windows build (23H2, 22631)"


@dataclass(frozen=True)
class HostFacts:
    """What the configuration is checked against. Built by :func:`probe`, or by hand in tests."""

    arch: str
    """``uname -m``: ``aarch64``, ``x86_64``, ..."""
    total_ram: int
    """Bytes of physical memory, or the container's memory limit when that is lower."""
    available_ram: int
    """Bytes the kernel says can be given to a new process without swapping (within the container's limit)."""
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


def memory(meminfo: Path = MEMINFO, cgroup: Path = CGROUP, membership: Path = SELF_CGROUP) -> tuple[int, int]:
    """Total and available bytes of RAM: ``MemTotal`` and ``MemAvailable`` of ``/proc/meminfo``, each capped by
    the cgroup v2 memory limit this process runs under (a container's ``--memory``), which /proc/meminfo
    does not show. Read directly: this is on the path to QEMU's start, where importing psutil costs 30 ms."""
    values: dict[str, int] = {}
    for line in meminfo.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            values[key] = int(rest.split()[0]) * 1024
    total = values["MemTotal"]
    available = values.get("MemAvailable", total)
    limit, used = _cgroup_memory(cgroup, membership)
    if limit is not None and limit < total:
        total = limit
        available = min(available, max(0, limit - (used or 0)))
    return total, available


def _cgroup_memory(root: Path, membership: Path) -> tuple[int | None, int | None]:
    """The memory limit and use of this process's cgroup v2 (None: no limit, or no cgroup v2); ``membership``
    is ``/proc/self/cgroup``, whose ``0::`` line names the cgroup below ``root``."""
    try:
        entry = membership.read_text().splitlines()
        path = next((line[3:] for line in entry if line.startswith("0::")), "/")
        folder = root / path.lstrip("/")
        limit_text = (folder / "memory.max").read_text().strip()
        used_text = (folder / "memory.current").read_text().strip()
    except (OSError, StopIteration):
        return None, None
    limit = None if limit_text == "max" else int(limit_text)
    return limit, int(used_text)


def probe() -> HostFacts:
    """Read the facts of this machine (/proc/meminfo, the cgroup's memory limit, CPU affinity, /dev/kvm).
    Never raises for a missing /dev/kvm."""
    total, available = memory()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - Linux always has it
        cpus = os.cpu_count() or 1
    return HostFacts(
        arch=os.uname().machine,
        total_ram=total,
        available_ram=available,
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


def cpu_features(cpuinfo: str) -> frozenset[str]:
    """The features every CPU of an aarch64 ``/proc/cpuinfo`` lists on its ``Features`` line (the intersection,
    so one core without a feature removes it); empty when there is no such line."""
    found: frozenset[str] | None = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Features":
            words = frozenset(value.split())
            found = words if found is None else found & words
    return found or frozenset()


def _read_cpuinfo() -> str:
    return CPUINFO.read_text()


def check_windows_cpu(accel: str, model: str | None, build: int | None,
                      read_cpuinfo: Callable[[], str] = _read_cpuinfo) -> None:
    """Refuse a CPU that cannot run Windows build ``build`` (None: unknown, nothing is checked; builds before
    :data:`ATOMICS_FIRST_BUILD` need nothing). Under KVM the host's CPU must list ``atomics`` (read through
    ``read_cpuinfo``, only then; an unreadable cpuinfo is not held against it); under TCG the model (the part
    before the first comma of ``model``) must not be one of :data:`TCG_MODELS_NOT_24H2`.
    Raises :class:`UserError` naming the way out."""
    if build is None or build < ATOMICS_FIRST_BUILD:
        return
    if accel == "kvm":
        try:
            features = cpu_features(read_cpuinfo())
        except OSError:
            return
        if "atomics" not in features:
            raise UserError(
                f"Windows build {build} needs Armv8.1 atomics (LSE), and this host's CPU has none ('atomics' is "
                f"not in {CPUINFO}'s Features): install {FIX_OLDER_WINDOWS} or use a host with Armv8.1 or later"
            )
        return
    name = (model or "").split(",")[0].strip().lower()
    if name in TCG_MODELS_NOT_24H2:
        raise UserError(
            f"--cpu-model {model}: Windows build {build} does not boot on {name}: use --cpu-model "
            f"max,pauth-impdef=on (the default under TCG) or {FIX_OLDER_WINDOWS}"
        )
