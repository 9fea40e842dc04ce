"""Child processes that can never outlive winarm, and sockets handed to them ready to accept.

Every helper (QEMU, swtpm, qemu-img) is started through :func:`spawn`: argv lists only, never a shell, and
the kernel is asked (``PR_SET_PDEATHSIG``) to kill the child with SIGKILL the moment winarm dies, whatever
kills winarm (SIGKILL included). Spawning is synchronous so QEMU can start before winarm has even imported
asyncio; waiting is asynchronous through a pidfd, which becomes readable when the child ends (no polling).

No child gets winarm's secrets: the environment it is given (winarm's own, or the one passed) has every
variable of :data:`SECRET_ENV` and every ``*_PASSWORD`` removed, so neither QEMU nor the relays QEMU starts
(which inherit QEMU's environment) nor swtpm nor smbd can show them in ``/proc/PID/environ``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

_PR_SET_PDEATHSIG = 1
SECRET_ENV = frozenset({"PASSWORD", "SHARE_PASSWORD", "VNC_PASSWORD", "KEY"})
"""winarm's settings that hold a secret (``KEY``: the product key); see :func:`child_environment`."""


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: winarm's own environment) without the secrets: :data:`SECRET_ENV` and ``*_PASSWORD``."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if k not in SECRET_ENV and not k.endswith("_PASSWORD")}


def _die_with_parent(parent_pid: int) -> None:
    """Run in the child between fork and exec: tie its life to the parent's."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def spawn(
    argv: Sequence[str],
    *,
    pass_fds: Sequence[int] = (),
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that dies with this process, in its own session (a terminal's Ctrl-C
    reaches winarm, which stops the VM gracefully, not QEMU), with ``env`` (default: winarm's) less the secrets
    (:func:`child_environment`). Raises OSError (FileNotFoundError for a missing program)."""
    parent = os.getpid()
    return subprocess.Popen(
        list(argv),
        pass_fds=tuple(pass_fds),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=lambda: _die_with_parent(parent),  # noqa: PLW1509 - winarm starts no threads
        start_new_session=True,
        env=child_environment(env),
        cwd=cwd,
    )


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float | None = None) -> bool:
    """Wait (without blocking the loop) until ``proc`` ends and reap it; False if ``timeout`` passed first."""
    import asyncio  # here, not at the top: QEMU is spawned before winarm imports asyncio

    if proc.poll() is not None:
        return True
    loop = asyncio.get_running_loop()
    fd = os.pidfd_open(proc.pid)
    ended: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(ended, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    proc.wait()
    return True


async def terminate(proc: subprocess.Popen[bytes], grace: float = 2.0) -> int:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the exit status. Safe on a dead child."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        if not await wait_exit(proc, grace):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await wait_exit(proc)
    return proc.wait()


def kill_now(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` if it still runs, and reap it: the synchronous last resort of a teardown (no event loop
    needed). Safe on a child already gone."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    proc.wait()


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
