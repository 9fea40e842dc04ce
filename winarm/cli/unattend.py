"""``winarm unattend``: render the answer file, or check one.

Exit status: 0 done (or the file is valid), 1 the file has problems (one per line on stdout) or winarm failed,
2 a user's mistake (a bad value, an unreadable file: one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from winarm.cli.app import WinarmGroup
from winarm.cli.options import options
from winarm.config.table import RENDER
from winarm.config.values import Values
from winarm.errors import EXIT_FAILURE, UserError
from winarm.files import write_atomic

if TYPE_CHECKING:
    from winarm.answer.settings import AnswerSettings

# winarm.answer (and Jinja2) is imported inside the commands: `winarm up` must not pay for it at start-up.


def _edition(text: str | None) -> tuple[int | None, str | None]:
    if text is None:
        return None, None
    value = text.strip()
    if value.isdigit():
        return int(value), None
    return None, value


def write_private(path: Path, text: str) -> None:
    """Write ``text`` (ASCII) to ``path`` atomically, mode 0600. Raises :class:`UserError`."""
    write_atomic(path, text.encode("ascii"), what="--out")


@click.group("unattend", cls=WinarmGroup)
def unattend() -> None:
    """Render or check the Windows Setup answer file (Autounattend.xml)."""


@unattend.command("render")
@options(*RENDER)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the answer file here (atomically, mode 0600: it holds the password) instead of to stdout.",
)
def render_command(out: Path | None, **flags: Any) -> None:
    """Print the answer file for these settings (or write it with --out)."""
    from winarm.answer.render import render

    text = render(answer_settings(Values(flags, os.environ)))
    if out is None:
        click.echo(text, nl=False)
    else:
        write_private(out, text)


def answer_settings(values: Values) -> AnswerSettings:
    """The answer file's settings from the table's values (flags, environment, defaults). Raises
    :class:`UserError` for a bad disk bus, drivers pass or time zone; the answer's own checks come when it is
    rendered."""
    from winarm.answer.settings import AnswerSettings
    from winarm.config.timezone import windows_timezone

    values.check("disk_bus")  # its boot driver goes in $WinPEDriver$, not in the XML
    edition_index, edition_name = _edition(values.text("edition"))
    product_key = values.text("product_key")
    return AnswerSettings(
        windows=str(values["windows"]).strip(),
        username=str(values["username"]),
        password=str(values["password"]),
        computer_name=str(values["computer_name"]),
        language=str(values["language"]),
        ui_language=values.text("ui_language"),
        keyboard=values.text("keyboard"),
        edition_index=edition_index,
        edition_name=edition_name,
        product_key=product_key.strip().upper() if product_key else None,
        timezone=windows_timezone(str(values["timezone"])),
        drivers_pass=values["drivers_pass"],
    )


@unattend.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--arch", default="arm64", show_default=True, help="processorArchitecture every component must carry.")
@click.option("--iso", type=click.Path(path_type=Path), default=None,
              help="The install ISO: also check that InstallFrom's edition is on it and every UILanguage is one of "
                   "that edition's languages.")
def validate_command(file: Path, arch: str, iso: Path | None) -> None:
    """Check an answer file: print 'valid' (exit 0) or one problem per line (exit 1). An ISO carrying its own
    Autounattend.xml at its root is warned about on stderr (Setup may use it instead of this file)."""
    from winarm.answer.validate import validate
    from winarm.media.iso import inspect_iso
    from winarm.media.iso_answer import warn_answer_file

    try:
        data = file.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {str(file)!r}: {error.strerror or error}") from error
    info = inspect_iso(iso, require_arm64=False) if iso is not None else None
    warn_answer_file(info, iso)
    findings = validate(data, arch, info.editions if info is not None else ())
    if not findings:
        click.echo("valid")
        return
    for finding in findings:
        click.echo(str(finding))
    sys.exit(EXIT_FAILURE)
