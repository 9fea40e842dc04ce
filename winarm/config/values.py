"""Where a setting's value comes from (:class:`Values`, over the settings table) and the small parsers every
settings module shares: yes/no, a choice, a secret file, a port that is free.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

from winarm.config.table import BY_NAME, Setting
from winarm.errors import UserError


def pick(key: str, flags: Mapping[str, Any], env: Mapping[str, str], env_names: Mapping[str, tuple[str, ...]],
         default: Any = None) -> Any:
    """A flag if given (None and an empty tuple are "not given"), else the first non-blank environment name
    listed for ``key`` in ``env_names``, else ``default``."""
    value = flags.get(key)
    if value is not None and value != ():
        return value
    for name in env_names.get(key, ()):
        if env.get(name, "").strip():
            return env[name]
    return default


class Values:
    """The settings of one command as given: each read is the flag if given (None and an empty tuple are "not
    given"), else the first non-blank environment name of its row in :mod:`~winarm.config.table`, else the row's
    default; a yes/no or a choice is checked as it is read (:func:`check`), so a setting never read is never
    refused. Reading a name the table does not hold raises KeyError."""

    def __init__(self, flags: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.flags = flags
        self.env = env

    def given(self, name: str) -> Any:
        """The flag's value or the environment's text for ``name``, unchecked; None when neither is given."""
        return pick(name, self.flags, self.env, {name: BY_NAME[name].env})

    def __getitem__(self, name: str) -> Any:
        """The value of ``name``: given and checked, else its default. Raises :class:`UserError`."""
        given = self.given(name)
        if given is None:
            default = BY_NAME[name].default
            return default() if callable(default) else default
        return check(BY_NAME[name], given)

    def check(self, *names: str) -> None:
        """Read ``names`` only to refuse a bad value. Raises :class:`UserError`."""
        for name in names:
            self[name]

    def text(self, name: str) -> str | None:
        """The value as text, None when it is None or empty."""
        value = self[name]
        return str(value) if value not in (None, "") else None


def check(setting: Setting, given: Any) -> Any:
    """``given`` as ``setting`` holds it: a yes/no as a bool, a choice in its own spelling, anything else as it is.
    Raises :class:`UserError` naming the value."""
    if setting.yes_no:
        return parse_bool(given, setting.env[0] if setting.env else setting.name)
    if setting.choices:
        return parse_choice(str(given), setting.what, setting.choices, setting.aliases)
    return given


def parse_choice(text: str, what: str, choices: tuple[str, ...], aliases: Mapping[str, str]) -> str:
    """One of ``choices`` (any case) or a key of ``aliases``, in the choice's own spelling. Raises
    :class:`UserError` listing the choices, each with its first alias."""
    value = text.strip()
    found = {c.lower(): c for c in choices}.get(value.lower()) or aliases.get(value.lower())
    if found is not None:
        return found
    shown = [next((f"{c} ({a})" for a, target in aliases.items() if target == c), c) for c in choices]
    raise UserError(f"{what} {value!r} is not known: use {', '.join(shown[:-1])} or {shown[-1]}")


def parse_bool(text: Any, what: str) -> bool:
    """``Y/yes/1/true/on`` or ``N/no/0/false/off`` (any case); a bool as it is. Raises :class:`UserError`."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("y", "yes", "1", "true", "on"):
        return True
    if value in ("n", "no", "0", "false", "off"):
        return False
    raise UserError(f"{what} {str(text)!r} is not yes or no: use Y or N")


def read_secret(path: str, what: str) -> str:
    """The first line of the file at ``path`` (a Docker or Kubernetes secret), without its line end. Raises
    :class:`UserError` when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise UserError(f"{what} file {path!r} cannot be read ({reason}): give a readable file") from None


def bind_error(address: str, port: int) -> OSError | None:
    """Why ``port`` on ``address`` cannot be listened on right now (in use, no permission), or None."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError as error:
            return error
    return None
