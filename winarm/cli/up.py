"""``winarm up``: boot the VM and supervise it until it stops."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from winarm.cli.iso import fetch_iso, planned_iso
from winarm.cli.main import T0
from winarm.cli.options import options
from winarm.config.paths import VmPaths
from winarm.config.table import UP
from winarm.config.vm import Config, load_config


@click.command()
@options(*UP)
@click.option("--console", "echo_console", is_flag=True, help="Copy the guest's serial console to stderr.")
@click.option("--dry-run", is_flag=True, help="Print the QEMU command line, one argument per line, and exit.")
def up(echo_console: bool, dry_run: bool, **flags: Any) -> None:
    """Boot the VM and supervise it until it stops (SIGTERM/SIGINT or 'winarm down' stop it gracefully)."""
    from winarm.config import host

    cfg = load_config(flags, os.environ, host.probe())
    for note in cfg.notes:
        click.echo(f"winarm: note: {note}", err=True)
    if dry_run:
        print_argv(planned_iso(cfg))
        return
    cfg = fetch_iso(cfg)
    from winarm.vm.launch import launch

    launched = launch(cfg, T0)  # QEMU starts here, before the event loop and QMP are even imported
    import asyncio

    from winarm.vm.supervisor import supervise

    sys.exit(asyncio.run(supervise(launched, out=sys.stdout, echo_console=echo_console)))


def print_argv(cfg: Config) -> None:
    """Print the QEMU command line ``cfg`` would start, one argument per line. The Windows build (the GIC's ITS)
    is the one this disk's install remembered; an ISO is not read for it here."""
    from winarm.qemu.argv import Endpoints, build_argv
    from winarm.qemu.firmware import find_firmware
    from winarm.services.smbd import free_port
    from winarm.vm.facts import known_build

    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    argv = build_argv(
        cfg,
        find_firmware(cfg.secure_boot),
        paths,
        Endpoints(qmp=paths.qmp_socket, serial=paths.serial_socket),
        media=[cfg.iso] if cfg.iso else [],
        tpm_socket=paths.tpm_socket if cfg.tpm else None,
        share_port=(cfg.share.port or free_port()) if cfg.share else None,
        windows_build=known_build(paths),
    )
    for arg in argv:
        click.echo(arg)
