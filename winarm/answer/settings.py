"""What the answer file says (:class:`AnswerSettings`), the checks its values pass, and Setup's password encoding.

The defaults and the drivers-pass choices are written once, in :mod:`winarm.config.windows`; the settings table
and :class:`AnswerSettings` both take them from there.
This module loads no template engine: ``winarm up`` checks settings with the rest of its configuration.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from winarm.config.share import SHARE_NAME_RE, check_share_login
from winarm.config.timezone import DEFAULT_TIMEZONE, EXAMPLE, is_windows_zone
from winarm.config.windows import (
    DEFAULT_COMPUTER_NAME,
    DEFAULT_DRIVERS_PASS,
    DEFAULT_LANGUAGE,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    DEFAULT_WINDOWS,
    DRIVERS_PASSES,
    check_account,
    language_tag,
)
from winarm.errors import UserError

WINDOWS_VERSIONS = ("11", "10")
PASSWORD_KINDS = ("Password", "AdministratorPassword")
SHARE_LETTERS = "ZYXWVUTS"
"""The drive letters shares are mapped to, in order: at most this many shares."""
EDITION_NAME_RE = re.compile(r"[ -~]{1,128}")
WINDOWS_IN_NAME_RE = re.compile(r"\bWindows\s+(1[01])\b", re.IGNORECASE)
MAX_EDITION_INDEX = 99
MAX_DISK_ID = 63


@dataclass(frozen=True)
class AnswerSettings:
    """What the answer file says. Only :func:`check_settings` decides whether the values are acceptable."""

    windows: str = DEFAULT_WINDOWS
    arch: str = "arm64"
    username: str = DEFAULT_USERNAME
    password: str = field(default=DEFAULT_PASSWORD, repr=False)
    computer_name: str = DEFAULT_COMPUTER_NAME
    language: str = DEFAULT_LANGUAGE
    """The locales (system, user) and, without :attr:`keyboard`, the input locale."""
    ui_language: str | None = None
    """Setup's and Windows' display language; None is :attr:`language`. It must be one the image holds."""
    keyboard: str | None = None
    edition_index: int | None = None
    edition_name: str | None = None
    product_key: str | None = field(default=None, repr=False)
    """Installed at the first logon from a file on the answer medium (``slmgr /ipk``), never written to the answer
    file: a key that does not match the edition stops Setup with no way out."""
    timezone: str = DEFAULT_TIMEZONE
    """A Windows time zone ID (see :mod:`winarm.config.timezone`); callers map IANA names first."""
    disk_id: int = 0
    autologon: bool = True
    bypass_nro: bool = True
    drivers_pass: str = DEFAULT_DRIVERS_PASS
    has_drivers: bool = True
    shares: tuple[str, ...] = ()
    """Share names the guest maps at first logon (Z:, Y:, ...) from \\\\host.lan."""
    share_user: str | None = None
    share_password: str | None = field(default=None, repr=False)


# --- passwords --------------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in PASSWORD_KINDS:
        raise ValueError(f"password kind {kind!r} is not one of {', '.join(PASSWORD_KINDS)}")


def encode_password(password: str, kind: str = "Password") -> str:
    """Setup's obfuscation of a password (``<PlainText>false</PlainText>``): base64 of UTF-16LE(password + kind).

    ``kind`` is ``Password`` (local accounts, AutoLogon) or ``AdministratorPassword``. Raises ValueError for any
    other kind. This hides nothing: anyone can decode it.
    """
    _check_kind(kind)
    return base64.b64encode((password + kind).encode("utf-16-le")).decode("ascii")


def decode_password(value: str, kind: str = "Password") -> str:
    """The password inside an :func:`encode_password` value (missing ``=`` padding is tolerated, as Setup does).

    Raises ValueError when the value is not base64 of UTF-16LE text, or does not end with ``kind``.
    """
    _check_kind(kind)
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
        plain = raw.decode("utf-16-le")
    except (binascii.Error, ValueError):
        raise ValueError("the value is not base64 of UTF-16LE text") from None
    if not plain.endswith(kind):
        raise ValueError(f"the decoded value does not end with {kind!r}")
    return plain[: -len(kind)]


# --- checks -----------------------------------------------------------------------------------------------------


def check_settings(s: AnswerSettings) -> None:
    """Check every value of ``s`` before anything is rendered.

    Raises :class:`UserError` with one line naming the first bad value and what would be accepted: a username
    Windows refuses (empty, over 20 characters, a built-in account or group name, one of ``"/\\[]:;|=,+*?<>@`` or a
    control character, only dots and spaces, a leading or trailing space), a non-ASCII or over-long password or
    username, a computer name that is not 1-15 letters, digits and inner hyphens or is all digits, an unknown
    language or keyboard, both or a bad edition index/name (or a name of another Windows version), a malformed
    product key, a time zone that is not a
    Windows time zone ID, a negative disk, an unknown Windows version, architecture or drivers pass, more shares
    than drive letters, a bad share name or login.
    """
    _check_platform(s)
    check_account(s.username, s.password, s.computer_name, s.language, keyboard=s.keyboard, product_key=s.product_key)
    if not is_windows_zone(s.timezone):
        raise UserError(f"time zone {ascii(s.timezone)} is not a Windows time zone ID: use for example {EXAMPLE}")
    if s.ui_language is not None:
        language_tag(s.ui_language, "UI language")
    _check_edition(s.edition_index, s.edition_name)
    _check_edition_version(s.windows, s.edition_name)
    if not 0 <= s.disk_id <= MAX_DISK_ID:
        raise UserError(f"disk number {s.disk_id} is out of range: use 0 to {MAX_DISK_ID} (0 is the first disk)")
    _check_shares(s)


def _check_platform(s: AnswerSettings) -> None:
    """The Windows version, architecture and drivers pass. Raises :class:`UserError`."""
    if s.windows not in WINDOWS_VERSIONS:
        raise UserError(f"Windows version {ascii(s.windows)} is not supported: use 11 or 10")
    if s.arch != "arm64":
        raise UserError(f"architecture {ascii(s.arch)} is not supported: winarm installs arm64 only")
    if s.drivers_pass not in DRIVERS_PASSES:
        raise UserError(f"drivers pass {ascii(s.drivers_pass)} is not known: use {', '.join(DRIVERS_PASSES)}")


def _check_edition(index: int | None, name: str | None) -> None:
    """At most one of an edition index (1-99) and a printable-ASCII edition name. Raises :class:`UserError`."""
    if index is not None and name is not None:
        raise UserError("both an edition index and an edition name were given: give one of them")
    if index is not None and not 1 <= index <= MAX_EDITION_INDEX:
        raise UserError(f"edition index {index} is out of range: use the image's index, from 1")
    if name is not None and not EDITION_NAME_RE.fullmatch(name):
        raise UserError(
            f"edition name {ascii(name)} is not usable: give the image's name as printable ASCII, "
            "like 'Windows 11 Pro'"
        )


def _check_edition_version(windows: str, name: str | None) -> None:
    """An edition name that says which Windows it is (``Windows 10 Pro``) must agree with the Windows version (its
    template, and whether Windows 11's bypasses are written). Raises :class:`UserError`."""
    said = WINDOWS_IN_NAME_RE.search(name or "")
    if said is not None and said.group(1) != windows:
        raise UserError(f"edition name {ascii(name)} is Windows {said.group(1)}, but the answer file is for Windows "
                        f"{windows}: pass --windows {said.group(1)}")


def _check_shares(s: AnswerSettings) -> None:
    """No more shares than :data:`SHARE_LETTERS`, each name allowed, the login (when given) usable.

    Raises :class:`UserError`.
    """
    if len(s.shares) > len(SHARE_LETTERS):
        raise UserError(f"{len(s.shares)} shares: at most {len(SHARE_LETTERS)} can be mapped to drive letters")
    for name in s.shares:
        if not SHARE_NAME_RE.fullmatch(name):
            raise UserError(f"share name {ascii(name)} is not allowed: use 1-64 letters, digits, '.', '_' or '-'")
    if s.share_user is not None:
        check_share_login(s.share_user, s.share_password)
