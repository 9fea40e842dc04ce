"""From a configuration and a Windows ISO to what an unattended install needs: the answer settings and drivers.

Everything here reads and checks; nothing is written, so a refused install leaves no trace. The answer medium
itself is written by :mod:`winarm.answer.medium` once the VM is locked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winarm.answer.settings import AnswerSettings, check_settings
from winarm.config.timezone import host_timezone
from winarm.config.vm import Config
from winarm.config.windows import language_tag
from winarm.errors import UserError
from winarm.media.drivers import (
    DriverRequest,
    DriverSelection,
    devices_in_argv,
    pick_drivers,
    resolve_tree,
    tree_version,
)
from winarm.media.iso import Edition, InstallImage, IsoInfo, inspect_iso

WINDOWS_11_FIRST_BUILD = 22000


@dataclass(frozen=True)
class InstallPlan:
    """The ISO's facts, the answer-file settings and the drivers for one install."""

    info: IsoInfo
    edition: Edition
    settings: AnswerSettings
    selection: DriverSelection

    @property
    def image(self) -> InstallImage | None:
        """What applying the chosen edition writes and reads (None when the image gives no TOTALBYTES)."""
        return self.info.install_image(self.edition)


def choose_edition(info: IsoInfo, wanted: str | None) -> Edition:
    """The edition by index (``2``) or name (``Windows 11 Pro``, any case), or the ISO's default (the first
    Pro edition). Raises :class:`UserError` listing what the ISO offers."""
    if wanted is None:
        return info.default_edition()
    offered = ", ".join(f"{e.index} ({e.name})" for e in info.editions)
    if wanted.strip().isdigit():
        match = [e for e in info.editions if e.index == int(wanted)]
    else:
        match = [e for e in info.editions if e.name.lower() == wanted.strip().lower()]
    if not match:
        raise UserError(f"edition {wanted!r} is not on this ISO: choose one of {offered}")
    return match[0]


def windows_version(edition: Edition) -> str:
    """``11`` from build 22000 on, else ``10``."""
    build = edition.build_number
    return "11" if build is not None and build >= WINDOWS_11_FIRST_BUILD else "10"


def choose_ui_language(edition: Edition, language: str, wanted: str | None) -> str:
    """The display language for ``edition``: ``wanted`` (``--ui-language``) when given, else ``language`` when the
    image has it, else the image's default language. An image that names no languages has every one (unknown,
    so nothing is refused). Raises :class:`UserError` for an unknown tag, and for a ``wanted`` the image lacks
    (Setup would stop at its language page), naming the languages it has."""
    have = {tag.lower(): tag for tag in edition.languages}
    if wanted is not None:
        tag = language_tag(wanted, "UI language")
        if have and tag.lower() not in have:
            fallback = edition.default_language or edition.languages[0]
            raise UserError(
                f"UI language {tag} is not in edition {edition.index} ({edition.name}) of this ISO, which has "
                f"{', '.join(edition.languages)}: pass --ui-language {fallback} or use an ISO in {tag}"
            )
        return tag
    tag = language_tag(language, "language")
    if not have or tag.lower() in have:
        return tag
    return edition.default_language or edition.languages[0]


def answer_settings(cfg: Config, *, edition: Edition, has_drivers: bool) -> AnswerSettings:
    """The answer-file settings a configuration asks for. Raises :class:`UserError` for values Windows
    refuses (username, computer name, language...)."""
    settings = AnswerSettings(
        windows=windows_version(edition),
        username=cfg.username,
        password=cfg.password,
        computer_name=cfg.computer_name,
        language=cfg.language,
        ui_language=choose_ui_language(edition, cfg.language, cfg.ui_language),
        keyboard=cfg.keyboard,
        edition_index=edition.index,
        product_key=cfg.product_key,
        timezone=cfg.timezone or host_timezone(),
        drivers_pass=cfg.drivers_pass,
        has_drivers=has_drivers,
        shares=tuple(share.name for share in cfg.share.shares) if cfg.share else (),
        share_user=cfg.share.user if cfg.share else None,
        share_password=cfg.share.password if cfg.share else None,
    )
    check_settings(settings)
    return settings


def attached_devices(cfg: Config) -> frozenset[str]:
    """The QEMU device types this configuration's VM attaches, read from the very command line it would start
    (:func:`winarm.qemu.argv.build_argv`, pure, with placeholder firmware and sockets)."""
    from winarm.config.paths import VmPaths
    from winarm.qemu.argv import Endpoints, build_argv
    from winarm.qemu.firmware import Firmware

    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    firmware = Firmware("placeholder", Path("code.fd"), Path("vars.fd"), cfg.secure_boot, Path("firmware.json"))
    argv = build_argv(cfg, firmware, paths, Endpoints(qmp=paths.qmp_socket, serial=paths.serial_socket),
                      media=[Path("install.iso"), Path("answer.iso")], tpm_socket=paths.tpm_socket if cfg.tpm else None,
                      share_port=1 if cfg.share else None)
    return devices_in_argv(argv)


def select_drivers(cfg: Config, windows: str) -> DriverSelection:
    """The drivers from ``--drivers`` for the devices this VM attaches; without it, only an NVMe disk can be
    installed to (Windows has its NVMe driver; a virtio disk is invisible to Setup). Raises :class:`UserError`
    (see :func:`pick_drivers`: with Secure Boot on, a storage driver Microsoft did not sign is refused)."""
    if cfg.drivers is None:
        if cfg.disk_bus != "nvme":
            raise UserError(
                f"no virtio drivers given: Setup cannot see a {cfg.disk_bus} disk without them; pass --drivers "
                "(the virtio-win ISO or its extracted folder, env DRIVERS) or use --disk-bus nvme"
            )
        return DriverSelection()
    tree = resolve_tree(cfg.drivers, cfg.storage)
    request = DriverRequest(windows=windows, disk_bus=cfg.disk_bus, drivers_pass=cfg.drivers_pass,
                            devices=attached_devices(cfg), secure_boot=cfg.secure_boot,
                            version=tree_version(cfg.drivers))
    return pick_drivers(tree, request)


def plan_install(cfg: Config, facts: dict[str, Any]) -> InstallPlan | None:
    """What the install needs, or None when there is nothing to install (no ISO, or the install already
    completed on this disk). Raises :class:`UserError` for a bad ISO, edition, setting or driver tree."""
    if cfg.iso is None or facts.get("install_complete"):
        return None
    info = inspect_iso(cfg.iso)
    edition = choose_edition(info, cfg.edition)
    selection = select_drivers(cfg, windows_version(edition))
    settings = answer_settings(cfg, edition=edition, has_drivers=bool(selection.others))
    return InstallPlan(info, edition, settings, selection)
