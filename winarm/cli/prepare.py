"""``winarm prepare``: build the answer medium for an install without booting anything."""

from __future__ import annotations

import os
from typing import Any

import click

from winarm.cli.iso import fetch_iso
from winarm.cli.options import options
from winarm.config.table import PREPARE
from winarm.config.vm import load_config
from winarm.errors import UserError


@click.command()
@options(*PREPARE)
def prepare(**flags: Any) -> None:
    """Build (or reuse) the answer medium for an install: Autounattend.xml and the drivers, beside the ISO.

    Prints the medium's path last. The user's ISO is only read, never changed; one that carries its own
    Autounattend.xml at its root is warned about (Setup may use it instead of winarm's).
    """
    from winarm.answer.medium import build_answer_medium
    from winarm.answer.plan import plan_install
    from winarm.config import host
    from winarm.media.iso_answer import warn_answer_file

    # the disk is not made here: a nominal size keeps the free-space check out of the way
    cfg = fetch_iso(load_config({**flags, "unattend": True, "disk_size": "64M"}, os.environ, host.probe()))
    if cfg.iso is None:
        raise UserError("prepare needs --iso (env BOOT): the Windows for ARM64 ISO to install from")
    plan = plan_install(cfg, {})
    if plan is None:  # pragma: no cover - plan_install returns None only without an ISO
        raise UserError("nothing to prepare")
    warn_answer_file(plan.info, cfg.iso)
    cfg.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    medium, built = build_answer_medium(cfg.state_dir, plan.settings, plan.selection)
    click.echo(f"edition: {plan.edition.index} {plan.edition.name} (build {plan.edition.build}), "
               f"Windows {plan.settings.windows}", err=True)
    click.echo(f"UI language: {plan.settings.ui_language}; locales: {plan.settings.language} (the edition has "
               f"{', '.join(plan.edition.languages) or 'no languages named'})", err=True)
    for line in plan.selection.lines(cfg.drivers_pass):
        click.echo(line, err=True)
    for line in plan.selection.warnings():
        click.echo(f"winarm: warning: {line}", err=True)
    click.echo("built" if built else "cached (nothing to build)", err=True)
    click.echo(str(medium))
