"""Finding the aarch64 UEFI firmware through QEMU's firmware descriptors (QEMU docs/interop/firmware.json).

Distributions describe their firmware builds in JSON files under ``/usr/share/qemu/firmware`` (overridden by
``/etc/qemu/firmware`` and ``~/.config/qemu/firmware`` with the same file name). Reading them, rather than
hard-coding paths, keeps winarm working on any distribution that ships AAVMF/edk2 for aarch64.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winarm.errors import RuntimeFailure, UserError


def descriptor_dirs() -> list[Path]:
    """The search path, highest priority first; ``WINARM_FIRMWARE_DIRS`` (colon-separated) replaces it."""
    explicit = os.environ.get("WINARM_FIRMWARE_DIRS")
    if explicit:
        return [Path(p) for p in explicit.split(":") if p]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [config_home / "qemu" / "firmware", Path("/etc/qemu/firmware"), Path("/usr/share/qemu/firmware")]


@dataclass(frozen=True)
class Firmware:
    """One usable firmware build: read-only code, and the template its per-VM variables are copied from."""

    description: str
    code: Path
    vars_template: Path
    secure_boot: bool
    source: Path


def _read(path: Path) -> dict[str, Any] | None:
    """The descriptor's JSON object, or None when it is unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fits_virt(data: dict[str, Any]) -> bool:
    """Whether the descriptor is UEFI on flash for an aarch64 ``virt`` machine."""
    if "uefi" not in data.get("interface-types", []):
        return False
    if data.get("mapping", {}).get("device") != "flash":
        return False
    return any(
        t.get("architecture") == "aarch64"
        and any(fnmatch.fnmatch("virt", m.replace("-*", "*")) for m in t.get("machines", []))
        for t in data.get("targets", [])
    )


def _flash_files(mapping: dict[str, Any]) -> tuple[Path, Path] | None:
    """``(code, vars template)`` of a flash mapping, or None when either is missing or the code is not raw."""
    try:
        code = Path(mapping["executable"]["filename"])
        template = Path(mapping["nvram-template"]["filename"])
    except (KeyError, TypeError):
        return None
    if mapping["executable"].get("format", "raw") != "raw":
        return None
    return code, template


def _load(path: Path) -> Firmware | None:
    """The firmware a descriptor names, if it is aarch64 UEFI on flash for the virt machine; else None."""
    data = _read(path)
    if data is None or not _fits_virt(data):
        return None
    files = _flash_files(data["mapping"])
    if files is None:
        return None
    features = data.get("features", [])
    secure = "secure-boot" in features and "enrolled-keys" in features
    if "secure-boot" in features and not secure:
        return None  # secure boot without keys enrolled boots nothing useful
    return Firmware(str(data.get("description", path.name)), *files, secure, path)


def find_firmware(secure_boot: bool, dirs: list[Path] | None = None) -> Firmware:
    """Pick the firmware: with Secure Boot and Microsoft keys enrolled when ``secure_boot``, else without.

    Descriptors are taken in file-name order across the search path, a name in an earlier directory hiding
    the same name later, as QEMU's interop spec says. Raises :class:`RuntimeFailure` when none fits, with the
    Debian package to install.
    """
    by_name: dict[str, Path] = {}
    for directory in dirs if dirs is not None else descriptor_dirs():
        if not directory.is_dir():
            continue
        for entry in sorted(directory.glob("*.json")):
            by_name.setdefault(entry.name, entry)
    candidates = [fw for name in sorted(by_name) if (fw := _load(by_name[name])) is not None]
    usable = [fw for fw in candidates if fw.code.is_file() and fw.vars_template.is_file()]
    for fw in usable:
        if fw.secure_boot == secure_boot:
            return fw
    if secure_boot and usable:
        raise UserError(
            "no aarch64 firmware with Secure Boot and enrolled keys was found: use --no-secure-boot "
            "or install one (Debian: qemu-efi-aarch64)"
        )
    raise RuntimeFailure(
        "no aarch64 UEFI firmware found in "
        + ", ".join(str(d) for d in (dirs if dirs is not None else descriptor_dirs()))
        + ": install it (Debian: apt-get install qemu-efi-aarch64)"
    )


def ensure_vars(fw: Firmware, target: Path) -> bool:
    """Give the VM its own writable copy of the UEFI variables at ``target`` (boot entries live there).

    Copies the template only when ``target`` is missing, through a temporary file renamed into place, so an
    interrupted copy never leaves a half-written store. Returns True when a copy was made.
    """
    if target.exists():
        return False
    partial = target.with_name(target.name + ".partial")
    try:
        shutil.copyfile(fw.vars_template, partial)
        os.chmod(partial, 0o600)
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise RuntimeFailure(f"cannot write the UEFI variables {target}: {error.strerror}") from None
    return True
