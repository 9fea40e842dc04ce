"""Small parsers shared by every settings module: where a value comes from, yes/no, a port that is free.

Kept free of winarm's other modules so that ``config`` and ``share_config`` can both build on it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

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
