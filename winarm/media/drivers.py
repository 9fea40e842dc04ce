"""The virtio driver catalog (``drivers/catalog.json``) and picking its files from a virtio-win tree or ISO.

Which driver goes where is data: a driver is installed only when the VM has its device attached (each catalog
entry names its QEMU device; the devices come from the VM's own QEMU command line), the boot-critical storage
driver of the chosen disk bus goes into ``$WinPEDriver$`` (Setup loads it in windowsPE, so it can see the disk
at all), and every other driver is installed in the pass the user chose (specialize by default), or with
``windowsPE`` all of them go to ``$WinPEDriver$`` except those the catalog keeps out of it (``"winpe": false``:
the display driver, which leaves Setup's screen black). Each picked driver's catalog signature is read
(:mod:`winarm.media.signature`): with Secure Boot on, a boot-critical driver Microsoft did not sign is refused.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from winarm.data import data_dir
from winarm.errors import UserError

if TYPE_CHECKING:
    from winarm.media.signature import CatalogSignature, Signers

ARCH_FOLDER = "ARM64"


DRIVER_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VERSION_RE = re.compile(r"virtio-win[-_ ]?(\d+(?:\.\d+){1,3})", re.IGNORECASE)
"""A virtio-win release in a name: the ISO's file name or volume label, or the extracted folder's name."""


@dataclass(frozen=True)
class Driver:
    """One catalog entry. ``winpe`` False keeps it out of ``$WinPEDriver$`` in every mode; ``arm64_since`` is
    the first virtio-win release with an ARM64 build of it (None: every release winarm knows). ``device`` in
    the JSON is one QEMU device type or a list of them."""

    name: str
    folder: str
    inf: str
    devices: tuple[str, ...]
    """The QEMU device types the driver is for (any one attached is enough)."""
    bus: str | None
    windows: tuple[str, ...]
    order: int
    winpe: bool = True
    arm64_since: str | None = None


@dataclass(frozen=True)
class PickedDriver:
    """A catalog driver with the folder its files were found in and its catalog's signature (None when not
    read)."""

    driver: Driver
    source: Path
    signature: CatalogSignature | None = None

    @property
    def files(self) -> list[Path]:
        """The driver's files (INF, SYS, CAT, ...), sorted, no sub-folders. Only plain names are taken (what
        virtio-win ships): a name with other characters could not be written to the answer medium as it is,
        and no driver package needs one."""
        return sorted(p for p in self.source.iterdir() if p.is_file() and DRIVER_FILE_RE.fullmatch(p.name))


@dataclass(frozen=True)
class LeftOut:
    """A catalog driver not installed, and why (words that complete "left out NAME: ...")."""

    name: str
    reason: str


@dataclass
class DriverSelection:
    """The drivers for one install: ``boot_critical`` for ``$WinPEDriver$``, ``others`` for the chosen pass."""

    boot_critical: list[PickedDriver] = field(default_factory=list)
    others: list[PickedDriver] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Drivers whose device is attached but that the tree did not have (said to the user, not fatal)."""
    left_out: list[LeftOut] = field(default_factory=list)
    """Every catalog driver not installed, with the reason (the missing ones too)."""
    version: str | None = None
    """The virtio-win release of the tree, when its name tells (see :func:`tree_version`)."""
    secure_boot: bool = True

    def lines(self, drivers_pass: str) -> list[str]:
        """One line per catalog driver: where each picked one goes and its signature verdict, and why each other
        one was left out."""
        said = [f"driver {p.driver.name}: {WINPE_FOLDER}, {_verdict(p)}" for p in self.boot_critical]
        said += [f"driver {p.driver.name}: {drivers_pass}, {_verdict(p)}" for p in self.others]
        return said + [f"driver {item.name} left out: {item.reason}" for item in self.left_out]

    def warnings(self) -> list[str]:
        """One line per picked driver Windows would not load with Secure Boot on (none with it off)."""
        if not self.secure_boot:
            return []
        return [_warning(p.driver.name, p.signature) for p in (*self.boot_critical, *self.others)
                if p.signature is not None and not p.signature.microsoft]


def _warning(name: str, signature: CatalogSignature) -> str:
    """The warning for a driver Windows may not load with Secure Boot on (see :meth:`DriverSelection.warnings`)."""
    if signature.refused:
        return (f"{name} is not signed by Microsoft ({signature.found}): with Secure Boot on Windows will not load "
                "it; use Microsoft-signed virtio-win drivers or --no-secure-boot")
    return (f"{name}'s signature could not be verified here ({signature.found}): should Windows not load it with "
            "Secure Boot on, start with --no-secure-boot")


WINPE_FOLDER = "windowsPE ($WinPEDriver$)"


def _verdict(picked: PickedDriver) -> str:
    return picked.signature.found if picked.signature is not None else "signature not read"


def _catalog_entry(entry: dict[str, Any]) -> Driver:
    """One JSON entry as a :class:`Driver` (raises KeyError, TypeError or ValueError for a malformed one)."""
    since, device = entry.get("arm64_since"), entry["device"]
    devices = (str(device),) if isinstance(device, str) else tuple(str(d) for d in device)
    if since is not None:
        version_key(str(since))  # a release winarm can compare, or ValueError
    return Driver(str(entry["name"]), str(entry["folder"]), str(entry["inf"]), devices,
                  None if entry.get("bus") is None else str(entry["bus"]), tuple(str(w) for w in entry["windows"]),
                  int(entry["order"]), bool(entry.get("winpe", True)), None if since is None else str(since))


def load_catalog(path: Path | None = None) -> list[Driver]:
    """The catalog, sorted by install order. Raises :class:`UserError` for an unreadable or malformed file."""
    source = path or data_dir("drivers") / "catalog.json"
    try:
        drivers = [_catalog_entry(e) for e in json.loads(source.read_text())["drivers"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"driver catalog {source} cannot be read ({exc}): reinstall winarm") from None
    return sorted(drivers, key=lambda d: d.order)


def storage_driver_for(bus: str, catalog: list[Driver]) -> Driver | None:
    """The boot-critical driver of a disk bus (None for NVMe: Windows has its own)."""
    return next((d for d in catalog if d.bus == bus), None)


def devices_in_argv(argv: Sequence[str]) -> frozenset[str]:
    """The QEMU device types a command line attaches: the name before the first comma of each ``-device``."""
    return frozenset(value.split(",", 1)[0] for flag, value in zip(argv, argv[1:], strict=False) if flag == "-device")


def version_key(version: str) -> tuple[int, ...]:
    """``0.1.285`` as ``(0, 1, 285)``, for comparing releases."""
    return tuple(int(part) for part in version.split("."))


def tree_version(source: Path) -> str | None:
    """The virtio-win release ``source`` is, from its name (``virtio-win-0.1.285.iso``, a folder
    ``virtio-win-0.1.285``) or, for an ISO, its volume label; None when neither says."""
    match = VERSION_RE.search(source.name)
    if match is None and source.is_file():
        import pycdlib
        from pycdlib.pycdlibexception import PyCdlibException

        reader = pycdlib.PyCdlib()
        try:
            reader.open(str(source))
            label = reader.pvd.volume_identifier.decode("ascii", errors="replace")
            reader.close()
        except (PyCdlibException, OSError, ValueError, AttributeError):
            return None
        match = VERSION_RE.search(label)
    return match.group(1) if match else None


def _child(parent: Path, name: str) -> Path | None:
    """The sub-folder of ``parent`` called ``name``, ignoring case (ISOs and Windows trees mix cases)."""
    if not parent.is_dir():
        return None
    return next((p for p in parent.iterdir() if p.is_dir() and p.name.lower() == name.lower()), None)


def _find_folder(tree: Path, driver: Driver, windows: str) -> Path | None:
    """``<tree>/<folder>/<w11|w10>/ARM64`` holding the INF; Windows 11 falls back to the w10 build."""
    base = _child(tree, driver.folder)
    for version in [f"w{windows}"] + (["w10"] if windows == "11" else []):
        arch = _child(_child(base, version) or Path("/nonexistent"), ARCH_FOLDER) if base else None
        if arch is not None and any(p.name.lower() == driver.inf.lower() for p in arch.iterdir()):
            return arch
    return None


def _too_old(driver: Driver, version: str | None) -> str:
    """``; virtio-win V has no ARM64 build of it (from S on)`` when the tree's release predates the driver's
    first ARM64 build, else empty."""
    if driver.arm64_since is None or version is None or version_key(version) >= version_key(driver.arm64_since):
        return ""
    return f"; virtio-win {version} has no ARM64 build of it (ARM64 from {driver.arm64_since} on)"


@dataclass(frozen=True)
class DriverRequest:
    """What an install asks of the driver tree: the Windows version, disk bus, drivers pass, the devices the VM
    attaches, whether Secure Boot is on, and the tree's virtio-win release (None: unknown)."""

    windows: str
    disk_bus: str
    drivers_pass: str
    devices: Collection[str]
    secure_boot: bool = True
    version: str | None = None


def _skip_reason(driver: Driver, storage: Driver | None, request: DriverRequest) -> str | None:
    """Why ``driver`` is not even looked for (None: look for it)."""
    if request.windows not in driver.windows:
        return f"no Windows {request.windows} build in the catalog"
    if driver.bus is not None and driver is not storage:
        return f"the storage driver of a {driver.bus} disk (this VM's disk is {request.disk_bus})"
    if not set(driver.devices) & set(request.devices):
        return f"no {' or '.join(driver.devices)} attached to this VM"
    return None


def _place(selection: DriverSelection, picked: PickedDriver, storage: Driver | None, drivers_pass: str) -> None:
    """Put a found driver where it is installed: ``$WinPEDriver$``, the chosen pass, or left out (a driver kept
    out of ``$WinPEDriver$`` when every driver goes there)."""
    driver = picked.driver
    if driver is storage or (drivers_pass == "windowsPE" and driver.winpe):
        selection.boot_critical.append(picked)
    elif drivers_pass == "windowsPE":
        selection.left_out.append(LeftOut(driver.name, "never from $WinPEDriver$ (Setup's screen would stay black); "
                                                       "install it with --drivers-pass specialize or firstlogon"))
    else:
        selection.others.append(picked)


def pick_drivers(tree: Path, request: DriverRequest, *, catalog: list[Driver] | None = None,
                 signers: Signers | None = None) -> DriverSelection:
    """Choose the driver folders for an install from an extracted virtio-win ``tree``, and read each one's
    catalog signature (``signers``: see :func:`winarm.media.signature.check_catalog`).

    Raises :class:`UserError` when the tree is not a directory, lacks the boot-critical storage driver (Setup
    could not see the disk without it), or, with Secure Boot on, has one Microsoft did not sign (Windows would
    not load it). Drivers left out, with the reason, are in ``left_out``; missing ones in ``missing`` too.
    """
    from winarm.media.signature import check_driver

    if not tree.is_dir():
        raise UserError(f"drivers {str(tree)!r} is not a directory or a virtio-win ISO: give --drivers the virtio-win "
                        "ISO or its extracted folder")
    entries = catalog if catalog is not None else load_catalog()
    selection = DriverSelection(version=request.version, secure_boot=request.secure_boot)
    storage = storage_driver_for(request.disk_bus, entries)
    for driver in entries:
        folder = _find_folder(tree, driver, request.windows)
        reason = _skip_reason(driver, storage, request)
        if reason is not None or folder is None:
            _leave_out(selection, driver, storage=storage, request=request, reason=reason, tree=tree)
            continue
        picked = PickedDriver(driver, folder, check_driver(folder, driver.inf, signers))
        if driver is storage and request.secure_boot and picked.signature and picked.signature.refused:
            raise UserError(
                f"{driver.name}, the {request.disk_bus} storage driver Setup loads in windowsPE, is not signed by "
                f"Microsoft ({picked.signature.found}): with Secure Boot on Windows would not load it; use "
                "Microsoft-signed virtio-win drivers or pass --no-secure-boot"
            )
        _place(selection, picked, storage, request.drivers_pass)
    return selection


def _leave_out(selection: DriverSelection, driver: Driver, *, storage: Driver | None, request: DriverRequest,
               reason: str | None, tree: Path) -> None:
    """Record a driver not installed: skipped for ``reason``, or (None) not found in ``tree``, which for the
    storage driver raises :class:`UserError`. Either way a release too old for its ARM64 build is said."""
    too_old = "" if _find_folder(tree, driver, request.windows) else _too_old(driver, request.version)
    if reason is not None:
        selection.left_out.append(LeftOut(driver.name, reason + too_old))
        return
    if driver is storage:
        raise UserError(
            f"drivers {str(tree)!r} has no {driver.name} for Windows {request.windows} ARM64 "
            f"({driver.folder}/w{request.windows}/{ARCH_FOLDER}/{driver.inf}){too_old}: Setup would not see a "
            f"{request.disk_bus} disk without it; use a newer virtio-win or --disk-bus nvme"
        )
    selection.missing.append(driver.name)
    selection.left_out.append(LeftOut(driver.name, "not in the driver tree" + too_old))


def extract_iso_tree(iso: Path, dest: Path, catalog: list[Driver] | None = None) -> Path:
    """Copy the catalog drivers' ARM64 folders out of a virtio-win ISO into ``dest``; returns ``dest``.

    Reads only those folders (through Joliet names when present). Raises :class:`UserError` for a file that
    is not a readable ISO.
    """
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    wanted = {d.folder.lower() for d in (catalog if catalog is not None else load_catalog())}
    iso_reader = pycdlib.PyCdlib()
    try:
        iso_reader.open(str(iso))
    except (PyCdlibException, OSError, ValueError) as exc:
        raise UserError(
            f"drivers {str(iso)!r} is not a readable ISO ({exc}): give the virtio-win ISO or folder"
        ) from None
    try:
        kind = "joliet_path" if iso_reader.has_joliet() else "iso_path"
        for parent, _dirs, files in iso_reader.walk(**{kind: "/"}):
            parts = [p for p in parent.split("/") if p]
            if not parts or parts[0].lower() not in wanted or ARCH_FOLDER not in (p.upper() for p in parts):
                continue
            target = dest.joinpath(*parts)
            target.mkdir(parents=True, exist_ok=True)
            for name in files:
                clean = name.split(";")[0]
                with (target / clean).open("wb") as out:
                    iso_reader.get_file_from_iso_fp(out, **{kind: f"{parent.rstrip('/')}/{name}"})
    finally:
        iso_reader.close()
    return dest


def resolve_tree(source: Path, storage: Path) -> Path:
    """A virtio-win folder as given, or the driver folders of a virtio-win ISO, extracted once under ``storage``
    (:mod:`winarm.media.driver_cache`). Raises :class:`UserError` for a file that is not a readable ISO."""
    if source.is_file():
        from winarm.media.driver_cache import cached_tree  # here: it imports this module

        return cached_tree(source, storage)
    return source


def copy_folder(src: Path, dest: Path) -> None:
    """Copy one driver folder's files (no sub-folders) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file():
            shutil.copyfile(item, dest / item.name)
