"""The shared folders' settings: which host directories, under which names, owned by whom, with which modes.

Parsed from flags, then environment variables (the anchor's ``SHARED``/``SAMBA``, ``UID``/``GID`` and the
``PUID``/``PGID`` convention), then defaults, and checked against the host before anything starts. Every bad
value raises :class:`~winarm.errors.UserError` with one line naming it and the fix; nothing here writes.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winarm.config.endpoints import tcp_port
from winarm.config.share_places import check_default_owner, check_password_meaning, check_writable_place
from winarm.config.table import SHARE, default_of, env_names
from winarm.config.values import Values, bind_error, read_secret
from winarm.errors import UserError
from winarm.guest import SHARE_HOSTNAME

CONTAINER_SHARE = Path("/shared")
"""Shared by default when it exists (the container's volume)."""
DEFAULT_SHARE_NAME = "Data"
SHARE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_SHARE_NAMES = {"global", "homes", "printers", "print$", "ipc$"}
SHARE_USER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
RESERVED_SHARE_USERS = {"guest", "nobody", "root", "administrator"}
SHELL_SPECIAL = '"&<>|^%'
"""Characters a password on a Windows command line could not carry safely (quotes, cmd.exe's operators)."""
MAX_ID = 2**32 - 2
MAX_SHARES = 8
"""Drive letters Z: down to S: in the guest."""

ENV_NAMES: dict[str, tuple[str, ...]] = env_names(SHARE)
"""Setting -> environment names of the share's settings, from :mod:`winarm.config.table`."""


@dataclass(frozen=True)
class Share:
    """One host directory shared with the guest under ``name``."""

    name: str
    path: Path
    readonly: bool = False
    adopt: bool = False
    """The folder is empty and the owner cannot write to it (a container runtime made it, root-owned): winarm,
    as root, gives it to the owner before smbd starts."""

    @property
    def guest_unc(self) -> str:
        return f"\\\\{SHARE_HOSTNAME}\\{self.name}"


@dataclass(frozen=True)
class ShareSettings:
    """Everything the share's smbd needs. Files the guest creates belong to ``uid``:``gid`` with ``file_mode``,
    folders with ``dir_mode``. Without ``user``, the guest logs in as a guest (no password)."""

    shares: tuple[Share, ...]
    uid: int
    gid: int
    file_mode: int = 0o664
    dir_mode: int = 0o775
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    """The host port smbd listens on (loopback); None picks a free one at start."""
    min_free: int = 0
    """Bytes that must stay free where the shares are, else they turn read-only (0: no watermark)."""

    @property
    def guest_login(self) -> bool:
        return self.user is None


def relay_command(port: int) -> str:
    """What QEMU runs for each guest connection to ``10.0.2.4:445``: a byte relay to smbd's loopback port."""
    return f"socat STDIO TCP4:127.0.0.1:{port}"


def parse_mode(text: Any, what: str) -> int:
    """An octal permission mode like ``0664``, ``664`` or ``0o664``, at most ``0777``. Raises :class:`UserError`."""
    value = str(text).strip().lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,4}", value) or int(value, 8) > 0o777:
        raise UserError(f"{what} {str(text)!r} is not a permission mode: use octal digits like 0664 or 0775")
    return int(value, 8)


def parse_id(text: Any, what: str) -> int:
    """A numeric uid or gid. Raises :class:`UserError`."""
    value = str(text).strip()
    if not value.isdigit() or int(value) > MAX_ID:
        raise UserError(f"{what} {value!r} is not a numeric id: use a number like 1000 (see 'id -u' and 'id -g')")
    return int(value)


def check_path(path: Path, what: str = "shared folder") -> None:
    """Refuse a path smb.conf cannot hold: unprintable characters (a new line would start a new setting), ``%``
    (Samba substitutes it), a trailing backslash (a line continuation) or trailing space (Samba trims it)."""
    text = str(path)
    if not text.isprintable():  # control characters, line and paragraph separators, undecodable bytes
        raise UserError(f"{what} {ascii(text)} contains control characters: rename it or share another folder")
    if "%" in text:
        raise UserError(
            f"{what} {text!r} contains '%', which Samba would substitute: rename it or share another folder"
        )
    if text.endswith(("\\", " ")):
        raise UserError(f"{what} {text!r} ends with a backslash or a space: rename it or share another folder")


def _parse_spec(spec: str, index: int) -> tuple[str | None, Path]:
    """``DIR`` or ``NAME=DIR``; the name is taken only when what precedes ``=`` is a valid share name."""
    head, sep, tail = spec.partition("=")
    if sep and SHARE_NAME_RE.fullmatch(head) and "/" not in head:
        return head, Path(tail)
    if sep and "/" not in head:
        raise UserError(
            f"share name {ascii(head)} is not allowed: use 1-64 letters, digits, '.', '_' or '-' (like Data=/srv/data)"
        )
    return None, Path(spec)


def _can_write(st: os.stat_result, uid: int, gid: int) -> bool:
    """Whether ``uid``:``gid`` (no other groups) may create entries in a directory with this stat, as the
    kernel decides for smbd working as that owner."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        bits = stat.S_IWUSR | stat.S_IXUSR
    elif st.st_gid == gid:
        bits = stat.S_IWGRP | stat.S_IXGRP
    else:
        bits = stat.S_IWOTH | stat.S_IXOTH
    return st.st_mode & bits == bits


def _can_search(st: os.stat_result, uid: int, gid: int) -> bool:
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def check_reachable(path: Path, uid: int, gid: int) -> None:
    """Raise :class:`UserError` when ``uid``:``gid`` cannot walk down to ``path`` (a parent not searchable)."""
    for parent in reversed(path.parents):
        if not _can_search(parent.stat(), uid, gid):
            raise UserError(
                f"shared folder {str(path)!r} cannot be reached by uid {uid} gid {gid}: {str(parent)!r} has mode "
                f"{parent.stat().st_mode & 0o7777:04o}; share a folder outside it or use --uid/--gid that may enter it"
            )


def check_share_login(user: str, password: str | None) -> None:
    """Raise :class:`UserError` for a share user or password the guest's command lines cannot carry: a user that
    is not 1-32 letters, digits, '.', '_' or '-' (or is guest, nobody, root, administrator), a missing password,
    or one with spaces, control characters, non-ASCII, any of :data:`SHELL_SPECIAL` or over 127 characters."""
    if not SHARE_USER_RE.fullmatch(user) or user.lower() in RESERVED_SHARE_USERS:
        raise UserError(
            f"share user {ascii(user)} is not allowed: use 1-32 letters, digits, '.', '_' or '-', starting with "
            "a letter, not guest, nobody, root or administrator"
        )
    if not password:
        raise UserError(f"share user {user!r} has no password: add --share-password-file (env SHARE_PASSWORD_FILE)")
    check_password_meaning(password)
    if not password.isascii() or any(ord(c) < 33 or ord(c) == 127 or c in SHELL_SPECIAL for c in password):
        raise UserError(
            f"the share password must be printable ASCII without spaces or any of {SHELL_SPECIAL} ("
            "the guest's share script reads it from a file and passes it to cmdkey): choose another"
        )
    if len(password) > 127:
        raise UserError("the share password is longer than 127 characters: choose a shorter one")


def check_port_free(port: int) -> None:
    """Raise :class:`UserError` when something already listens on loopback ``port``."""
    if bind_error("127.0.0.1", port) is not None:
        raise UserError(
            f"share port {port} on 127.0.0.1 is in use: choose another --share-port or leave it out (a free "
            "port is picked)"
        )


def load_share_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    euid: int | None = None,
    egid: int | None = None,
) -> ShareSettings | None:
    """The shares a ``winarm up`` asks for, checked; None when sharing is off (``--no-share``, ``SAMBA=N``, or no
    ``--shared`` and no ``/shared`` directory).

    Raises :class:`UserError` for a missing or non-directory folder, a folder the owner cannot write to (unless
    read-only), a system folder or the storage shared writable, root as the files' owner not asked for
    (:mod:`winarm.config.share_places`), a bad name, id, mode, user or port, two shares with one name, or (when
    winarm is not root) an owner other than winarm's own user, which a non-root smbd cannot give files.
    """
    values = Values(flags, env)
    euid = os.geteuid() if euid is None else euid
    egid = os.getegid() if egid is None else egid
    specs = _specs(values)
    if not specs:
        return None
    readonly = bool(values["share_readonly"])
    parsed = _parse_shares(specs, explicit=values.given("shared") is not None)
    if not readonly:
        storage = values["storage"] if "storage" in flags else None
        for _name, path in parsed:
            check_writable_place(path, Path(str(storage)) if storage else None)
    uid, gid = _owner(values, parsed[0][1].stat(), euid, egid)
    check_default_owner(parsed[0][1], uid, explicit=values["uid"] is not None)
    adopt = _check_access([path for _name, path in parsed], uid, gid, readonly=readonly, root=euid == 0)
    file_mode, dir_mode = _modes(values)
    user, password = _login(values)
    return ShareSettings(
        shares=tuple(Share(name, path, readonly, path in adopt) for name, path in parsed),
        uid=uid,
        gid=gid,
        file_mode=file_mode,
        dir_mode=dir_mode,
        user=user,
        password=password,
        port=_port(values, root=euid == 0),
        min_free=_min_free(values),
    )


def _specs(values: Values) -> tuple[str, ...]:
    """The ``[NAME=]DIR`` specs asked for: none when sharing is off, ``/shared`` when it exists and none is
    given. Raises :class:`UserError` for a bad SAMBA or more than :data:`MAX_SHARES`."""
    if values["share"] is False:
        return ()
    given = values["shared"]
    specs = (given,) if isinstance(given, str) else tuple(given or ())
    if not specs and CONTAINER_SHARE.is_dir():
        specs = (str(CONTAINER_SHARE),)
    if len(specs) > MAX_SHARES:
        raise UserError(f"{len(specs)} shared folders given: at most {MAX_SHARES} can be shared")
    return specs


def _parse_shares(specs: tuple[str, ...], *, explicit: bool) -> list[tuple[str, Path]]:
    """(name, absolute path) of each spec, in order: one unnamed share at most (it is named Data), names unique
    regardless of case and not Samba's own, every path an existing directory smb.conf can hold. Raises
    :class:`UserError`; the hint for a missing folder mentions --no-share when the share was ``explicit``."""
    parsed: list[tuple[str, Path]] = []
    unnamed = 0
    for index, spec in enumerate(specs):
        name, path = _parse_spec(str(spec), index)
        unnamed += name is None
        if unnamed > 1 and name is None:
            raise UserError(
                f"shared folder {str(spec)!r} has no name and another one has none either: write NAME=DIR, "
                "like --shared Music=/srv/music"
            )
        name = name or DEFAULT_SHARE_NAME
        if name.lower() in RESERVED_SHARE_NAMES:
            raise UserError(f"share name {name!r} is reserved by Samba: choose another name")
        if any(name.lower() == other.lower() for other, _ in parsed):
            raise UserError(f"share name {name!r} is given twice: give each shared folder its own name")
        parsed.append((name, _existing_folder(path.expanduser(), explicit=explicit)))
    return parsed


def _existing_folder(path: Path, *, explicit: bool) -> Path:
    """``path`` made absolute, when smb.conf can hold it and it is an existing directory. Raises
    :class:`UserError`."""
    check_path(path)
    if not path.exists():
        hint = "create it, or pass --no-share" if explicit else "create it"
        raise UserError(f"shared folder {str(path)!r} does not exist: {hint}")
    if not path.is_dir():
        raise UserError(f"shared folder {str(path)!r} is not a directory: share a directory")
    return path.absolute()


def _owner(values: Values, first: os.stat_result, euid: int, egid: int) -> tuple[int, int]:
    """The uid and gid the guest's files get: as given, else (as root) the first folder's owner, else winarm's
    own. Raises :class:`UserError` for a bad id, or one a non-root winarm cannot give."""
    uid_value, gid_value = values["uid"], values["gid"]
    uid = parse_id(uid_value, "uid") if uid_value is not None else (first.st_uid if euid == 0 else euid)
    gid = parse_id(gid_value, "gid") if gid_value is not None else (first.st_gid if euid == 0 else egid)
    if euid not in (0, uid):
        raise UserError(
            f"uid {uid}: winarm runs as uid {euid} and cannot give the share's files another owner: run winarm "
            "as root, or leave out --uid/UID"
        )
    if euid != 0 and gid != egid:
        raise UserError(
            f"gid {gid}: winarm runs with gid {egid} and cannot give the share's files another group: run "
            "winarm as root, or leave out --gid/GID"
        )
    return uid, gid


def _check_access(paths: list[Path], uid: int, gid: int, *, readonly: bool, root: bool) -> set[Path]:
    """Check ``uid``:``gid`` can reach every folder and (unless ``readonly``) write to it; return the empty
    folders it cannot write to that winarm, as ``root``, gives it. Raises :class:`UserError`."""
    for path in paths:
        check_reachable(path, uid, gid)
    adopt: set[Path] = set()
    for path in [] if readonly else paths:
        if _can_write(path.stat(), uid, gid):
            continue
        if root and not any(path.iterdir()):
            adopt.add(path)
            continue
        raise UserError(
            f"shared folder {str(path)!r} is not writable by uid {uid} gid {gid}: chown it to {uid}:{gid}, "
            "choose --uid/--gid that may write there, or pass --share-readonly"
        )
    return adopt


def _modes(values: Values) -> tuple[int, int]:
    """``file_mode`` and ``dir_mode``; the owner must be able to enter and write its folders. Raises
    :class:`UserError`."""
    file_mode = parse_mode(values.text("file_mode") or default_of("file_mode"), "file mode")
    dir_mode = parse_mode(values.text("dir_mode") or default_of("dir_mode"), "directory mode")
    if dir_mode & 0o700 != 0o700:
        raise UserError(
            f"directory mode {dir_mode:04o} does not let the owner enter and write its folders: use one like 0775"
        )
    return file_mode, dir_mode


def _login(values: Values) -> tuple[str | None, str | None]:
    """The share's user and password (None, None: guest access). Raises :class:`UserError`."""
    user_value, file_value = values["share_user"], values["share_password_file"]
    password_value = read_secret(str(file_value), "share password") if file_value else values["share_password"]
    user = str(user_value) if user_value is not None else None
    password = str(password_value) if password_value is not None else None
    if user is None and password is not None:
        raise UserError("a share password was given without a share user: add --share-user NAME")
    if user is not None:
        check_share_login(user, password)
    return user, password


def _min_free(values: Values) -> int:
    """The free-space watermark in bytes (0: none). Raises :class:`UserError` for a value that is not a size."""
    from winarm.config.vm import parse_size  # here: winarm.config.vm imports this module

    text = (values.text("share_min_free") or str(default_of("share_min_free"))).strip()
    return 0 if text.lower() in ("0", "off", "no") else parse_size(text, "share minimum free space")


def _port(values: Values, *, root: bool) -> int | None:
    """The host port smbd listens on (None: a free one at start), checked free. Raises :class:`UserError`."""
    port_value = values["share_port"]
    port = tcp_port(port_value, "share port", "use 1024-65535, or leave it out") if port_value is not None else None
    if port is None:
        return None
    if port < 1024 and not root:
        raise UserError(f"share port {port} needs root: use a port from 1024, or leave it out")
    check_port_free(port)
    return port
