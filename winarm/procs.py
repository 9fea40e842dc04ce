"""Child processes that can never outlive winarm, and sockets handed to them ready to accept.

Every helper (QEMU, swtpm, smbd) is started through :func:`spawn`: argv lists only, never a shell, and the
kernel is asked (``PR_SET_PDEATHSIG``) to kill the child with SIGKILL the moment winarm dies, whatever kills
winarm (SIGKILL included).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Run in the child between fork and exec: tie its life to the parent's."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


async def spawn(
    argv: Sequence[str],
    *,
    pass_fds: Sequence[int] = (),
    stdout: int | IO[Any] | None = asyncio.subprocess.DEVNULL,
    stderr: int | IO[Any] | None = asyncio.subprocess.DEVNULL,
    stdin: int | IO[Any] | None = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """Start ``argv`` as a child that dies with this process. Raises OSError (FileNotFoundError for a
    missing program) from the exec."""
    parent = os.getpid()
    return await asyncio.create_subprocess_exec(
        *argv,
        pass_fds=tuple(pass_fds),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=lambda: _die_with_parent(parent),
        start_new_session=True,
    )


def listening_socket(path: Path, *, mode: int = 0o600) -> socket.socket:
    """Bind and listen on a unix socket at ``path`` (a stale file there is removed), with ``mode``.

    The socket is inheritable, so a child given its fd in ``pass_fds`` serves it; a client may connect at
    once and is queued until the child accepts.
    """
    if path.is_socket() or path.exists():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(4)
    sock.set_inheritable(True)
    return sock


async def terminate(proc: asyncio.subprocess.Process, grace: float = 2.0) -> int:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the exit status. Safe on a dead child."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    return await proc.wait()
