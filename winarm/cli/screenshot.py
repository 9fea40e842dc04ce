"""``winarm screenshot``: save a running VM's screen as a PNG."""

from __future__ import annotations

import os
from pathlib import Path

import click

from winarm.cli.options import options, vm_paths
from winarm.config.table import VM
from winarm.errors import RuntimeFailure, UserError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ASK_TIMEOUT = 30.0
"""Seconds the daemon gets to take the screen and encode it (milliseconds on an idle host)."""


@click.command()
@options(*VM)
@click.argument("file", metavar="FILE.png", type=click.Path(path_type=Path))
def screenshot(name: str | None, storage: str | None, file: Path) -> None:
    """Save the running VM's screen to FILE.png (PNG), at any time: during Setup, at a stall, on the desktop."""
    from winarm.vm.control import ask

    check_target(file)
    vm, paths = vm_paths(name, storage)
    reply = ask(paths.control_socket, "screenshot", timeout=ASK_TIMEOUT)
    if reply is None:
        raise RuntimeFailure(f"VM {vm!r} is not running: there is no screen to save (start it with winarm up)")
    if not reply.get("ok"):
        raise RuntimeFailure(f"VM {vm!r}: no screenshot: {reply.get('error', 'the daemon gave no reason')}")
    copy_png(Path(str(reply.get("path"))), paths.run_dir, file)
    click.echo(f"{file} ({reply.get('width')}x{reply.get('height')})")


def check_target(file: Path) -> None:
    """Refuse, before the VM is asked, a FILE that cannot become the PNG: not named ``.png``, a directory, in a
    folder that does not exist or cannot be written. Raises :class:`UserError` naming FILE."""
    if file.suffix.lower() != ".png":
        raise UserError(f"screenshot file {str(file)!r} does not end in .png: name it like screen.png")
    if file.is_dir():
        raise UserError(f"screenshot file {str(file)!r} is a directory: give a file name ending in .png")
    folder = file.parent
    if not folder.is_dir():
        raise UserError(f"screenshot file {str(file)!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (file.exists() and not os.access(file, os.W_OK)):
        raise UserError(f"screenshot file {str(file)!r} is not writable: check its folder's permissions or "
                        "choose another place")


def copy_png(made: Path, run_dir: Path, file: Path) -> None:
    """Move the PNG the daemon wrote (``made``, which must be in ``run_dir``) to ``file`` (atomically); the
    daemon's file is deleted either way. Raises :class:`RuntimeFailure` when the daemon's answer names another
    place or no PNG, :class:`UserError` when ``file`` cannot be written."""
    from winarm.files import write_atomic

    if made.parent != run_dir:
        raise RuntimeFailure(f"the daemon named {str(made)!r}, outside its run directory {str(run_dir)!r}")
    try:
        data = made.read_bytes()
    except OSError as error:
        raise RuntimeFailure(f"cannot read the daemon's screenshot {str(made)!r}: {error.strerror}") from None
    finally:
        made.unlink(missing_ok=True)
    if not data.startswith(PNG_MAGIC):
        raise RuntimeFailure(f"the daemon's screenshot {str(made)!r} is not a PNG")
    write_atomic(file, data, mode=0o644, what="screenshot file")
