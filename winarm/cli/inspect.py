"""``winarm inspect ISO [--json]``: what an install ISO holds, read in milliseconds without reading the image.

An ``Autounattend.xml`` at the ISO's root (Setup may use it instead of winarm's answer file, see
:mod:`winarm.media.iso_answer`) is said in one ``winarm: warning:`` line on stderr, and listed as
``answer_files`` in the JSON.

Exit status: 0 the ISO is usable (or, with ``--json``, was read at all: an x64 ISO is printed with its arch);
2 with one line ``winarm: ...`` on stderr for a file that is not usable Windows for ARM64 media.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from winarm.media.iso import Edition

__all__ = ["inspect"]


@click.command("inspect")
@click.argument("iso", type=click.Path(path_type=Path, dir_okay=True, exists=False))
@click.option("--json", "as_json", is_flag=True, help='Print {"arch", "image", "editions": [...]} as JSON.')
def inspect(iso: Path, as_json: bool) -> None:
    """Show an install ISO's architecture, install image and editions (index, name, build, arch, UI languages:
    the default one first, marked with a star; "-" when the image names none)."""
    from winarm.media.iso import inspect_iso
    from winarm.media.iso_answer import warn_answer_file

    info = inspect_iso(iso, require_arm64=not as_json)
    warn_answer_file(info, iso)
    if as_json:
        click.echo(json.dumps(info.as_json(), indent=2, ensure_ascii=False))
        return
    default = info.default_edition()
    click.echo(f"ISO:      {iso}")
    click.echo(f"arch:     {info.arch}")
    click.echo(f"image:    {info.image}")
    click.echo(f"editions: {len(info.editions)} (default: {default.index} {default.name})")
    rows = [("index", "name", "build", "arch", "languages")]
    rows += [(str(e.index), e.name, e.build or "-", e.arch, _languages(e)) for e in info.editions]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].rjust(widths[0])] + [cell.ljust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        click.echo("  ".join(cells).rstrip())


def _languages(edition: Edition) -> str:
    """``en-US*,de-DE``: the default language first with a star, then the others in the image's order; ``-``
    when the image names none."""
    default = edition.default_language
    if default is None:
        return "-"
    return ",".join([f"{default}*", *(tag for tag in edition.languages if tag != default)])
