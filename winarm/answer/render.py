"""The answer file (``Autounattend.xml``), the driver script and the report script that go on the answer medium.

:func:`render` turns :class:`AnswerSettings` into the XML through the Jinja2 templates in ``unattend/`` (autoescaped,
so no value can break or inject XML) and checks the result with :func:`~winarm.answer.validate.validate`. What the
values may be is decided in :mod:`winarm.answer.settings`, the command lines in :mod:`winarm.answer.commands`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jinja2

from winarm.answer.commands import DRIVE_LETTERS, firstlogon_commands, specialize_commands
from winarm.answer.settings import AnswerSettings, check_settings, encode_password
from winarm.answer.validate import validate, windows11_bypasses
from winarm.config.windows import TEMPLATE_DIR, keyboard_ids, language_tag
from winarm.errors import RuntimeFailure, UserError
from winarm.guest import (
    MEDIUM_DRIVERS_DIR,
    MEDIUM_MARKER,
    MEDIUM_PRODUCT_KEY_FILE,
    PNPUTIL_SUCCESS,
    REPORT_DRIVERS,
    REPORT_PRODUCT_KEY,
    REPORT_SCRIPT,
    REPORT_URL,
)

REPORT_ATTEMPTS = 60
"""How often the report script tries by default, :data:`REPORT_PAUSE_SECONDS` apart: about 3 minutes."""
REPORT_PAUSE_SECONDS = 3
DRIVERS_REPORT_ATTEMPTS = 10
"""The driver script's attempts (about 30 s): Setup waits for it, so a blocked channel must not hold it up."""
DRIVER_FOLDER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("xml", "xml.j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _template(name: str) -> jinja2.Template:
    """The template ``name`` of ``unattend/``. Raises :class:`RuntimeFailure` when it is missing or broken."""
    try:
        return _environment().get_template(name)
    except jinja2.TemplateError as error:
        raise RuntimeFailure(f"cannot load the template {TEMPLATE_DIR / name}: {error}") from None


def _image(s: AnswerSettings) -> tuple[str, str]:
    """``(key, value)`` of the ``InstallFrom`` metadata: the edition by name, else by index (1 by default)."""
    if s.edition_name is not None:
        return "/IMAGE/NAME", s.edition_name
    return "/IMAGE/INDEX", str(s.edition_index or 1)


def _context(s: AnswerSettings) -> dict[str, Any]:
    """The templates' variables for ``s``. Raises :class:`UserError` for an unknown language or keyboard."""
    language = language_tag(s.language, "language")
    image_key, image_value = _image(s)
    return {
        "windows": s.windows,
        "arch": s.arch,
        "username": s.username,
        "password_value": encode_password(s.password),
        "computer_name": s.computer_name,
        "language": language,
        "ui_language": language_tag(s.ui_language, "UI language") if s.ui_language is not None else language,
        "keyboard": keyboard_ids(s.keyboard) if s.keyboard is not None else language,
        "image_key": image_key,
        "image_value": image_value,
        "timezone": s.timezone,
        "disk_id": s.disk_id,
        "autologon": s.autologon,
        "labconfig": windows11_bypasses() if s.windows == "11" else (),
        "specialize_commands": specialize_commands(s),
        "firstlogon_commands": firstlogon_commands(s),
    }


def render(s: AnswerSettings) -> str:
    """The answer file for ``s`` as text (ASCII, LF line endings), checked by the validator.

    Raises :class:`UserError` for a bad value (see :func:`~winarm.answer.settings.check_settings`),
    :class:`RuntimeFailure` when a template is missing or when the XML winarm produced does not pass its own
    validator (a bug, not a user's mistake).
    """
    check_settings(s)
    text = _template(f"windows{s.windows}-{s.arch}.xml.j2").render(_context(s))
    findings = validate(text, s.arch)
    if findings:
        raise RuntimeFailure(f"the answer file winarm rendered is invalid ({len(findings)} problems): {findings[0]}")
    return text


def _check_driver_folders(driver_folders: list[str]) -> None:
    """Raise :class:`UserError` for a folder name that is unusable on the medium or listed twice (in any case)."""
    seen: set[str] = set()
    for folder in driver_folders:
        if not DRIVER_FOLDER_RE.fullmatch(folder):
            raise UserError(
                f"driver folder {ascii(folder)} has an unusable name: use 1-64 ASCII letters, digits, '.', '_' or '-'"
            )
        if folder.lower() in seen:
            raise UserError(f"driver folder {folder!r} is listed twice: list each driver folder once")
        seen.add(folder.lower())


def render_driver_script(driver_folders: list[str]) -> str:
    """The driver script for the medium (:data:`~winarm.guest.MEDIUM_SCRIPT`): ASCII text with CRLF line endings.

    It finds its medium by :data:`~winarm.guest.MEDIUM_MARKER` (its own drive first, then C: to Z:), runs
    ``pnputil /add-driver <drive>:\\winarm\\drivers\\<folder>\\*.inf /subdirs /install`` for each folder in the
    order given, counts exit codes 0, 259, 3010 and 1641 as success, logs to ``%WINDIR%\\Temp\\winarm-drivers.log``
    and exits 1 only when a folder failed (2 when the medium is not found). Raises :class:`UserError` for a folder
    name that is not 1-64 ASCII letters, digits, '.', '_' or '-' (starting with a letter or digit) or that appears
    twice, :class:`RuntimeFailure` when the template is missing or yields non-ASCII text.
    """
    _check_driver_folders(driver_folders)
    text = _template("install-drivers.cmd.j2").render(
        marker=MEDIUM_MARKER,
        letters=" ".join(DRIVE_LETTERS),
        drivers_dir=MEDIUM_DRIVERS_DIR,
        folders=list(driver_folders),
        success_codes=" ".join(str(code) for code in PNPUTIL_SUCCESS),
        report=REPORT_DRIVERS,
        report_script=REPORT_SCRIPT,
        report_attempts=DRIVERS_REPORT_ATTEMPTS,
    )
    return _crlf_ascii(text, "driver script")


def render_report_script() -> str:
    """The report script for the medium (:data:`~winarm.guest.MEDIUM_REPORT_SCRIPT`): VBScript, ASCII, CRLF.

    ``wscript.exe //B //NoLogo <script> NAME [BODYFILE [ATTEMPTS]]`` POSTs BODYFILE (or an empty body) to
    :data:`~winarm.guest.REPORT_URL` + NAME with ``curl.exe -s -f -m 10`` run hidden, every
    :data:`REPORT_PAUSE_SECONDS` s up to ATTEMPTS times (default :data:`REPORT_ATTEMPTS`), through PowerShell's
    ``Invoke-WebRequest`` where curl.exe is missing; exit code 0 when sent, 1 when not, 2 for a bad command line.
    Raises :class:`RuntimeFailure` when the template is missing or yields non-ASCII text.
    """
    text = _template("report.vbs.j2").render(
        url=REPORT_URL, attempts=REPORT_ATTEMPTS, pause_seconds=REPORT_PAUSE_SECONDS,
    )
    return _crlf_ascii(text, "report script")


def render_product_key_script() -> str:
    """The first-logon product-key script for the medium (:data:`~winarm.guest.MEDIUM_PRODUCT_KEY_SCRIPT`): batch,
    ASCII, CRLF. It reads the key from :data:`~winarm.guest.MEDIUM_PRODUCT_KEY_FILE` beside it, runs
    ``cscript //nologo %WINDIR%\\System32\\slmgr.vbs /ipk KEY`` and sends the report
    :data:`~winarm.guest.REPORT_PRODUCT_KEY` with body ``code <exit code>`` (``code missing`` without a key file).
    The key is in none of its own lines. Raises :class:`RuntimeFailure` when the template is missing or yields
    non-ASCII text.
    """
    text = _template("product-key.cmd.j2").render(
        key_file=MEDIUM_PRODUCT_KEY_FILE,
        key_name=MEDIUM_PRODUCT_KEY_FILE.rsplit("\\", 1)[-1],
        report=REPORT_PRODUCT_KEY,
        report_script=REPORT_SCRIPT,
    )
    return _crlf_ascii(text, "product-key script")


def _crlf_ascii(text: str, what: str) -> str:
    """``text`` with CRLF line endings and a final one. Raises :class:`RuntimeFailure` when it is not ASCII."""
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    if not text.isascii():
        raise RuntimeFailure(f"the {what} winarm rendered is not ASCII")
    return text.replace("\n", "\r\n")
