"""The client side of a running daemon's control socket (``winarm status``, ``winarm down``, ``winarm screenshot``).

Protocol: one JSON object on one line in (``{"command": "status"}``, ``{"command": "down"}`` or
``{"command": "screenshot"}``), one JSON object on one line back.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from winarm.config.paths import VmPaths
from winarm.vm.status import VmStatus


def ask(control_socket: Path, command: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Send ``command`` to the daemon behind ``control_socket``; None when no daemon answers there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(control_socket))
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
