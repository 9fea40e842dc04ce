"""The QMP session and serial console of a spawned QEMU, and the stop that always ends with QEMU gone.

The protocol layer is qemu.qmp; this module adds the life cycle around it: a connection that reports QEMU's
own words when it dies at once, and a stop that asks the guest first (ACPI power button), then QEMU
(``quit``), then the kernel (SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from qemu.qmp import ExecuteError, QMPClient, QMPError

from winarm.errors import RuntimeFailure
from winarm.procs import wait_exit
from winarm.timeline.events import EventKind

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
    """A running (at first paused) QEMU process with its QMP monitor and serial console.

    As an async context manager it owns its end: leaving it kills QEMU if it still runs, reaps it, and drops
    the QMP session and the console (entering connects nothing: see :meth:`connect`)."""

    def __init__(self, proc: subprocess.Popen[bytes], *, qmp_socket: Path, serial_socket: Path,
                 qemu_log: Path, name: str) -> None:
        self.proc = proc
        self.qmp_socket = qmp_socket
        self.serial_socket = serial_socket
        self.qemu_log = qemu_log
        self.qmp = QMPClient(f"winarm-{name}")
        self.serial_reader: asyncio.StreamReader | None = None
        self._serial_writer: asyncio.StreamWriter | None = None
        self.shutdown_seen = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def exited(self) -> bool:
        return self.proc.poll() is not None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    async def __aenter__(self) -> Machine:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.kill()
        await self.close()

    async def connect(self, connect_timeout: float = 15.0) -> None:
        """Open the QMP session and the serial console.

        Raises :class:`RuntimeFailure` with QEMU's last words when it exits before the session is up (a bad
        option, a missing file) or does not answer within ``connect_timeout`` (QEMU is then killed).
        """

        async def connect() -> None:
            await self.qmp.connect(str(self.qmp_socket))
            self.serial_reader, self._serial_writer = await asyncio.open_unix_connection(str(self.serial_socket))

        connecting = asyncio.create_task(connect())
        dying = asyncio.create_task(wait_exit(self.proc))
        try:
            done, _ = await asyncio.wait({connecting, dying}, timeout=connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:  # ours cancelled or not, neither helper outlives the wait; their ends are read below
            for helper in (connecting, dying):
                helper.cancel()
            await asyncio.wait({connecting, dying})
        if connecting in done and connecting.exception() is None:
            return
        if dying in done:
            raise RuntimeFailure(
                f"QEMU exited at start (status {self.proc.poll()}): {tail(self.qemu_log) or 'no output'}"
            )
        await self.kill()
        if connecting.done() and not connecting.cancelled() and connecting.exception() is not None:
            raise RuntimeFailure(f"could not talk to QEMU's monitor: {connecting.exception()}")
        raise RuntimeFailure(
            f"QEMU did not answer on its monitor within {connect_timeout:.0f} s: {tail(self.qemu_log)}"
        )

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a QMP command; raises :class:`RuntimeFailure` when QEMU refuses it or its monitor is gone."""
        try:
            return await self.qmp.execute(command, arguments)
        except ExecuteError as exc:
            raise RuntimeFailure(f"QEMU refused {command}: {exc}") from None
        except (QMPError, EOFError, OSError) as exc:
            raise RuntimeFailure(f"QEMU's monitor is gone ({command}): {exc or type(exc).__name__}") from None

    async def cont(self) -> str:
        """Let the paused VM run; returns the QMP run state afterwards (``running``)."""
        await self.execute("cont")
        status = await self.execute("query-status")
        return str(status.get("status", "unknown"))

    async def pump_events(self, sink: EventSink) -> None:
        """Forward every QMP event to ``sink(name, data)`` until the session ends or the task is cancelled."""
        with contextlib.suppress(EOFError, OSError):
            async for event in self.qmp.events:
                name = str(event["event"])
                if name == "SHUTDOWN":
                    self.shutdown_seen = True
                data = event.get("data", {})
                sink(name, dict(data) if isinstance(data, dict) else {})

    async def send_key(self, key: str) -> None:
        """Press and release one key (a QEMU qcode such as ``spc`` or ``ret``) on the USB keyboard."""
        await self.execute("send-key", {"keys": [{"type": "qcode", "data": key}]})

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for QEMU to exit, at most ``timeout`` seconds; True when it has."""
        return await wait_exit(self.proc, timeout)

    async def stop(self, timeout: float, on_step: Callable[[EventKind], None] = lambda step: None) -> str:
        """Stop the VM and return how: ``guest`` (it shut down after the power button), ``quit`` (QEMU was
        told to quit after ``timeout`` seconds), ``killed`` (QEMU ignored quit for 2 s) or ``exited``
        (it was already gone). ``on_step`` hears ``powerdown-requested``, ``quit-sent``, ``killed``."""
        if self.exited:
            return "exited"
        on_step(EventKind.POWERDOWN_REQUESTED)
        with contextlib.suppress(Exception):
            await self.qmp.execute("system_powerdown")
        if await self.wait(timeout):
            return "guest"
        on_step(EventKind.QUIT_SENT)
        with contextlib.suppress(Exception):
            await self.qmp.execute("quit")
        if await self.wait(QUIT_GRACE):
            return "quit"
        on_step(EventKind.KILLED)
        await self.kill()
        return "killed"

    async def kill(self) -> None:
        """SIGKILL QEMU (if alive) and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await wait_exit(self.proc)

    async def close(self) -> None:
        """Drop the QMP session and serial connection (QEMU may already be gone)."""
        with contextlib.suppress(Exception):
            await self.qmp.disconnect()
        if self._serial_writer is not None:
            self._serial_writer.close()
            with contextlib.suppress(Exception):
                await self._serial_writer.wait_closed()
