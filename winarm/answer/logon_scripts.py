"""The scripts the answer medium carries for logons: the share script, the extend-C: script and its diskpart
script, and the share login file the share script reads during the install.

Specialize copies the scripts to ``%WINDIR%\\Setup\\Scripts`` (:func:`winarm.answer.commands.logon_script_copies`);
the login file stays on the medium, which winarm detaches and deletes once the install is complete, so the login
is never on the disk in clear and never on a command line of the answer file.
"""

from __future__ import annotations

from winarm.answer.commands import (
    DRIVE_LETTERS,
    EXTEND_DISKPART,
    EXTEND_TASK,
    MEDIUM_EXTEND_DISKPART,
    MEDIUM_EXTEND_SCRIPT,
    MEDIUM_SHARE_LOGIN,
    MEDIUM_SHARE_SCRIPT,
)
from winarm.answer.render import _crlf_ascii, _template
from winarm.answer.settings import SHARE_LETTERS, AnswerSettings
from winarm.guest import MEDIUM_MARKER, SHARE_HOSTNAME

SHARE_ATTEMPTS = 20
"""How often the share script tries each share, :data:`SHARE_PAUSE_SECONDS` apart: about a minute."""
SHARE_PAUSE_SECONDS = 3


def render_share_script(shares: tuple[str, ...]) -> str:
    """The share script (batch, ASCII, CRLF): stores the login found on the medium with ``cmdkey``, then maps
    each share in ``shares`` to Z:, Y:, ... with ``net use ... /persistent:yes``, :data:`SHARE_ATTEMPTS` times
    at most, :data:`SHARE_PAUSE_SECONDS` s apart. Raises :class:`~winarm.errors.RuntimeFailure` when the template
    is missing or yields non-ASCII text (share names are checked ASCII before this)."""
    text = _template("map-shares.cmd.j2").render(
        shares=list(zip(SHARE_LETTERS, shares, strict=False)),
        host=SHARE_HOSTNAME,
        marker=MEDIUM_MARKER,
        login_file=MEDIUM_SHARE_LOGIN,
        letters=" ".join(DRIVE_LETTERS),
        attempts=SHARE_ATTEMPTS,
        pause_seconds=SHARE_PAUSE_SECONDS,
    )
    return _crlf_ascii(text, "share script")


def render_extend_script() -> str:
    """The extend script (batch, ASCII, CRLF): ``diskpart /s`` its diskpart script, logged. Raises
    :class:`~winarm.errors.RuntimeFailure` when the template is missing."""
    text = _template("extend-c.cmd.j2").render(diskpart_script=EXTEND_DISKPART.rsplit("\\", 1)[1],
                                               task=EXTEND_TASK)
    return _crlf_ascii(text, "extend script")


def render_extend_diskpart() -> str:
    """The diskpart script: ``select volume C``, ``extend``. Raises :class:`~winarm.errors.RuntimeFailure` when
    the template is missing."""
    return _crlf_ascii(_template("extend-c.diskpart.j2").render(), "diskpart script")


def share_login(s: AnswerSettings) -> bytes | None:
    """The login file's content (``USER PASSWORD`` and CRLF), None without a share login. The values were
    checked by :func:`~winarm.answer.settings.check_settings` (no blanks, no cmd.exe operators, ASCII)."""
    if not s.shares or s.share_user is None or s.share_password is None:
        return None
    return f"{s.share_user} {s.share_password}\r\n".encode("ascii")


def logon_files(s: AnswerSettings) -> list[tuple[str, bytes]]:
    """``(path on the medium, content)`` of the logon scripts for ``s``, and of the login file when there is one."""
    files = [
        (MEDIUM_EXTEND_SCRIPT, render_extend_script().encode("ascii")),
        (MEDIUM_EXTEND_DISKPART, render_extend_diskpart().encode("ascii")),
    ]
    if s.shares:
        files.append((MEDIUM_SHARE_SCRIPT, render_share_script(s.shares).encode("ascii")))
    login = share_login(s)
    if login is not None:
        files.append((MEDIUM_SHARE_LOGIN, login))
    return files
