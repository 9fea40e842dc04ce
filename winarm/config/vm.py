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

from winarm.config.host import HostFacts, choose_accel, free_disk
from winarm.config.share import ShareSettings, load_share_settings
from winarm.config.values import bind_error, parse_bool, pick, read_secret
from winarm.config.windows import check_account
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

DISK_BUSES = {
    "virtio-blk": "virtio-blk",
    "blk": "virtio-blk",
    "virtio": "virtio-blk",
    "virtio-scsi": "virtio-scsi",
    "scsi": "virtio-scsi",
    "nvme": "nvme",
}

ENV_NAMES: dict[str, tuple[str, ...]] = {
    # setting: environment names, the anchor's first
    "ram": ("RAM_SIZE",),
    "cpus": ("CPU_CORES",),
    "disk_size": ("DISK_SIZE",),
    "disk_format": ("DISK_FMT",),
    "disk_bus": ("DISK_TYPE",),
    "allocate": ("ALLOCATE",),
    "storage": ("STORAGE",),
    "timeout": ("TIMEOUT",),
    "iso": ("BOOT", "ISO"),
    "name": ("NAME",),
    "tpm": ("TPM",),
    "accel": ("ACCEL",),
    "username": ("USERNAME",),
    "password": ("PASSWORD",),
    "language": ("LANGUAGE",),
    "keyboard": ("KEYBOARD",),
    "product_key": ("KEY",),
    "edition": ("EDITION",),
    "computer_name": ("COMPUTER_NAME",),
    "drivers": ("DRIVERS",),
    "drivers_pass": ("DRIVERS_PASS",),
    "vnc": ("VNC",),
    "vnc_password": ("VNC_PASSWORD",),
    "vnc_password_file": ("VNC_PASSWORD_FILE",),
    "password_file": ("PASSWORD_FILE",),
    "metrics_port": ("METRICS_PORT",),
    "metrics_address": ("METRICS_ADDRESS",),
}

DEFAULTS: dict[str, Any] = {
    "name": "windows",
    "ram": "4G",
    "cpus": "2",
    "disk_size": "64G",
    "disk_format": "qcow2",
    "disk_bus": "virtio-blk",
    "allocate": False,
    "timeout": "105",
    "accel": "auto",
    "tpm": True,
    "secure_boot": True,
    "username": "Docker",
    "password": "admin",
    "language": "en-US",
    "computer_name": "WINARM",
    "drivers_pass": "specialize",
    "vnc": "127.0.0.1",
}


def default_storage() -> Path:
    """``/storage`` in the container (when it exists), else ``$XDG_DATA_HOME/winarm``."""
    if Path("/storage").is_dir() and os.access("/storage", os.W_OK):
        return Path("/storage")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "winarm"


def default_run_base() -> Path:
    """Where per-VM run directories (sockets, pid files) live: ``$WINARM_RUN_DIR``, ``$XDG_RUNTIME_DIR/winarm``
    or ``/run/winarm`` for root. Kept short: unix socket paths must stay under 108 bytes."""
    explicit = os.environ.get("WINARM_RUN_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/run/winarm")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "winarm"
    return Path("/tmp") / f"winarm-{os.geteuid()}"


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
    username: str = field(default="Docker", repr=False)
    password: str = field(default="admin", repr=False)
    language: str = "en-US"
    keyboard: str | None = None
    computer_name: str = "WINARM"
    edition: str | None = None
    product_key: str | None = field(default=None, repr=False)
    drivers: Path | None = None
    drivers_pass: str = "specialize"
    unattend: bool = True
    iso_url: str | None = None
    iso_sha256: str | None = None
    stop_at: str | None = None
    cpu_model: str | None = None
    qemu_binary: str = "qemu-system-aarch64"
    share: ShareSettings | None = None
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    allocate: bool = False
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


def _pick(key: str, flags: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """A flag if given, else the first set environment name, else the default."""
    return pick(key, flags, env, ENV_NAMES, DEFAULTS.get(key))


def _optional(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _existing_image_size(path: Path) -> int | None:
    """The virtual size of an existing disk image (qcow2 header or raw file length), or None."""
    if not path.exists():
        return None
    with path.open("rb") as handle:
        header = handle.read(32)
    if header[:4] == b"QFI\xfb":
        return int.from_bytes(header[24:32], "big")
    return path.stat().st_size


def load_config(flags: Mapping[str, Any], env: Mapping[str, str], host: HostFacts) -> Config:  # noqa: C901, PLR0912, PLR0915
    """Build and check the configuration. Flags win over the environment, which wins over defaults.

    ``flags`` holds the ``winarm up`` options by setting name, None where not given. Raises
    :class:`UserError` for the first bad value; reads the disk (free space, an existing image) but writes
    nothing.
    """
    name = check_name(str(_pick("name", flags, env)))

    storage = Path(str(_pick("storage", flags, env) or default_storage())).expanduser()
    if storage.exists() and not storage.is_dir():
        raise UserError(f"storage {str(storage)!r} is not a directory: point --storage at a directory")
    storage = storage.absolute()
    _check_writable(storage)

    ram_text = str(_pick("ram", flags, env))
    ram = parse_size(ram_text, "RAM size", relative_to=max(MIN_RAM, host.total_ram - RAM_RESERVE))
    if ram < MIN_RAM:
        raise UserError(f"RAM size {ram_text!r} is too small: give the VM at least {format_size(MIN_RAM)}")
    if ram > host.total_ram:
        raise UserError(
            f"RAM size {ram_text!r} is more than this host has ({format_size(host.total_ram // MiB * MiB)}): "
            "use a smaller --ram, half or max"
        )

    cpus = parse_cpus(str(_pick("cpus", flags, env)), host.cpus)

    disk_format = str(_pick("disk_format", flags, env)).strip().lower()
    if disk_format not in ("qcow2", "raw"):
        raise UserError(f"disk format {disk_format!r} is not known: use qcow2 or raw")

    bus_text = str(_pick("disk_bus", flags, env)).strip().lower()
    disk_bus = DISK_BUSES.get(bus_text)
    if disk_bus is None:
        raise UserError(f"disk bus {bus_text!r} is not known: use virtio-blk (blk), virtio-scsi (scsi) or nvme")

    allocate_value = _pick("allocate", flags, env)
    allocate = parse_bool(allocate_value, "ALLOCATE")
    disk_text = str(_pick("disk_size", flags, env))
    disk_size, disk_notes = _disk_size(storage / name, disk_format, disk_text, allocate)

    iso_value = _pick("iso", flags, env)
    if not iso_value and flags.get("discover_iso", True):
        iso_value = find_iso(storage)
    iso: Path | None = None
    iso_url: str | None = None
    if iso_value and str(iso_value).lower().startswith(("http://", "https://")):
        iso_url = str(iso_value)
    elif iso_value:
        iso = Path(str(iso_value)).expanduser().absolute()
        if not iso.is_file():
            raise UserError(f"ISO {str(iso)!r} does not exist or is not a file: give the path of an install ISO")
        if not os.access(iso, os.R_OK):
            raise UserError(f"ISO {str(iso)!r} is not readable: check its permissions")

    accel_text = str(_pick("accel", flags, env)).strip().lower()
    if accel_text not in ("auto", "kvm", "tcg"):
        raise UserError(f"accelerator {accel_text!r} is not known: use auto, kvm or tcg")
    if env.get("KVM", "").strip() and flags.get("accel") is None and not parse_bool(env["KVM"], "KVM"):
        accel_text = "tcg"
    accel = choose_accel(accel_text, host)

    tpm_value = _pick("tpm", flags, env)
    tpm = tpm_value if isinstance(tpm_value, bool) else parse_bool(str(tpm_value), "TPM")
    secure_value = _pick("secure_boot", flags, env)
    secure_boot = bool(secure_value)

    timeout_text = str(_pick("timeout", flags, env))
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise UserError(f"timeout {timeout_text!r} is not a number of seconds: use for example 105") from None
    if not 0 < timeout <= 3600:
        raise UserError(f"timeout {timeout_text!r} is out of range: use 1 to 3600 seconds")

    run_base = Path(str(flags.get("run_base") or default_run_base())).absolute()

    drivers_value = _pick("drivers", flags, env)
    drivers = Path(str(drivers_value)).expanduser().absolute() if drivers_value else None
    if drivers is not None and not drivers.exists():
        raise UserError(f"drivers {str(drivers)!r} does not exist: give the virtio-win ISO or its extracted folder")
    drivers_pass = str(_pick("drivers_pass", flags, env))
    if drivers_pass not in ("windowsPE", "specialize", "firstlogon"):
        raise UserError(f"drivers pass {drivers_pass!r} is not known: use windowsPE, specialize or firstlogon")

    username = str(_pick("username", flags, env))
    password_file = _pick("password_file", flags, env)
    password = read_secret(str(password_file), "password") if password_file else str(_pick("password", flags, env))
    computer_name = str(_pick("computer_name", flags, env))
    language = str(_pick("language", flags, env))
    keyboard = _optional(_pick("keyboard", flags, env))
    product_key = _optional(_pick("product_key", flags, env))
    unattend = flags.get("unattend") is not False
    if unattend:  # checked now, not at install time, so a mistake is told before anything is written
        check_account(username, password, computer_name, language, keyboard, product_key)

    share = load_share_settings(flags, env)
    metrics_port, metrics_address = _metrics(flags, env)

    stop_at = flags.get("stop_at")
    cpu_model = flags.get("cpu_model")
    if cpu_model is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=,-]{0,127}", str(cpu_model)):
        raise UserError(f"CPU model {ascii(cpu_model)} is not a QEMU CPU model: use for example max or cortex-a72")
    return Config(
        name=name,
        ram=ram,
        cpus=cpus,
        disk_size=disk_size,
        disk_format=disk_format,
        disk_bus=disk_bus,
        storage=storage,
        run_base=run_base,
        iso=iso,
        accel=accel,
        tpm=tpm,
        secure_boot=secure_boot,
        timeout=timeout,
        vnc=_vnc_address(str(_pick("vnc", flags, env))),
        vnc_password=_vnc_password(flags, env),
        username=username,
        password=password,
        language=language,
        keyboard=keyboard,
        computer_name=computer_name,
        edition=_optional(_pick("edition", flags, env)),
        product_key=product_key,
        drivers=drivers,
        drivers_pass=drivers_pass,
        unattend=unattend,
        iso_url=iso_url,
        iso_sha256=_optional(flags.get("iso_sha256")),
        stop_at=str(stop_at) if stop_at else None,
        cpu_model=str(cpu_model) if cpu_model else None,
        share=share,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        allocate=allocate,
        notes=disk_notes,
    )


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


def _vnc_password(flags: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The VNC password (None: no password), from a file or the environment. Raises :class:`UserError`."""
    path = _pick("vnc_password_file", flags, env)
    value = read_secret(str(path), "VNC password") if path else _pick("vnc_password", flags, env)
    if value is None:
        return None
    if not 1 <= len(value) <= 8 or not all(32 <= ord(c) < 127 for c in value):
        raise UserError(
            "the VNC password must be 1-8 printable ASCII characters (VNC authentication uses 8 at most): "
            "choose another"
        )
    return value


def _vnc_address(text: str) -> str:
    """The address VNC listens on: an IP address. Raises :class:`UserError`."""
    import ipaddress

    value = text.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise UserError(f"VNC address {value!r} is not an IP address: use 127.0.0.1 (this host) or 0.0.0.0") from None
    return value


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


def _metrics(flags: Mapping[str, Any], env: Mapping[str, str]) -> tuple[int | None, str]:
    """The metrics endpoint's port (None: off) and address, checked free. Raises :class:`UserError`."""
    import ipaddress

    address = str(_pick("metrics_address", flags, env) or "127.0.0.1").strip()
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise UserError(f"metrics address {address!r} is not an IP address: use 127.0.0.1 or 0.0.0.0") from None
    value = _pick("metrics_port", flags, env)
    if value is None or str(value).strip() == "":
        return None, address
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UserError(f"metrics port {text!r} is not a TCP port: use for example 9108")
    port = int(text)
    error = bind_error(address, port)
    if error is not None:
        raise UserError(
            f"metrics port {port} on {address} cannot be used ({error.strerror}): choose another --metrics-port"
        )
    return port, address
