"""Values Windows accepts for its account, computer name, language and keyboard, checked without rendering
anything: light enough for ``winarm up`` to check them with the rest of the configuration, before any file is
written, and shared with the answer file's own checks in :mod:`winarm.answer.settings`. The account defaults and
the drivers-pass choices live here once: the settings table and the answer settings both read them."""

from __future__ import annotations

import functools
import re

from winarm.data import data_dir
from winarm.errors import RuntimeFailure, UserError

TEMPLATE_DIR = data_dir("unattend")

DRIVERS_PASSES = ("windowsPE", "specialize", "firstlogon")
"""Where the non-boot-critical drivers are installed: every one from ``$WinPEDriver$``, or by a command in the
specialize pass or at first logon."""
DEFAULT_DRIVERS_PASS = "specialize"
DEFAULT_WINDOWS = "11"
DEFAULT_USERNAME = "Docker"
DEFAULT_PASSWORD = "admin"
DEFAULT_COMPUTER_NAME = "WINARM"
DEFAULT_LANGUAGE = "en-US"

RESERVED_USERNAMES = frozenset(
    name.lower()
    for name in (
        "Administrator", "Guest", "DefaultAccount", "WDAGUtilityAccount", "defaultuser0", "System",
        "LocalSystem", "Local Service", "LocalService", "Network Service", "NetworkService", "TrustedInstaller",
        "Administrators", "Users", "Guests", "Everyone", "Power Users", "Remote Desktop Users",
        "Authenticated Users", "Interactive", "Network", "Batch", "Service", "Anonymous Logon", "Creator Owner",
        "Dialup", "Replicator", "Backup Operators", "None",
    )
)
USERNAME_FORBIDDEN = set('"/\\[]:;|=,+*?<>@')
MAX_USERNAME = 20
MAX_PASSWORD = 127
# Each pattern is used with fullmatch.
COMPUTER_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,13}[A-Za-z0-9])?")
KEYBOARD_ID_RE = re.compile(r"[0-9A-Fa-f]{4}:(?:[0-9A-Fa-f]{8}|\{[0-9A-Fa-f-]{36}\}\{[0-9A-Fa-f-]{36}\})")
PRODUCT_KEY_RE = re.compile(r"[A-Z0-9]{5}(?:-[A-Z0-9]{5}){4}")


@functools.cache
def languages() -> dict[str, str]:
    """The Windows language tags of ``unattend/languages.txt``, by lower-case tag. Raises :class:`RuntimeFailure`."""
    path = TEMPLATE_DIR / "languages.txt"
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, ValueError) as error:
        raise RuntimeFailure(f"cannot read the language list {path}: {error}") from None
    tags = (line.strip() for line in lines)
    return {tag.lower(): tag for tag in tags if tag and not tag.startswith("#")}


def check_username(name: str) -> None:
    """Raise :class:`UserError` unless Windows Setup would create a local account of this name."""
    shown = ascii(name)
    hint = f"use 1-{MAX_USERNAME} ASCII letters, digits, spaces, '.', '-' or '_'"
    if not name:
        raise UserError(f"username is empty: {hint}")
    if not name.isascii():
        raise UserError(f"username {shown} has non-ASCII characters (Setup handles ASCII only): {hint}")
    if len(name) > MAX_USERNAME:
        raise UserError(f"username {shown} is longer than {MAX_USERNAME} characters: {hint}")
    bad = sorted({c for c in name if c in USERNAME_FORBIDDEN or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise UserError(f"username {shown} contains {''.join(bad)!r}, which Windows refuses: {hint}")
    if set(name) <= {".", " "}:
        raise UserError(f"username {shown} is only dots and spaces, which Windows refuses: {hint}")
    if name != name.strip(" "):
        raise UserError(f"username {shown} starts or ends with a space: {hint}")
    if name.lower() in RESERVED_USERNAMES:
        raise UserError(f"username {shown} is a built-in account or group name of Windows: choose another name")


def check_password(password: str) -> None:
    """Raise :class:`UserError` unless Setup can take this password (printable ASCII, bounded length)."""
    hint = f"use up to {MAX_PASSWORD} printable ASCII characters"
    if not password.isascii():
        raise UserError(f"the password has non-ASCII characters (Setup handles ASCII only): {hint}")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise UserError(f"the password contains control characters: {hint}")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is longer than {MAX_PASSWORD} characters: {hint}")


def check_computer_name(name: str) -> None:
    """Raise :class:`UserError` unless this is a NetBIOS-safe computer name."""
    hint = "use 1-15 ASCII letters, digits or '-', not only digits, not starting or ending with '-'"
    if not COMPUTER_NAME_RE.fullmatch(name) or name.isdigit():
        raise UserError(f"computer name {ascii(name)} is not allowed: {hint}")


def language_tag(tag: str, what: str) -> str:
    """The tag as Windows spells it (any case accepted). Raises :class:`UserError` for an unknown tag."""
    known = languages().get(tag.strip().lower())
    if known is None:
        raise UserError(
            f"{what} {ascii(tag)} is not a Windows language tag: use one like en-US, de-DE or fr-FR "
            f"(list in {TEMPLATE_DIR / 'languages.txt'})"
        )
    return known


def keyboard_ids(value: str) -> str:
    """Up to five input locales (tags or ``LLLL:KKKKKKKK`` ids), ``;``-separated, as ids. Raises :class:`UserError`."""
    parts = [part.strip() for part in value.split(";")]
    if not value.strip() or not all(parts) or len(parts) > 5:
        raise UserError(
            f"keyboard {ascii(value)} is empty or malformed: use a language tag like de-DE or 0407:00000407"
        )
    checked = []
    for part in parts:
        if KEYBOARD_ID_RE.fullmatch(part):
            checked.append(part)
        elif part.lower() in languages():
            checked.append(languages()[part.lower()])
        else:
            raise UserError(
                f"keyboard {ascii(part)} is neither a Windows language tag nor a locale:layout pair: "
                "use one like de-DE or 0407:00000407"
            )
    return ";".join(checked)


def check_product_key(key: str) -> None:
    """Raise :class:`UserError` unless ``key`` has the shape of a product key (the key itself is never shown)."""
    if not PRODUCT_KEY_RE.fullmatch(key):
        raise UserError("the product key is malformed: write it as five groups of five letters or digits, XXXXX-...")


def check_account(username: str, password: str, computer_name: str, language: str, *, keyboard: str | None,
                  product_key: str | None) -> None:
    """Every value the answer file takes from the user, checked in the order a user reads them. Raises
    :class:`UserError` for the first bad one."""
    check_username(username)
    check_password(password)
    check_computer_name(computer_name)
    language_tag(language, "language")
    if keyboard is not None:
        keyboard_ids(keyboard)
    if product_key is not None:
        check_product_key(product_key)
