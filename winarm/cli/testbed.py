"""``winarm testbed``: build the test guest that plays Windows (for tests, benchmarks and the demo).

The guest's builders live in ``winarm_testbed``, a distribution of its own that a development install has
(``make venv``) and winarm's runtime install (``pip install .``, the container image) has not: there each
command says how to install it, in one line, and exits with status 2.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import click

from winarm.config.values import Values
from winarm.errors import UserError

INSTALL_HINT = ("winarm testbed needs the test guest package winarm_testbed, which is not installed: "
                "in a winarm source tree run 'make venv', or 'pip install -e ./winarm_testbed'")


@click.group()
def testbed() -> None:
    """The test guest: a real arm64 Linux that boots through winarm like an installer."""


def _cache_dir(cache: Path | None) -> Path:
    """``--cache``, else the settings table's ``cache`` (``WINARM_CACHE``), else ``~/.cache/winarm``."""
    chosen = Values({"cache": cache}, os.environ)["cache"]
    return Path(chosen) if chosen else Path.home() / ".cache" / "winarm"


def _require_testbed() -> None:
    """Return when winarm_testbed can be imported; else raise :class:`UserError` with :data:`INSTALL_HINT` (the
    CLI's error handler prints it as one line, status 2). A failed build's own error is a RuntimeFailure (1)."""
    try:
        importlib.import_module("winarm_testbed")
    except ModuleNotFoundError as error:
        if error.name != "winarm_testbed":
            raise
        raise UserError(INSTALL_HINT) from None


@testbed.command("build")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Cache directory [env WINARM_CACHE; default ~/.cache/winarm].")
@click.option("--force", is_flag=True, help="Rebuild even when a cached build matches.")
@click.option("--plain", is_flag=True, help="The plain guest ISO (no Windows shape, no Setup play) instead.")
def testbed_build(cache: Path | None, force: bool, plain: bool) -> None:
    """Build (or reuse) the Windows-shaped test ISO from Debian packages; print its path last."""
    _require_testbed()
    from winarm_testbed.guest import build_guest
    from winarm_testbed.windows_iso import build_windows_testbed

    def log(line: str) -> None:
        click.echo(line, err=True)

    build = build_guest if plain else build_windows_testbed
    click.echo(str(build(_cache_dir(cache), force=force, log=log)))


@testbed.command("drivers")
@click.option("--cache", type=click.Path(path_type=Path), default=None,
              help="Cache directory [env WINARM_CACHE; default ~/.cache/winarm].")
def testbed_drivers(cache: Path | None) -> None:
    """Write a placeholder virtio-win tree (real layout and names, not real drivers); print its path."""
    _require_testbed()
    from winarm_testbed.virtio_tree import make_fake_virtio_tree

    target = _cache_dir(cache) / "virtio-win-placeholder"
    if not target.is_dir():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        make_fake_virtio_tree(partial)
        partial.rename(target)
    click.echo(str(target))
