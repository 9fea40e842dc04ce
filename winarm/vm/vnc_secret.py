"""The VNC password a listener beyond loopback must have (issue 14: VNC had no password by default while
Windows logs on as an administrator by itself, and the image listened on all addresses).

VNC on its unix socket (the default) or on loopback TCP (asked for by address) needs none. Beyond loopback,
without the user's own (``VNC_PASSWORD_FILE``) and without ``--vnc-no-password``, winarm makes one at the
first start, keeps it in ``STORAGE/NAME/vnc-password`` (mode 0600, with the VM) and uses it at every start.
The file's path is said, never the password (no secret goes to a log).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

from winarm.config.endpoints import vnc_needs_password
from winarm.config.paths import VmPaths
from winarm.config.vm import Config
from winarm.errors import UserError
from winarm.files import write_atomic

ALPHABET = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXYZ2346789"
"""Letters and digits that cannot be misread; 8 of them (VNC's limit) give about 46 bits."""
LENGTH = 8


def _read_or_make(path: Path) -> str:
    """The password kept at ``path``, made (0600) when there is none. Raises :class:`UserError` when the file
    cannot be read or written."""
    try:
        kept = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        kept = ""
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"VNC password file {str(path)!r} cannot be read: remove it, and winarm makes another") \
            from error
    if len(kept) == LENGTH and all(c in ALPHABET for c in kept):
        return kept
    made = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    write_atomic(path, (made + "\n").encode("ascii"), what="the VNC password file")
    return made


def with_vnc_password(cfg: Config, paths: VmPaths) -> Config:
    """``cfg`` with the VNC password its listener needs (see the module) and, when winarm made it, the file it
    is kept in (``vnc_password_kept``). Raises :class:`UserError` when that file cannot be read or written."""
    if cfg.vnc_password is not None or cfg.vnc_no_password or not vnc_needs_password(cfg.vnc):
        return cfg
    return replace(cfg, vnc_password=_read_or_make(paths.vnc_password), vnc_password_kept=paths.vnc_password)


def vnc_access(cfg: Config) -> str:
    """What the display line adds about who may log in: the password's file, or a warning when there is none
    beyond loopback."""
    if cfg.vnc_password_kept is not None:
        return f" (password in {cfg.vnc_password_kept})"
    if cfg.vnc_password is None and vnc_needs_password(cfg.vnc):
        return " WITHOUT A PASSWORD (--vnc-no-password): whoever reaches this port sees and drives Windows"
    return ""


def vnc_where(info: object, socket: Path) -> str | None:
    """Where VNC listens, from QMP's ``query-vnc`` answer ``info``: ``unix:SOCKET`` or ``HOST:PORT``; None when
    VNC is off."""
    if not (isinstance(info, dict) and info.get("enabled")):
        return None
    return f"unix:{socket}" if info.get("family") == "unix" else f"{info.get('host')}:{info.get('service')}"
