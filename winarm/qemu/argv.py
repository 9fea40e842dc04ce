"""The QEMU command line of a VM, built as a pure function of its configuration (no QEMU needed to test it).

Layout choices, each for a reason recorded in NOTES.md:
- install media on ``usb-storage`` behind ``qemu-xhci``: Windows PE reads USB mass storage without drivers;
- the system disk before the CD in the boot order, so an installed disk boots first;
- the NIC without an option ROM (``romfile=``), only because QEMU otherwise needs ipxe's ``efi-virtio.rom``;
  it does not stop network boot: AAVMF has its own virtio-net driver (see :func:`net_args`);
- TCG with ``-cpu max,pauth-impdef=on``: pointer authentication emulated the cheap way (3-4x faster boots);
- the guest channel: the guest's ``10.0.2.5:80`` relayed by QEMU's user network to the daemon's report socket,
  since Windows for ARM64 has no COM port under QEMU and the network is all it needs;
- sockets handed over as already-listening file descriptors, so winarm can connect the moment QEMU starts;
- the real-time clock in local time (``-rtc base=localtime``): Windows reads the RTC as local time.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from winarm.config.paths import VmPaths
from winarm.config.share import relay_command
from winarm.config.timezone import DSTOFF_SUFFIX, iana_name
from winarm.config.vm import Config, MiB
from winarm.guest import REPORT_ADDRESS, REPORT_PORT, SHARE_ADDRESS, SHARE_PORT
from winarm.qemu.firmware import Firmware

Endpoint = int | Path
"""A socket QEMU serves: an inherited listening file descriptor, or a path QEMU creates itself."""


def opt(value: str | Path) -> str:
    """Escape a value for QEMU's ``key=value,...`` option syntax: a comma is written twice."""
    return str(value).replace(",", ",,")


def _server(endpoint: Endpoint) -> str:
    if isinstance(endpoint, int):
        return f"fd={endpoint},server=on,wait=off"
    return f"path={opt(endpoint)},server=on,wait=off"


@dataclass(frozen=True)
class Endpoints:
    """The sockets of one QEMU process."""

    qmp: Endpoint
    serial: Endpoint


def cpu_args(accel: str, model: str | None = None) -> list[str]:
    """Accelerator and CPU model: ``-cpu host`` under KVM; under TCG the ``max`` model with the
    implementation-defined (cheap) pointer-authentication algorithm. ``model`` overrides the CPU model."""
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", model or "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", model or "max,pauth-impdef=on"]


def disk_args(bus: str, image: Path, image_format: str, *, allocate: bool = False) -> list[str]:
    """The system disk on ``bus`` (virtio-blk, virtio-scsi or nvme), first in the boot order.

    A sparse image gives back what the guest trims (``discard=unmap``); a preallocated one (``allocate``) keeps
    its reserved space. QEMU's default ``werror=enospc`` pauses the VM when the storage is full (see
    :mod:`winarm.vm.full_storage`).
    """
    space = "discard=ignore,detect-zeroes=on" if allocate else "discard=unmap,detect-zeroes=unmap"
    drive = ["-drive", f"if=none,id=disk0,file={opt(image)},format={image_format},cache=writeback,{space}"]
    if bus == "nvme":
        return [*drive, "-device", "nvme,drive=disk0,serial=winarm0,bootindex=0"]
    if bus == "virtio-scsi":
        return [*drive, "-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-hd,bus=scsi0.0,drive=disk0,bootindex=0"]
    return [*drive, "-device", "virtio-blk-pci,drive=disk0,bootindex=0"]


def media_args(media: Sequence[Path]) -> list[str]:
    """Each install medium as a read-only CD on its own ``usb-storage`` device, after the disk in boot order."""
    args: list[str] = []
    for index, image in enumerate(media):
        args += [
            "-drive",
            f"if=none,id=cd{index},file={opt(image)},format=raw,media=cdrom,readonly=on",
            "-device",
            f"usb-storage,id=media{index},bus=xhci.0,drive=cd{index},bootindex={index + 1}",
        ]
    return args


def vnc_option(address: str, *, password: bool, socket: Path | None = None) -> str:
    """VNC on the unix ``socket`` when ``address`` is ``socket``, else on TCP ``address`` (IPv6 in brackets), the
    first free display from 5900. With ``password`` QEMU asks for one; winarm sets it through QMP
    (``set_password``), so it never appears on the command line."""
    if address == "socket" and socket is not None:
        where = f"unix:{opt(socket)}"
    else:
        where = (f"[{address}]" if ":" in address else address) + ":0,to=99"
    return where + (",password=on" if password else "")


def socat_path(path: Path) -> str:
    """``path`` as one parameter of a socat address: every character but letters, digits and ``/._-`` behind a
    backslash, since socat splits an address at ``:``, ``,``, ``!!``, quotes and brackets and reads ``\\x`` as
    ``x``."""
    return re.sub(r"([^A-Za-z0-9/._-])", r"\\\1", str(path))


def report_relay_command(report_socket: Path) -> str:
    """What QEMU runs for each guest connection to ``10.0.2.5:80``: ``socat STDIO UNIX-CONNECT:<socket>``, a byte
    relay to the daemon's report socket. Quoted for a POSIX shell: QEMU's user network splits the command the way
    a shell would (libslirp's ``g_shell_parse_argv``; older ones ran ``/bin/sh -c``)."""
    return f"socat STDIO {shlex.quote('UNIX-CONNECT:' + socat_path(report_socket))}"


def netdev_user(share_port: int | None, report_socket: Path | None = None) -> str:
    """QEMU's user network. With a share, the guest's ``10.0.2.4:445`` is relayed to smbd's loopback port; with a
    report socket, the guest's ``10.0.2.5:80`` to it (see :func:`report_relay_command`). Each relay is one process
    per guest connection, started by QEMU, ended with the connection."""
    netdev = "user,id=net0"
    if share_port is not None:
        netdev += f",guestfwd=tcp:{SHARE_ADDRESS}:{SHARE_PORT}-cmd:{opt(relay_command(share_port))}"
    if report_socket is not None:
        netdev += f",guestfwd=tcp:{REPORT_ADDRESS}:{REPORT_PORT}-cmd:{opt(report_relay_command(report_socket))}"
    return netdev


ITS_FIRST_BUILD = 26100
"""The first Windows build that boots with the GIC's ITS: earlier ones (all of Windows 10 ARM64, Windows 11
before 24H2) hang at the boot logo when ``virt`` has one (kvm-guest-drivers-windows #944)."""


def machine_option(windows_build: int | None = None) -> str:
    """``virt`` with the newest GIC, and ``its=off`` when ``windows_build`` is below :data:`ITS_FIRST_BUILD`.
    With no build known (no install this start and none remembered) the ITS stays on, as before."""
    its_off = windows_build is not None and windows_build < ITS_FIRST_BUILD
    return "virt,gic-version=max" + (",its=off" if its_off else "")


def rtc_option(timezone: str | None = None, now: datetime | None = None) -> str:
    """The real-time clock in local time, as Windows reads it: ``base=localtime`` (the host's), or, when the
    Windows zone ``timezone`` is ahead or behind the host's at ``now`` (default: this moment), the time in that
    zone now (``base=2026-12-01T03:04:05``), which QEMU then runs on from. A zone the mapping does not know, or
    one the host's time zone data lacks, falls back to the host's local time."""
    moment = (now or datetime.now(UTC)).astimezone()
    if timezone is None or (iana := iana_name(timezone)) is None:
        return "base=localtime"
    try:
        zone = ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return "base=localtime"
    offset = zone.utcoffset(moment) or timedelta(0)
    if timezone.endswith(DSTOFF_SUFFIX):
        offset -= zone.dst(moment) or timedelta(0)
    if offset == moment.utcoffset():
        return "base=localtime"
    local = (moment.astimezone(UTC) + offset).replace(tzinfo=None)
    return f"base={local:%Y-%m-%dT%H:%M:%S}"


def machine_args(cfg: Config, windows_build: int | None = None) -> list[str]:
    """The machine (see :func:`machine_option`), accelerator and CPU model, CPU count and memory, and the
    real-time clock in the guest's local time (see :func:`rtc_option`)."""
    return [
        "-machine",
        machine_option(windows_build),
        "-rtc",
        rtc_option(cfg.timezone),
        *cpu_args(cfg.accel, cfg.cpu_model),
        "-smp",
        f"{cfg.cpus},sockets=1,cores={cfg.cpus},threads=1",
        "-m",
        f"{cfg.ram // MiB}M",
    ]


def firmware_args(fw: Firmware, efivars: Path) -> list[str]:
    """The UEFI code (read-only flash) and the VM's own variable store, and a boot menu that never waits."""
    return [
        "-drive",
        f"if=pflash,format=raw,unit=0,readonly=on,file={opt(fw.code)}",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={opt(efivars)}",
        "-boot",
        "menu=on,splash-time=0",
    ]


def display_args(cfg: Config, vnc_socket: Path | None = None) -> list[str]:
    """A ``ramfb`` framebuffer seen only through VNC (no local window), on ``vnc_socket`` by default."""
    return ["-device", "ramfb", "-display", "none", "-vnc",
            vnc_option(cfg.vnc, password=cfg.vnc_password is not None, socket=vnc_socket)]


def input_args() -> list[str]:
    """The USB controller (``xhci``, which the install media use too), a keyboard and an absolute-pointer tablet."""
    return ["-device", "qemu-xhci,id=xhci", "-device", "usb-kbd,bus=xhci.0", "-device", "usb-tablet,bus=xhci.0"]


NIC_ID = "nic0"
"""The virtio NIC's QOM id, which ``query-rx-filter`` and ``NIC_RX_FILTER_CHANGED`` name."""


def net_args(share_port: int | None, report_socket: Path | None = None) -> list[str]:
    """The user network (see :func:`netdev_user`) on a virtio NIC (:data:`NIC_ID`) without an option ROM.

    ``romfile=`` only spares QEMU ipxe's ``efi-virtio.rom`` (an x86 ROM it otherwise refuses to start without).
    It does not prevent network boot: on aarch64 the firmware (AAVMF) drives the NIC with its own virtio-net
    driver, so a missed CD prompt falls through to PXE/HTTP boot (minutes) before the UEFI shell."""
    nic = f"virtio-net-pci,id={NIC_ID},netdev=net0,romfile="
    return ["-netdev", netdev_user(share_port, report_socket), "-device", nic]


def console_args(endpoints: Endpoints) -> list[str]:
    """The serial console and the QMP monitor, each on its socket."""
    return [
        "-chardev",
        f"socket,id=serial0,{_server(endpoints.serial)}",
        "-serial",
        "chardev:serial0",
        "-chardev",
        f"socket,id=qmp0,{_server(endpoints.qmp)}",
        "-mon",
        "chardev=qmp0,mode=control",
    ]


def tpm_args(tpm_socket: Path | None) -> list[str]:
    """A TPM 2.0 (``tpm-tis-device``) backed by swtpm at ``tpm_socket``; nothing without a socket."""
    if tpm_socket is None:
        return []
    return [
        "-chardev",
        f"socket,id=chrtpm,path={opt(tpm_socket)}",
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        "tpm-tis-device,tpmdev=tpm0",
    ]


def build_argv(
    cfg: Config,
    fw: Firmware,
    paths: VmPaths,
    endpoints: Endpoints,
    *,
    media: Sequence[Path] = (),
    tpm_socket: Path | None = None,
    share_port: int | None = None,
    windows_build: int | None = None,
) -> list[str]:
    """The full argv (program first) of the VM described by ``cfg``. QEMU starts paused (``-S``): the caller
    connects to QMP and the serial console, then continues it, so no output is ever missed. The guest channel's
    relay goes to :attr:`VmPaths.report_socket` unless ``cfg.guest_channel`` is off. ``windows_build`` (the
    installed or installing image's build, None when unknown) decides the GIC's ITS (:func:`machine_option`)."""
    return [
        cfg.qemu_binary,
        "-name",
        f"{cfg.name},debug-threads=on",
        "-nodefaults",
        "-no-user-config",
        "-S",
        *machine_args(cfg, windows_build),
        *firmware_args(fw, paths.efivars),
        *display_args(cfg, paths.vnc_socket),
        *input_args(),
        *disk_args(cfg.disk_bus, paths.disk, cfg.disk_format, allocate=cfg.allocate),
        *media_args(media),
        *net_args(share_port, paths.report_socket if cfg.guest_channel else None),
        *console_args(endpoints),
        *tpm_args(tpm_socket),
    ]
