"""The VM's network endpoints on the host: VNC's address and password, the metrics port, the share's port.

Each is checked before anything starts; a bad value raises :class:`~winarm.errors.UserError` with one line
that names it and the fix. A port is checked free by binding it for a moment; nothing stays open.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from winarm.config.table import default_of
from winarm.config.values import Values, bind_error, read_secret
from winarm.errors import UserError


def ip_address(text: str, what: str, hint: str) -> str:
    """``text`` stripped, when it is an IP address without an IPv6 scope id (Python takes any text after ``%``
    as one, commas included, which would add options to QEMU's ``-vnc``). Raises :class:`UserError` naming
    ``what``, with ``hint``."""
    value = text.strip()
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise UserError(f"{what} {value!r} is not an IP address: use {hint}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise UserError(f"{what} {value!r} has an IPv6 scope id (%...), which winarm does not take: use {hint}")
    return value


def tcp_port(value: Any, what: str, hint: str) -> int | None:
    """A TCP port number from ``value`` (None or blank: None). Raises :class:`UserError` naming ``what``."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UserError(f"{what} {text!r} is not a TCP port: {hint}")
    return int(text)


VNC_SOCKET = "socket"
"""The VNC address meaning a unix socket in the VM's run directory (only winarm's user can enter it)."""


def vnc_address(text: str) -> str:
    """Where VNC listens: :data:`VNC_SOCKET` (``socket``), or an IP address for TCP. Raises :class:`UserError`."""
    if text.strip().lower() in (VNC_SOCKET, "unix"):
        return VNC_SOCKET
    return ip_address(text, "VNC address", "socket (the default), 127.0.0.1 or 0.0.0.0")


def vnc_needs_password(address: str) -> bool:
    """Whether a VNC listener on ``address`` can be reached by anyone but winarm's user on this host: TCP
    beyond loopback. (The socket is in a 0700 directory; loopback TCP is asked for by name.)"""
    return address != VNC_SOCKET and not ipaddress.ip_address(address).is_loopback


def vnc_password(values: Values) -> str | None:
    """The VNC password (None: no password), from a file or the environment. Raises :class:`UserError`."""
    path = values["vnc_password_file"]
    value = read_secret(str(path), "VNC password") if path else values["vnc_password"]
    if value is None:
        return None
    if not 1 <= len(value) <= 8 or not all(32 <= ord(c) < 127 for c in value):
        raise UserError(
            "the VNC password must be 1-8 printable ASCII characters (VNC authentication uses 8 at most): "
            "choose another"
        )
    return str(value)


def metrics(values: Values) -> dict[str, Any]:
    """``metrics_port`` (None: off) and ``metrics_address``, the port checked free. Raises :class:`UserError`."""
    address = ip_address(values.text("metrics_address") or str(default_of("metrics_address")), "metrics address",
                         "127.0.0.1 or 0.0.0.0")
    port = tcp_port(values["metrics_port"], "metrics port", "use for example 9108")
    error = bind_error(address, port) if port is not None else None
    if error is not None:
        raise UserError(
            f"metrics port {port} on {address} cannot be used ({error.strerror}): choose another --metrics-port"
        )
    return {"metrics_port": port, "metrics_address": address}
