"""``winarm up``: boot the VM and supervise it until it stops."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from winarm.cli.iso import fetch_iso, planned_iso
from winarm.cli.main import T0
from winarm.cli.options import options
from winarm.config.paths import VmPaths
from winarm.config.table import UP
from winarm.config.vm import Config, load_config
from winarm.errors import UserError


@click.command()
@options(*UP)
@click.option("--console", "echo_console", is_flag=True, help="Copy the guest's serial console to stderr.")
@click.option("--dry-run", is_flag=True, help="Print the QEMU command line, one argument per line, and exit.")
def up(echo_console: bool, dry_run: bool, **flags: Any) -> None:
    """Boot the VM and supervise it until it stops (SIGTERM/SIGINT or 'winarm down' stop it gracefully)."""
    from winarm.config import host

    cfg = load_config(flags, os.environ, host.probe())
    if not dry_run:
        check_something_to_boot(cfg)
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


def check_something_to_boot(cfg: Config) -> None:
    """Refuse a VM that has nothing to boot: no install ISO (a path or a URL) and no installed disk. A disk is
    installed when it has booted an OS under winarm (``disk_booted`` or ``install_complete`` in ``vm.json``) or
    holds data of its own (an image brought from elsewhere). Writes nothing. Raises :class:`UserError`."""
    from winarm.vm.firmware_watch import FIRMWARE_ONLY_ENV

    if cfg.iso is not None or cfg.iso_url is not None or os.environ.get(FIRMWARE_ONLY_ENV) == "1":
        return
    from winarm.vm.facts import read_facts

    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    facts = read_facts(paths)
    if facts.get("disk_booted") or facts.get("install_complete") or disk_holds_data(paths.disk, cfg.disk_format):
        return
    disk = f"its disk {paths.disk} is blank" if paths.disk.exists() else "it has no disk yet"
    raise UserError(f"nothing to boot: VM {cfg.name!r} has no OS installed ({disk}) and no ISO was given: give "
                    "--iso with an ARM64 Windows ISO (a path or a URL) to install it")


def disk_holds_data(image: Path, image_format: str) -> bool:
    """Whether the disk image holds any data: a qcow2 image with a cluster allocated (``qemu-img map``), a raw
    image with a non-zero byte in its first MiB. False when there is no image, or qemu-img cannot read it."""
    if not image.is_file():
        return False
    if image_format == "raw":
        with image.open("rb") as handle:
            return any(handle.read(1 << 20))
    import json
    import subprocess

    result = subprocess.run(["qemu-img", "map", "-U", "--output=json", "-f", image_format, str(image)],
                            capture_output=True, check=False)
    try:
        extents = json.loads(result.stdout) if result.returncode == 0 else []
    except ValueError:
        return False
    return any(isinstance(e, dict) and e.get("data") for e in extents)
