"""The virtio driver catalog (``drivers/catalog.json``) and picking its files from a virtio-win tree or ISO.

Which driver goes where is data: the boot-critical storage driver of the chosen disk bus goes into
``$WinPEDriver$`` (Setup loads it in windowsPE, so it can see the disk at all); every other driver is
installed in the pass the user chose (specialize by default), or with ``windowsPE`` all of them go to
``$WinPEDriver$``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from winarm.data import data_dir
from winarm.errors import UserError

ARCH_FOLDER = "ARM64"


DRIVER_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Driver:
    """One catalog entry."""

    name: str
    folder: str
    inf: str
    device: str
    bus: str | None
    windows: tuple[str, ...]
    order: int


@dataclass(frozen=True)
class PickedDriver:
    """A catalog driver with the folder its files were found in."""

    driver: Driver
    source: Path

    @property
    def files(self) -> list[Path]:
        """The driver's files (INF, SYS, CAT, ...), sorted, no sub-folders. Only plain names are taken (what
        virtio-win ships): a name with other characters could not be written to the answer medium as it is,
        and no driver package needs one."""
        return sorted(p for p in self.source.iterdir() if p.is_file() and DRIVER_FILE_RE.fullmatch(p.name))


@dataclass
class DriverSelection:
    """The drivers for one install: ``boot_critical`` for ``$WinPEDriver$``, ``others`` for the chosen pass."""

    boot_critical: list[PickedDriver] = field(default_factory=list)
    others: list[PickedDriver] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Catalog drivers for this Windows version that the tree did not have (said to the user, not fatal)."""


def load_catalog(path: Path | None = None) -> list[Driver]:
    """The catalog, sorted by install order. Raises :class:`UserError` for an unreadable or malformed file."""
    source = path or data_dir("drivers") / "catalog.json"
    try:
        entries = json.loads(source.read_text())["drivers"]
        drivers = [
            Driver(e["name"], e["folder"], e["inf"], e["device"], e.get("bus"), tuple(e["windows"]), int(e["order"]))
            for e in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"driver catalog {source} cannot be read ({exc}): reinstall winarm") from None
    return sorted(drivers, key=lambda d: d.order)


def storage_driver_for(bus: str, catalog: list[Driver]) -> Driver | None:
    """The boot-critical driver of a disk bus (None for NVMe: Windows has its own)."""
    return next((d for d in catalog if d.bus == bus), None)


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


def pick_drivers(tree: Path, *, windows: str, disk_bus: str, drivers_pass: str,
                 catalog: list[Driver] | None = None) -> DriverSelection:
    """Choose the driver folders for an install from an extracted virtio-win ``tree``.

    Raises :class:`UserError` when the tree is not a directory, or lacks the boot-critical storage driver
    (Setup could not see the disk without it). Other missing drivers are listed in ``missing``.
    """
    if not tree.is_dir():
        raise UserError(f"drivers {str(tree)!r} is not a directory or a virtio-win ISO: give --drivers the virtio-win "
                        "ISO or its extracted folder")
    entries = catalog if catalog is not None else load_catalog()
    selection = DriverSelection()
    storage = storage_driver_for(disk_bus, entries)
    for driver in entries:
        if windows not in driver.windows:
            continue
        if driver.bus is not None and driver is not storage:
            continue  # another bus's storage driver: not needed
        folder = _find_folder(tree, driver, windows)
        if folder is None:
            if driver is storage:
                raise UserError(
                    f"drivers {str(tree)!r} has no {driver.name} for Windows {windows} ARM64 "
                    f"({driver.folder}/w{windows}/{ARCH_FOLDER}/{driver.inf}): Setup would not see a {disk_bus} "
                    "disk without it; use a newer virtio-win or --disk-bus nvme"
                )
            selection.missing.append(driver.name)
            continue
        picked = PickedDriver(driver, folder)
        if driver is storage or drivers_pass == "windowsPE":
            selection.boot_critical.append(picked)
        else:
            selection.others.append(picked)
    return selection


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


def resolve_tree(source: Path, scratch: Path | None = None) -> Path:
    """A virtio-win folder as given, or the driver folders extracted from a virtio-win ISO into ``scratch``
    (a new temporary folder when None)."""
    if source.is_file():
        return extract_iso_tree(source, scratch or Path(tempfile.mkdtemp(prefix="winarm-virtio-")))
    return source


def copy_folder(src: Path, dest: Path) -> None:
    """Copy one driver folder's files (no sub-folders) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file():
            shutil.copyfile(item, dest / item.name)
