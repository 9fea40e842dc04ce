"""``winarm testbed``: build the test guest that plays Windows (for tests, benchmarks and the demo).

The guest's builders live in ``winarm_testbed``, a distribution of its own that a development install has
(``make venv``) and winarm's runtime install (``pip install .``, the container image) has not: there each
command says how to install it, in one line, and exits with status 2.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import click

from winarm.errors import UserError, WinarmError

INSTALL_HINT = ("winarm testbed needs the test guest package winarm_testbed, which is not installed: "
                "in a winarm source tree run 'make venv', or 'pip install -e ./winarm_testbed'")


@click.group()
def testbed() -> None:
    """The test guest: a real arm64 Linux that boots through winarm like an installer."""


def _cache_dir(cache: Path | None) -> Path:
    return cache or Path(os.environ.get("WINARM_CACHE") or Path.home() / ".cache" / "winarm")


def _fail(error: WinarmError) -> NoReturn:
    """Print ERROR as one line and exit with its status (1 for a failed build, 2 for a missing testbed)."""
    click.echo(f"winarm: {error}", err=True)
    sys.exit(error.exit_code)


def _require_testbed() -> None:
    """Return when winarm_testbed can be imported; else print :data:`INSTALL_HINT` and exit with status 2."""
    try:
        importlib.import_module("winarm_testbed")
    except ModuleNotFoundError as error:
        if error.name != "winarm_testbed":
            raise
        _fail(UserError(INSTALL_HINT))


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

    try:
        if plain:
            iso = build_guest(_cache_dir(cache), force=force, log=log)
        else:
            iso = build_windows_testbed(_cache_dir(cache), force=force, log=log)
    except WinarmError as error:
        _fail(error)
    click.echo(str(iso))


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
