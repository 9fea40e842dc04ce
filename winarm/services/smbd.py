"""The VM's own smbd: its configuration, its start, its health and its restarts.

Each VM runs one smbd whose every state directory lives in ``RUN_DIR/samba`` (two VMs never share Samba
state), listening on 127.0.0.1 only, on a port of its own; QEMU forwards the guest's ``10.0.2.4:445`` there.
Files the guest creates belong to the configured uid/gid: smbd works as the account ``winarm-owner``, which
exists only for smbd, through nss_wrapper's private passwd and group files (so any uid works, named on the
host or not, and nothing on the host changes). A user login maps the share user to that account.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from winarm.config.share import ShareSettings
from winarm.config.vm import format_size
from winarm.errors import RuntimeFailure
from winarm.files import write_atomic
from winarm.procs import kill_now, spawn, terminate, wait_exit
from winarm.services.share_space import Space, should_be_full, switch, tightest
from winarm.services.smb_conf import OWNER, identity_files, render_conf
from winarm.timeline.events import EventKind

STATE_DIRS = ("private", "state", "cache", "lock", "pid", "ncalrpc")
NSS_WRAPPER_GLOBS = (
    "/usr/lib/*-linux-gnu/libnss_wrapper.so",
    "/usr/lib64/libnss_wrapper.so",
    "/usr/lib/libnss_wrapper.so",
)
READY_TIMEOUT = 10.0
RESTART_WINDOW = 30.0
RESTARTS_PER_WINDOW = 5
HEALTH_INTERVAL = 5.0


def find_nss_wrapper() -> str:
    """The nss_wrapper library. Raises :class:`RuntimeFailure` naming the package when it is missing."""
    for pattern in NSS_WRAPPER_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise RuntimeFailure("libnss_wrapper.so not found: install libnss-wrapper, or run with --no-share")


def check_available() -> None:
    """Raise :class:`RuntimeFailure` naming what to install when smbd, pdbedit, socat or nss_wrapper is missing."""
    for program, package in (("smbd", "samba"), ("pdbedit", "samba"), ("socat", "socat")):
        if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
            raise RuntimeFailure(f"{program} not found: install {package} (Debian: apt-get install {package}), "
                                 "or run with --no-share")
    find_nss_wrapper()


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _reason(log: str, port: int) -> str:
    """The one-line reason in smbd's output for a failed start."""
    lowered = log.lower()
    if "address already in use" in lowered or "bind failed" in lowered:
        return f"port {port} on 127.0.0.1 is in use"
    if "permission denied" in lowered:
        return "permission denied (see the log)"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


class Smbd:
    """One supervised smbd. :meth:`start` spawns it (synchronously, before QEMU), :meth:`wait_ready` waits until
    it accepts, :meth:`supervise` restarts it when it dies and checks its health, :meth:`stop` ends it."""

    def __init__(self, settings: ShareSettings, samba_dir: Path, port: int | None = None) -> None:
        self.settings = settings
        self.dir = samba_dir
        self.port = port if port is not None else (settings.port or free_port())
        self.conf = samba_dir / "smb.conf"
        self.log_path = samba_dir / "smbd.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.healthy = False
        self.restarts = 0
        self.last_check: float | None = None
        self.last_error: str | None = None
        self._stopping = False
        self._env: dict[str, str] = {}
        self.space_full = False
        """Whether the shares are read-only for want of space (:mod:`winarm.services.share_space`)."""
        self.space: Space | None = None

    # -- files ------------------------------------------------------------------------------------------------
    def write_files(self) -> None:
        """Create the state directories (0700) and write smb.conf, the identity files, the user map and, for a
        user login, the share user's password into the private passdb. Raises :class:`RuntimeFailure`."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        for share in self.settings.shares:
            if share.adopt and not any(share.path.iterdir()):
                os.chown(share.path, self.settings.uid, self.settings.gid)
                os.chmod(share.path, self.settings.dir_mode)
        for name in STATE_DIRS:
            (self.dir / name).mkdir(mode=0o700, exist_ok=True)
        # a restart of the VM starts from a clean cache: it keeps stale uid-to-SID mappings
        shutil.rmtree(self.dir / "cache", ignore_errors=True)
        (self.dir / "cache").mkdir(mode=0o700)
        passwd, group = identity_files(self.settings)
        write_atomic(self.dir / "passwd", passwd.encode())
        write_atomic(self.dir / "group", group.encode())
        write_atomic(self.conf, render_conf(self.settings, self.dir, self.port).encode())
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LD_PRELOAD": find_nss_wrapper(),
            "NSS_WRAPPER_PASSWD": str(self.dir / "passwd"),
            "NSS_WRAPPER_GROUP": str(self.dir / "group"),
        }
        if not self.settings.guest_login:
            write_atomic(self.dir / "users.map", f"{OWNER} = {self.settings.user}\n".encode())
            self._set_password()

    def _set_password(self) -> None:
        password = self.settings.password or ""
        proc = subprocess.run(
            [_program("pdbedit"), "-s", str(self.conf), "-a", "-u", OWNER, "-t"],
            input=f"{password}\n{password}\n".encode(),
            env=self._env,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            last = detail[-1] if detail else "no output"
            raise RuntimeFailure(f"the share user could not be set up (pdbedit): {last}")

    # -- process ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn smbd (the files must be written). Raises :class:`RuntimeFailure` when it cannot be spawned."""
        try:
            with self.log_path.open("ab") as log_file:
                self.proc = spawn(
                    [_program("smbd"), "--foreground", "--no-process-group", "--debug-stdout", "-s", str(self.conf)],
                    stdout=log_file, stderr=log_file, env=self._env,
                )
        except OSError as error:
            raise RuntimeFailure(
                f"smbd could not be started: {error.strerror}: install samba, or run with --no-share"
            ) from None

    @property
    def env(self) -> dict[str, str]:
        """The environment smbd and its tools run with (nss_wrapper's files; set by :meth:`write_files`)."""
        return dict(self._env)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until smbd accepts TCP connections on its port; return how long that took from now.

        Raises :class:`RuntimeFailure` with smbd's reason when it exits first or does not accept within
        ``timeout``. Each try is a connect, retried every 5 ms (smbd offers no readiness signal); an accepted
        connection counts only when the listening socket is smbd's own."""
        import asyncio  # here, not at the top: smbd is spawned before winarm imports asyncio

        start = time.monotonic()
        while True:
            if not self.alive:
                code = self.proc.returncode if self.proc is not None else None
                raise RuntimeFailure(
                    f"smbd exited at start (status {code}): {_reason(self._log_tail(), self.port)}; log {self.log_path}"
                )
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() - start > timeout:
                    raise RuntimeFailure(
                        f"smbd did not accept on 127.0.0.1:{self.port} within {timeout:g} s: "
                        f"{_reason(self._log_tail(), self.port)}"
                    ) from None
                await asyncio.sleep(0.005)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if self._listens_itself():
                return time.monotonic() - start
            await asyncio.sleep(0.005)  # another program holds the port; smbd will exit saying so

    def _listens_itself(self) -> bool:
        """Whether the listener on the port is smbd's own (not another program that got the port first)."""
        import psutil

        if self.proc is None:
            return False
        try:
            connections = psutil.Process(self.proc.pid).net_connections(kind="tcp4")
        except psutil.Error:
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in connections)

    async def check_health(self, timeout: float = 5.0) -> bool:
        """An SMB session as the guest would open one (negotiate, login, tree connect to the first share), in a
        worker thread. Updates :attr:`healthy` and :attr:`last_error`; never raises."""
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, self._smb_session), timeout)
        except Exception as error:  # any failure is "unhealthy", with its reason kept for status
            self.healthy = False
            self.last_error = f"{type(error).__name__}: {error}"[:300]
        else:
            self.healthy = True
            self.last_error = None
        self.last_check = time.time()
        return self.healthy

    def _smb_session(self) -> None:
        from smbprotocol.connection import Connection
        from smbprotocol.session import Session
        from smbprotocol.tree import TreeConnect

        # a guest session cannot sign; a user session must (Samba refuses an unsigned one at tree connect)
        connection = Connection(uuid.uuid4(), "127.0.0.1", self.port, require_signing=not self.settings.guest_login)
        connection.connect(timeout=4)
        try:
            if self.settings.guest_login:
                session = Session(connection, "guest", "", require_encryption=False, auth_protocol="ntlm")
            else:
                session = Session(connection, self.settings.user, self.settings.password,
                                  require_encryption=False, auth_protocol="ntlm")
            session.connect()
            tree = TreeConnect(session, f"\\\\127.0.0.1\\{self.settings.shares[0].name}")
            tree.connect(require_secure_negotiate=False)
            tree.disconnect()
            session.disconnect()
        finally:
            connection.disconnect(close=True)

    async def supervise(self, on_event: Callable[..., Any], say: Callable[[str], None]) -> None:
        """Restart smbd whenever it dies (at once, same port and files), and check its health every few seconds,
        until :meth:`stop`. After more than a few deaths in a short window it is left stopped and unhealthy;
        the VM runs on either way. ``on_event(kind, **details)`` hears each :class:`EventKind` of the share."""
        import asyncio

        async with asyncio.TaskGroup() as tasks:
            health = tasks.create_task(self._health_loop(on_event, say))
            try:
                await self._restart_loop(on_event, say)
            finally:
                health.cancel()

    async def _restart_loop(self, on_event: Callable[..., Any], say: Callable[[str], None]) -> None:
        deaths: list[float] = []
        while not self._stopping and self.proc is not None:
            await wait_exit(self.proc)
            if self._stopping:
                return
            self.healthy = False
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
            on_event(EventKind.SMBD_EXITED, code=self.proc.returncode)
            if len(deaths) > RESTARTS_PER_WINDOW:
                self.last_error = f"smbd died {len(deaths)} times in {RESTART_WINDOW:g} s; not restarted"
                say(f"share: {self.last_error}: {_reason(self._log_tail(), self.port)}")
                on_event(EventKind.SMBD_GIVEN_UP, reason=self.last_error)
                return
            try:
                self.start()
                took = await self.wait_ready()
            except RuntimeFailure as error:
                self.last_error = str(error)
                say(f"share: restart failed: {error}")
                continue
            self.restarts += 1
            on_event(EventKind.SMBD_RESTARTED, pid=self.pid, ready_after=round(took, 4), restarts=self.restarts)
            say(f"share: smbd died and was restarted (pid {self.pid}, accepting after {took * 1000:.0f} ms)")
            await self.check_health()

    async def _health_loop(self, on_event: Callable[..., Any], say: Callable[[str], None]) -> None:
        import asyncio

        was: bool | None = None
        while not self._stopping:
            if self.alive:
                healthy = await self.check_health()
                if healthy != was:
                    on_event(EventKind.SHARE_HEALTH, healthy=healthy, error=self.last_error)
                    was = healthy
                self.check_space(on_event, say)
            await asyncio.sleep(HEALTH_INTERVAL)

    def check_space(self, on_event: Callable[..., Any], say: Callable[[str], None]) -> None:
        """Turn the shares read-only when the tightest writable one has less than ``min_free`` bytes free, and
        writable again once there is room (see :mod:`winarm.services.share_space`); off when ``min_free`` is 0."""
        self.space = tightest(self) if self.settings.min_free else None
        if self.space is None:
            return
        full = should_be_full(self.space_full, self.space.free, self.settings.min_free)
        if full == self.space_full:
            return
        self.space_full = full
        error = switch(self, readonly=full)
        free, line = self.space.free, format_size(self.settings.min_free)
        if full:
            on_event(EventKind.SHARE_READONLY, free=free, min_free=self.settings.min_free, path=str(self.space.path),
                     error=error)
            say(f"share: {format_size(free)} free on {self.space.path}, under {line}: the share is read-only until "
                "there is room" + (f" ({error})" if error else ""))
        else:
            on_event(EventKind.SHARE_WRITABLE, free=free, error=error)
            say(f"share: {format_size(free)} free again: the share is writable")

    async def stop(self) -> None:
        """End smbd (SIGTERM, then SIGKILL after 2 s); no restart follows."""
        self._stopping = True
        self.healthy = False
        if self.proc is not None:
            await terminate(self.proc)

    async def close(self) -> None:
        """The graceful end the supervisor registers: :meth:`stop`."""
        await self.stop()

    def kill_now(self) -> None:
        """SIGKILL and reap smbd if it runs: the synchronous last resort registered by the launch."""
        self._stopping = True
        if self.proc is not None:
            kill_now(self.proc)

    def status(self) -> dict[str, Any]:
        """The ``share`` object of ``winarm status --json``."""
        s = self.settings
        return {
            "path": str(s.shares[0].path),
            "uid": s.uid,
            "gid": s.gid,
            "file_mode": f"{s.file_mode:04o}",
            "dir_mode": f"{s.dir_mode:04o}",
            "host_address": "127.0.0.1",
            "host_port": self.port,
            "guest_unc": s.shares[0].guest_unc,
            "login": "guest" if s.guest_login else "user",
            "user": s.user,
            "shares": [
                {"name": sh.name, "path": str(sh.path), "readonly": sh.readonly, "guest_unc": sh.guest_unc}
                for sh in s.shares
            ],
            "smbd_pid": self.pid if self.alive else None,
            "restarts": self.restarts,
            "healthy": self.healthy and self.alive,
            "last_check": self.last_check,
            "error": self.last_error,
            "min_free": s.min_free,
            "free": self.space.free if self.space else None,
            "readonly_for_space": self.space_full,
        }
