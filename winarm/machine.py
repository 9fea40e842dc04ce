"""One QEMU process and its QMP session: launch paused, connect, continue, watch, stop.

The protocol layer is qemu.qmp; this module adds the life cycle around it: a launch that reports QEMU's own
words when it dies at once, and a stop that asks the guest first (ACPI power button), then QEMU (``quit``),
then the kernel (SIGKILL), and always returns with the process gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qemu.qmp import ExecuteError, QMPClient

from .errors import RuntimeFailure
from .procs import spawn

log = logging.getLogger("winarm.machine")

EventSink = Callable[[str, dict[str, Any]], None]
QUIT_GRACE = 2.0
"""Seconds QEMU gets to exit after ``quit`` before it is killed."""


def tail(path: Path, lines: int = 8) -> str:
    """The last non-empty ``lines`` of a text file, joined with ' | ' (empty when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


class Machine:
    """A QEMU process started paused with its QMP monitor and serial console on inherited sockets."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        qmp_listener: socket.socket,
        serial_listener: socket.socket,
        qemu_log: Path,
        name: str,
    ) -> None:
        self.argv = list(argv)
        self._qmp_listener = qmp_listener
        self._serial_listener = serial_listener
        self.qemu_log = qemu_log
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.qmp = QMPClient(f"winarm-{name}")
        self.serial_reader: asyncio.StreamReader | None = None
        self._serial_writer: asyncio.StreamWriter | None = None
        self.shutdown_seen = False
        self.stop_how: str | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    async def launch(self, connect_timeout: float = 15.0) -> None:
        """Spawn QEMU (paused), open the QMP session and the serial console.

        Raises :class:`RuntimeFailure` with QEMU's last words when it exits before the session is up (a bad
        option, a missing file) or does not answer within ``connect_timeout``.
        """
        with self.qemu_log.open("ab") as log_file:
            try:
                self.proc = await spawn(
                    self.argv,
                    pass_fds=(self._qmp_listener.fileno(), self._serial_listener.fileno()),
                    stdout=log_file,
                    stderr=log_file,
                )
            except FileNotFoundError:
                raise RuntimeFailure(
                    f"{self.argv[0]} not found: install it (Debian: apt-get install qemu-system-arm)"
                ) from None
        # our copies of the listening sockets are no longer needed: QEMU holds its own
        qmp_path = self._qmp_listener.getsockname()
        serial_path = self._serial_listener.getsockname()
        self._qmp_listener.close()
        self._serial_listener.close()

        async def connect() -> None:
            await self.qmp.connect(qmp_path)
            self.serial_reader, self._serial_writer = await asyncio.open_unix_connection(serial_path)

        assert self.proc is not None
        connecting = asyncio.ensure_future(connect())
        dying = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait({connecting, dying}, timeout=connect_timeout, return_when=asyncio.FIRST_COMPLETED)
        if connecting in done and connecting.exception() is None:
            dying.cancel()
            return
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        if dying in done:
            raise RuntimeFailure(
                f"QEMU exited at start (status {self.proc.returncode}): {tail(self.qemu_log) or 'no output'}"
            )
        dying.cancel()
        await self.kill()
        if connecting.done() and not connecting.cancelled() and connecting.exception() is not None:
            raise RuntimeFailure(f"could not talk to QEMU's monitor: {connecting.exception()}")
        raise RuntimeFailure(
            f"QEMU did not answer on its monitor within {connect_timeout:.0f} s: {tail(self.qemu_log)}"
        )

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a QMP command; raises :class:`RuntimeFailure` when QEMU refuses it."""
        try:
            return await self.qmp.execute(command, arguments)
        except ExecuteError as exc:
            raise RuntimeFailure(f"QEMU refused {command}: {exc}") from None

    async def cont(self) -> str:
        """Let the paused VM run; returns the QMP run state afterwards (``running``)."""
        await self.execute("cont")
        status = await self.execute("query-status")
        return str(status.get("status", "unknown"))

    async def pump_events(self, sink: EventSink) -> None:
        """Forward every QMP event to ``sink(name, data)`` until the session ends."""
        try:
            async for event in self.qmp.events:
                name = str(event["event"])
                if name == "SHUTDOWN":
                    self.shutdown_seen = True
                data = event.get("data", {})
                sink(name, dict(data) if isinstance(data, dict) else {})
        except (EOFError, OSError, asyncio.CancelledError):
            return

    async def send_key(self, key: str) -> None:
        """Press and release one key (a QEMU qcode such as ``spc`` or ``ret``) on the USB keyboard."""
        await self.execute("send-key", {"keys": [{"type": "qcode", "data": key}]})

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for QEMU to exit, at most ``timeout`` seconds; True when it has."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float, on_step: Callable[[str], None] = lambda step: None) -> str:
        """Stop the VM and return how: ``guest`` (it shut down after the power button), ``quit`` (QEMU was
        told to quit after ``timeout`` seconds), ``killed`` (QEMU ignored quit for 2 s) or ``exited``
        (it was already gone). ``on_step`` hears ``powerdown-requested``, ``quit-sent``, ``killed``."""
        if self.proc is None or self.exited:
            return "exited"
        with contextlib.suppress(Exception):
            await self.qmp.execute("system_powerdown")
            on_step("powerdown-requested")
        if await self.wait(timeout):
            self.stop_how = "guest"
            return "guest"
        on_step("quit-sent")
        with contextlib.suppress(Exception):
            await self.qmp.execute("quit")
        if await self.wait(QUIT_GRACE):
            self.stop_how = "quit"
            return "quit"
        on_step("killed")
        await self.kill()
        self.stop_how = "killed"
        return "killed"

    async def kill(self) -> None:
        """SIGKILL QEMU (if alive) and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def close(self) -> None:
        """Drop the QMP session and serial connection (QEMU may already be gone)."""
        with contextlib.suppress(Exception):
            await self.qmp.disconnect()
        if self._serial_writer is not None:
            self._serial_writer.close()
            with contextlib.suppress(Exception):
                await self._serial_writer.wait_closed()
