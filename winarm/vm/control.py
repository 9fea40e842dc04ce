"""The client side of a running daemon's control socket (``winarm status``, ``winarm down``, ``winarm screenshot``).

Protocol: one JSON object on one line in (``{"command": "status"}``, ``{"command": "down"}`` or
``{"command": "screenshot"}``), one JSON object on one line back.

Only our own daemon is trusted: the socket must be a socket of ours in a run directory of ours (checked without
following links), and the process that accepts the connection must run as our uid (``SO_PEERCRED``). Anything
else is treated as no daemon at all, so a socket another local user planted cannot fake a running VM. Root may
ask a user's VM: then the directory, the socket and the listening process must all belong to one uid.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from winarm.config.paths import VmPaths
from winarm.vm.status import VmStatus


def _owner(path: Path, kind: int) -> int | None:
    """The owner of ``path`` when it is (without following a link) of file type ``kind``; else None."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return info.st_uid if stat.S_IFMT(info.st_mode) == kind else None


def trusted_owner(control_socket: Path) -> int | None:
    """The uid whose daemon may answer at ``control_socket``: the run directory's and the socket's common owner,
    when that is our uid (or any, when we are root: root may ask a user's VM); else None."""
    owner = _owner(control_socket.parent, stat.S_IFDIR)
    if owner is None or _owner(control_socket, stat.S_IFSOCK) != owner:
        return None
    return owner if owner == os.geteuid() or os.geteuid() == 0 else None


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of the connected unix socket ``sock``."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def ask(control_socket: Path, command: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Send ``command`` to the daemon behind ``control_socket``; None when no daemon of ours answers there (see
    the module: a socket or a daemon of another uid counts as none)."""
    owner = trusted_owner(control_socket)
    if owner is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(control_socket))
            if peer_uid(sock) != owner:
                return None
            sock.sendall(json.dumps({"command": command}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def running_names(run_base: Path) -> list[str]:
    """Names of the VMs whose run directory under ``run_base`` has a control socket."""
    if not run_base.is_dir():
        return []
    return sorted(p.name for p in run_base.iterdir() if (p / "control.sock").exists())


def status_of(paths: VmPaths, name: str) -> VmStatus:
    """The daemon's status, or a ``stopped`` one when none answers (or its answer cannot be read)."""
    reply = ask(paths.control_socket, "status")
    if reply is not None:
        try:
            return VmStatus.from_json(reply)
        except (KeyError, TypeError):
            pass
    return VmStatus(name=name, state="stopped", run_dir=str(paths.run_dir), state_dir=str(paths.state_dir))
