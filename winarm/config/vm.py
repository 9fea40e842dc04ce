"""The one typed configuration of a VM: from command-line flags, then environment variables, then defaults.

This is the only place where sizes, counts and names are parsed and checked. Every bad value raises
:class:`~winarm.errors.UserError` with one line that names the value and what would be accepted; nothing here
touches the disk, so a rejected configuration leaves no trace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winarm.config.endpoints import metrics, vnc_address, vnc_password
from winarm.config.host import HostFacts, choose_accel, free_disk
from winarm.config.share import ShareSettings, load_share_settings
from winarm.config.table import DISK, INSTALL, RUN, VM, default_of, env_names
from winarm.config.timezone import windows_timezone
from winarm.config.values import Values, read_secret
from winarm.config.windows import check_account, language_tag
from winarm.errors import UserError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

_UNITS = {"K": KiB, "M": MiB, "G": GiB, "T": TiB}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT])(?:I?B)?\s*$", re.IGNORECASE)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")

MIN_RAM = 128 * MiB
MIN_DISK = 64 * MiB
UEFI_VARS_SIZE = 64 * MiB
"""What a new VM's copy of the AAVMF variable store takes on disk (the Debian template is 64 MiB)."""
SPARSE_START_ROOM = 1 * GiB
"""What a new sparse disk image (the default) needs free to start: it grows as the guest writes, and Setup's
first steps alone write more than this. Smaller disks need only their own size."""
SPARSE_RUN_ROOM = 64 * MiB
"""What an existing sparse image needs free to start, and what a VM paused on a full storage waits for before
it goes on (:mod:`winarm.vm.full_storage`): with less it would pause again at once."""
RAM_RESERVE = 1 * GiB
"""What ``--ram max`` leaves to the host and to QEMU itself."""

ENV_NAMES: dict[str, tuple[str, ...]] = env_names((*VM, "ram", "cpus", *DISK, *INSTALL, *RUN, "vnc_password"))
"""Setting -> environment names of the VM's settings (the shares' are :data:`winarm.config.share.ENV_NAMES`)."""


@dataclass(frozen=True)
class Config:
    """Everything one ``winarm up`` needs, checked. Sizes are bytes; paths are absolute."""

    name: str
    ram: int
    cpus: int
    disk_size: int
    disk_format: str
    disk_bus: str
    storage: Path
    run_base: Path
    iso: Path | None
    accel: str
    tpm: bool
    secure_boot: bool
    timeout: float
    vnc: str
    vnc_password: str | None = field(default=None, repr=False)
    vnc_no_password: bool = False
    """VNC beyond loopback without a password, as asked (else one is made: :mod:`winarm.vm.vnc_secret`)."""
    vnc_password_kept: Path | None = None
    """The file of the VNC password winarm made (None: the user's own, or none)."""
    username: str = field(default=default_of("username"), repr=False)
    password: str = field(default=default_of("password"), repr=False)
    language: str = default_of("language")
    ui_language: str | None = None
    keyboard: str | None = None
    computer_name: str = default_of("computer_name")
    edition: str | None = None
    product_key: str | None = field(default=None, repr=False)
    timezone: str | None = None
    """Windows' time zone, a Windows ID (the answer file's, and the clock QEMU gives the guest); None: the host's."""
    drivers: Path | None = None
    drivers_pass: str = default_of("drivers_pass")
    unattend: bool = True
    iso_url: str | None = None
    iso_sha256: str | None = None
    stop_at: str | None = None
    cpu_model: str | None = None
    qemu_binary: str = "qemu-system-aarch64"
    share: ShareSettings | None = None
    metrics_port: int | None = None
    metrics_address: str = default_of("metrics_address")
    stall_timeout: float = float(default_of("stall_timeout"))
    """Seconds of no activity after which a running install is told stalled; 0: never."""
    allocate: bool = False
    guest_channel: bool = True
    """Whether the guest can report to winarm over the network (:mod:`winarm.vm.guest_channel`)."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """Things the user should know that are not mistakes (one line each), printed by ``winarm up``."""

    @property
    def state_dir(self) -> Path:
        """The VM's lasting files: disk image, UEFI variables, TPM state, phase logs."""
        return self.storage / self.name

    @property
    def run_dir(self) -> Path:
        """The VM's sockets and pid files while it runs (mode 0700)."""
        return self.run_base / self.name


def parse_size(text: str, what: str, *, relative_to: int | None = None) -> int:
    """Parse ``8G``, ``8192M``, ``1.5T``, ``512MiB`` (binary units) into bytes.

    ``half`` and ``max`` are accepted when ``relative_to`` is given (half of it, or all of it).
    Raises :class:`UserError` naming ``what`` and the value for anything else, a bare number included:
    a size without a unit is ambiguous.
    """
    value = text.strip()
    lowered = value.lower()
    if relative_to is not None and lowered in ("half", "max"):
        amount = relative_to // 2 if lowered == "half" else relative_to
        return (amount // MiB) * MiB
    match = _SIZE_RE.match(value)
    hint = "8G, 8192M" + (", half or max" if relative_to is not None else "")
    if not match:
        if re.fullmatch(r"\s*\d+\s*", value):
            raise UserError(f"{what} {value!r} has no unit: write it as {value.strip()}G or {value.strip()}M")
        raise UserError(f"{what} {value!r} is not a size: use a number with a unit, like {hint}")
    number = float(match.group(1))
    size = int(number * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise UserError(f"{what} {value!r} must be larger than zero: use a size like {hint}")
    return (size // MiB) * MiB if size >= MiB else size


def format_size(size: int) -> str:
    """``4294967296`` -> ``4G``; ``1610612736`` -> ``1536M``: the shortest exact spelling."""
    for unit, factor in (("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def parse_cpus(text: str, host_cpus: int) -> int:
    """A CPU count from 1 to the host's logical CPUs, or ``half``/``max``. Raises :class:`UserError`."""
    value = text.strip().lower()
    if value == "max":
        return host_cpus
    if value == "half":
        return max(1, host_cpus // 2)
    if not value.isdigit():
        raise UserError(f"CPU count {text!r} is not a whole number: use 1 to {host_cpus}, half or max")
    count = int(value)
    if count < 1:
        raise UserError(f"CPU count {text!r} must be at least 1: use 1 to {host_cpus}, half or max")
    if count > host_cpus:
        raise UserError(f"CPU count {count} is more than this host has ({host_cpus}): use 1 to {host_cpus}")
    return count


def check_name(name: str) -> str:
    """A VM name usable as a directory and socket name. Raises :class:`UserError`."""
    if not NAME_RE.match(name) or name in (".", ".."):
        raise UserError(
            f"VM name {ascii(name)} is not allowed: use 1-40 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _existing_image_size(path: Path) -> int | None:
    """The virtual size of an existing disk image (qcow2 header or raw file length), or None."""
    if not path.exists():
        return None
    with path.open("rb") as handle:
        header = handle.read(32)
    if header[:4] == b"QFI\xfb":
        return int.from_bytes(header[24:32], "big")
    return path.stat().st_size


def load_config(flags: Mapping[str, Any], env: Mapping[str, str], host: HostFacts) -> Config:
    """Build and check the configuration. Flags win over the environment, which wins over defaults.

    ``flags`` holds the ``winarm up`` options by setting name, None where not given (and ``discover_iso``: False
    to not look for an ISO in the storage). Raises :class:`UserError` for the first bad value; reads the disk
    (free space, an existing image) but writes nothing.
    """
    values = Values(flags, env)
    name = check_name(str(values["name"]))
    storage = _storage(values["storage"])
    fields: dict[str, Any] = {"name": name, "storage": storage, **_machine(values, host)}
    fields |= _disk(values, storage / name)
    fields |= _iso(values, storage, discover=flags.get("discover_iso", True) is not False)
    fields |= _running(values, flags, host)
    fields["stall_timeout"] = parse_stall_timeout(str(values["stall_timeout"]))
    fields |= _install(values)
    fields["share"] = load_share_settings(flags, env)
    fields |= metrics(values)
    fields |= _extras(values)
    return Config(**fields)


def _storage(value: Any) -> Path:
    """The storage directory, absolute, checked to be a directory (or able to become one) that can be written."""
    storage = Path(str(value)).expanduser()
    if storage.exists() and not storage.is_dir():
        raise UserError(f"storage {str(storage)!r} is not a directory: point --storage at a directory")
    storage = storage.absolute()
    _check_writable(storage)
    return storage


def _machine(values: Values, host: HostFacts) -> dict[str, Any]:
    """``ram`` and ``cpus``, checked against the host. Raises :class:`UserError`."""
    ram_text = str(values["ram"])
    ram = parse_size(ram_text, "RAM size", relative_to=max(MIN_RAM, host.total_ram - RAM_RESERVE))
    if ram < MIN_RAM:
        raise UserError(f"RAM size {ram_text!r} is too small: give the VM at least {format_size(MIN_RAM)}")
    if ram > host.total_ram:
        raise UserError(
            f"RAM size {ram_text!r} is more than this host has ({format_size(host.total_ram // MiB * MiB)}): "
            "use a smaller --ram, half or max"
        )
    return {"ram": ram, "cpus": parse_cpus(str(values["cpus"]), host.cpus)}


def _disk(values: Values, state_dir: Path) -> dict[str, Any]:
    """``disk_format``, ``disk_bus``, ``allocate``, ``disk_size`` and the notes about the disk's room."""
    disk_format = values["disk_format"]
    disk_bus = values["disk_bus"]
    allocate = values["allocate"]
    size, notes = _disk_size(state_dir, disk_format, str(values["disk_size"]), allocate)
    return {"disk_format": disk_format, "disk_bus": disk_bus, "allocate": allocate, "disk_size": size,
            "notes": notes}


def _iso(values: Values, storage: Path, *, discover: bool) -> dict[str, Any]:
    """``iso`` (a readable file) or ``iso_url`` (to download), or neither; found in the storage when
    ``discover`` and none is given. Raises :class:`UserError`."""
    iso_value = values["iso"]
    if not iso_value and discover:
        iso_value = find_iso(storage)
    if not iso_value:
        return {"iso": None}
    if str(iso_value).lower().startswith(("http://", "https://")):
        return {"iso": None, "iso_url": str(iso_value)}
    iso = Path(str(iso_value)).expanduser().absolute()
    if not iso.is_file():
        raise UserError(f"ISO {str(iso)!r} does not exist or is not a file: give the path of an install ISO")
    if not os.access(iso, os.R_OK):
        raise UserError(f"ISO {str(iso)!r} is not readable: check its permissions")
    return {"iso": iso}


def _running(values: Values, flags: Mapping[str, Any], host: HostFacts) -> dict[str, Any]:
    """``accel`` (``KVM=N`` forces tcg unless ``--accel`` is given), ``tpm``, ``secure_boot``, ``guest_channel``,
    ``timeout``, ``run_base``. Raises :class:`UserError`."""
    accel = values["accel"]
    if flags.get("accel") is None and values["kvm"] is False:
        accel = "tcg"
    timeout_text = str(values["timeout"])
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise UserError(f"timeout {timeout_text!r} is not a number of seconds: use for example 105") from None
    if not 0 < timeout <= 3600:
        raise UserError(f"timeout {timeout_text!r} is out of range: use 1 to 3600 seconds")
    return {"accel": choose_accel(accel, host), "tpm": values["tpm"], "secure_boot": bool(values["secure_boot"]),
            "guest_channel": bool(values["guest_channel"]), "timeout": timeout,
            "run_base": Path(str(values["run_base"])).absolute()}


def parse_stall_timeout(text: str) -> float:
    """The stall timeout in seconds: a number from 0 (the watch off) to a week. Raises :class:`UserError` naming
    the value."""
    try:
        seconds = float(text)
    except ValueError:
        raise UserError(f"stall timeout {text!r} is not a number of seconds: use for example 1800, or 0 to turn "
                        "the stall watch off") from None
    if not 0 <= seconds <= 7 * 86400:
        raise UserError(f"stall timeout {text!r} is out of range: use 0 (off) to 604800 seconds")
    return seconds


def _install(values: Values) -> dict[str, Any]:
    """The drivers and the answer file's account, machine and edition; the account checked now, when there is
    an answer file, so a mistake is told before anything is written. Raises :class:`UserError`."""
    drivers_value = values["drivers"]
    drivers = Path(str(drivers_value)).expanduser().absolute() if drivers_value else None
    if drivers is not None and not drivers.exists():
        raise UserError(f"drivers {str(drivers)!r} does not exist: give the virtio-win ISO or its extracted folder")
    password_file = values["password_file"]
    password = read_secret(str(password_file), "password") if password_file else str(values["password"])
    username, computer_name, language = str(values["username"]), str(values["computer_name"]), str(values["language"])
    keyboard, product_key, ui_language = values.text("keyboard"), values.text("product_key"), values.text("ui_language")
    unattend = values["unattend"] is not False
    if unattend:
        check_account(username, password, computer_name, language, keyboard=keyboard, product_key=product_key)
        if ui_language is not None:
            language_tag(ui_language, "UI language")
    return {"ui_language": ui_language,
            "drivers": drivers, "drivers_pass": values["drivers_pass"], "username": username, "password": password,
            "computer_name": computer_name, "language": language, "keyboard": keyboard, "product_key": product_key,
            "unattend": unattend, "edition": values.text("edition"),
            "timezone": windows_timezone(str(values["timezone"]))}


def _extras(values: Values) -> dict[str, Any]:
    """VNC, the CPU model, the stop marker and the ISO's checksum. Raises :class:`UserError`."""
    cpu_model = values.text("cpu_model")
    if cpu_model is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=,-]{0,127}", cpu_model):
        raise UserError(f"CPU model {ascii(cpu_model)} is not a QEMU CPU model: use for example max or cortex-a72")
    return {"cpu_model": cpu_model, "stop_at": values.text("stop_at"), "iso_sha256": values.text("iso_sha256"),
            "vnc": vnc_address(str(values["vnc"])), "vnc_password": vnc_password(values),
            "vnc_no_password": bool(values["vnc_no_password"])}


def _disk_size(state_dir: Path, disk_format: str, disk_text: str, allocate: bool) -> tuple[int, tuple[str, ...]]:
    """The disk size asked for, checked against the image already there and the room on the storage's disk.

    A preallocated image (``allocate``) must fit whole. A sparse one (the default, as with every thin-provisioned
    hypervisor disk) grows as the guest writes: it must have room to start (:data:`SPARSE_START_ROOM` for a new
    image, :data:`SPARSE_RUN_ROOM` for an existing one, less when that fills it). One that could outgrow the free
    space starts with a note saying what happens then (the VM is paused until there is room; nothing is lost).
    A new VM's UEFI variable store is counted. Returns the size in bytes and the notes. Raises
    :class:`UserError`.
    """
    storage = state_dir.parent
    image = state_dir / f"disk.{disk_format}"
    existing = _existing_image_size(image)
    allocated = image.stat().st_blocks * 512 if existing is not None else 0
    new_vars = not (state_dir / "efivars.fd").exists()
    free = max(0, free_disk(storage) - (UEFI_VARS_SIZE if new_vars else 0))
    disk_size = parse_size(disk_text, "disk size", relative_to=free + allocated)
    if disk_size < MIN_DISK:
        raise UserError(f"disk size {disk_text!r} is too small: use at least {format_size(MIN_DISK)}")
    if existing is not None and disk_size < existing:
        raise UserError(
            f"disk size {disk_text!r} is smaller than the existing disk {image} ({format_size(existing)}): "
            f"a disk is never shrunk, use --disk-size {format_size(existing)} or more"
        )
    growth = max(0, disk_size - allocated)  # what the image may still take from the storage's disk
    needed = growth if allocate else min(growth, SPARSE_RUN_ROOM if existing is not None else SPARSE_START_ROOM)
    if needed > free:
        beside = " beside the UEFI variables" if new_vars else ""
        how = "the whole disk, preallocated" if allocate else "room for the sparse image's first writes"
        raise UserError(
            f"disk size {disk_text!r} needs more room than {storage} has free ({format_size(free // MiB * MiB)}"
            f"{beside}; it needs {format_size(-(-needed // MiB) * MiB)}, {how}): use a smaller --disk-size or free "
            "some space"
        )
    notes: tuple[str, ...] = ()
    if growth > free:
        notes = (
            f"the {format_size(disk_size)} disk may outgrow the {format_size(free // MiB * MiB)} free on {storage}: "
            "the image grows as the guest writes; should the storage fill up, the VM is paused (nothing lost) "
            "until there is room again. --allocate (ALLOCATE=Y) reserves the whole disk now",
        )
    return disk_size, notes


def _check_writable(storage: Path) -> None:
    """Raise :class:`UserError` when ``storage`` (or, while it does not exist, the folder it would be made in)
    cannot be written: a read-only mount, or permissions."""
    existing = storage
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == storage else f" (its parent {str(existing)!r})"
        raise UserError(
            f"storage {str(storage)!r}{where} is not writable: mount it read-write or point --storage elsewhere"
        )


def find_iso(storage: Path) -> Path | None:
    """The ISO a container brings without saying so: ``/boot.iso``, else the only ``*.iso`` at the top of the
    storage directory (winarm's own answer media live one level down). Raises :class:`UserError` when several
    could be meant."""
    boot = Path("/boot.iso")
    if boot.is_file():
        return boot
    found = sorted(storage.glob("*.iso")) if storage.is_dir() else []
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise UserError(f"several ISOs in {storage} ({names}): say which with --iso (env BOOT)")
    return found[0] if found else None
