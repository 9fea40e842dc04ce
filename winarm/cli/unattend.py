"""``winarm unattend``: render the answer file, or check one.

Exit status: 0 done (or the file is valid), 1 the file has problems (one per line on stdout) or winarm failed,
2 a user's mistake (a bad value, an unreadable file: one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from winarm.config.vm import DISK_BUSES
from winarm.errors import EXIT_FAILURE, EXIT_USAGE, UserError, WinarmError
from winarm.files import write_atomic

# winarm.answer.render (and Jinja2) is imported inside the commands: `winarm up` must not pay for it at start-up.

ENV_FALLBACKS = {"username": "USERNAME", "password": "PASSWORD", "language": "LANGUAGE", "keyboard": "KEYBOARD"}


def _fail(error: WinarmError) -> NoReturn:
    click.echo(f"winarm: {error}", err=True)
    sys.exit(error.exit_code)


def _pick(flag: str | None, key: str, default: str | None) -> str | None:
    """The flag if given, else the environment name for ``key`` when set and not blank, else ``default``."""
    if flag is not None:
        return flag
    value = os.environ.get(ENV_FALLBACKS[key], "")
    return value if value.strip() else default


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


@click.group("unattend")
def unattend() -> None:
    """Render or check the Windows Setup answer file (Autounattend.xml)."""


@unattend.command("render")
@click.option("--windows", "windows", default="11", show_default=True, help="Windows version: 11 or 10.")
@click.option(
    "--username", default=None, help="Local administrator account created by Setup [env USERNAME; default Docker]."
)
@click.option("--password", default=None, help="Its password, ASCII [env PASSWORD; default admin].")
@click.option("--computer-name", default="WINARM", show_default=True, help="Computer name: 1-15 letters, digits, '-'.")
@click.option("--language", default=None, help="Windows language tag for UI and locales [env LANGUAGE; default en-US].")
@click.option(
    "--keyboard", default=None, help="Input locale: a language tag or 0407:00000407 [env KEYBOARD; default: language]."
)
@click.option(
    "--edition",
    default=None,
    metavar="NAME-OR-INDEX",
    help="Image to install from install.wim: its index (a number) or its name [default: index 1].",
)
@click.option("--product-key", default=None, help="Product key XXXXX-XXXXX-XXXXX-XXXXX-XXXXX [default: none].")
@click.option(
    "--disk-bus",
    default="virtio-blk",
    show_default=True,
    help="System disk bus, virtio-blk, virtio-scsi or nvme (checked only: its boot driver goes in $WinPEDriver$, "
    "not in the XML).",
)
@click.option(
    "--drivers-pass",
    default="specialize",
    show_default=True,
    help="Where the other virtio drivers are installed: windowsPE (all from $WinPEDriver$), specialize or firstlogon.",
)
@click.option(
    "--tpm/--no-tpm",
    default=True,
    help="The VM has a TPM 2.0; --no-tpm makes Windows 11 Setup skip its TPM check [default: --tpm].",
)
@click.option(
    "--secure-boot/--no-secure-boot",
    default=True,
    help="The VM boots with Secure Boot; --no-secure-boot makes Windows 11 Setup skip that check "
    "[default: --secure-boot].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the answer file here (atomically, mode 0600: it holds the password) instead of to stdout.",
)
def render_command(  # noqa: PLR0913
    *,
    windows: str,
    username: str | None,
    password: str | None,
    computer_name: str,
    language: str | None,
    keyboard: str | None,
    edition: str | None,
    product_key: str | None,
    disk_bus: str,
    drivers_pass: str,
    tpm: bool,
    secure_boot: bool,
    out: Path | None,
) -> None:
    """Print the answer file for these settings (or write it with --out)."""
    from winarm.answer.render import render
    from winarm.answer.settings import AnswerSettings

    try:
        if disk_bus.strip().lower() not in DISK_BUSES:
            raise UserError(f"disk bus {ascii(disk_bus)} is not known: use virtio-blk, virtio-scsi or nvme")
        edition_index, edition_name = _edition(edition)
        settings = AnswerSettings(
            windows=windows.strip(),
            username=_pick(username, "username", "Docker") or "",
            password=_pick(password, "password", "admin") or "",
            computer_name=computer_name,
            language=_pick(language, "language", "en-US") or "",
            keyboard=_pick(keyboard, "keyboard", None),
            edition_index=edition_index,
            edition_name=edition_name,
            product_key=product_key.strip().upper() if product_key else None,
            tpm=tpm,
            secure_boot=secure_boot,
            drivers_pass=drivers_pass,
        )
        text = render(settings)
        if out is None:
            click.echo(text, nl=False)
        else:
            write_private(out, text)
    except WinarmError as error:
        _fail(error)


@unattend.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--arch", default="arm64", show_default=True, help="processorArchitecture every component must carry.")
def validate_command(file: Path, arch: str) -> None:
    """Check an answer file: print 'valid' (exit 0) or one problem per line (exit 1)."""
    from winarm.answer.validate import validate

    try:
        data = file.read_bytes()
    except OSError as error:
        click.echo(f"winarm: cannot read {str(file)!r}: {error.strerror or error}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        findings = validate(data, arch)
    except WinarmError as error:
        _fail(error)
    if not findings:
        click.echo("valid")
        return
    for finding in findings:
        click.echo(str(finding))
    sys.exit(EXIT_FAILURE)
