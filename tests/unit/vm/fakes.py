"""A fake QMP machine and a rig that runs the real supervisor against it, with no QEMU.

The fake stands in for :class:`winarm.qemu.machine.Machine` (QEMU cannot run in the unit tier): QMP events
are pushed by the test, commands are recorded, the serial console is a stream the test feeds, and the exit
happens when the test (or a command handler, like a guest that obeys the power button) says so. Everything
else is real: the supervisor and its parts, the event log, the control socket, the launch's teardown stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from winarm.config.paths import VmPaths
from winarm.config.vm import Config
from winarm.qemu.machine import EventSink
from winarm.services.swtpm import Swtpm
from winarm.timeline.events import Event, EventKind, EventLog
from winarm.vm.launch import Launched
from winarm.vm.supervisor import Supervisor

FAKE_PID = 424242


class WatchedLog(EventLog):
    """The real event log, which also lets a test await the first event of a kind (no sleeps)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, t0=0.0)
        self._waiting: list[tuple[str, asyncio.Future[Event]]] = []

    def record(self, kind: str, *, at: float | None = None, **details: Any) -> Event:
        event = super().record(kind, at=at, **details)
        for wanted, future in self._waiting:
            if wanted == kind and not future.done():
                future.set_result(event)
        return event

    async def seen(self, kind: EventKind, *, after: int = 0) -> Event:
        """The first event of ``kind`` from index ``after`` on, waiting for it if it has not happened yet."""
        for event in self.events[after:]:
            if event["kind"] == kind:
                return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting.append((kind, future))
        return await asyncio.wait_for(future, 10)  # a bound for a broken supervisor, not a synchronisation

    def kinds(self) -> list[str]:
        return [str(e["kind"]) for e in self.events]


class FakeMachine:
    """The machine interface the supervisor uses (see :class:`winarm.vm.supervisor.MachineLike`)."""

    def __init__(self) -> None:
        self.serial_reader: asyncio.StreamReader | None = None
        self.shutdown_seen = False
        self.commands: list[tuple[str, dict[str, Any] | None]] = []
        self.handlers: dict[str, Callable[[], None]] = {}
        """What a command makes happen (``system_powerdown``: the guest shuts down)."""
        self.closed = False
        self._code: int | None = None
        self._exit = asyncio.Event()
        self._sink: EventSink | None = None
        self._pumping = asyncio.Event()

    @property
    def pid(self) -> int:
        return FAKE_PID

    @property
    def exited(self) -> bool:
        return self._code is not None

    @property
    def returncode(self) -> int | None:
        return self._code

    async def __aenter__(self) -> FakeMachine:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.kill()
        self.closed = True

    async def connect(self, connect_timeout: float = 15.0) -> None:
        self.serial_reader = asyncio.StreamReader()

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.commands.append((command, arguments))
        handler = self.handlers.get(command)
        if handler is not None:
            handler()
        return {}

    def sent(self, command: str) -> list[dict[str, Any] | None]:
        """The arguments of each ``command`` sent so far."""
        return [arguments for name, arguments in self.commands if name == command]

    async def cont(self) -> str:
        await self.execute("cont")
        return "running"

    async def pump_events(self, sink: EventSink) -> None:
        self._sink = sink
        self._pumping.set()
        await asyncio.Event().wait()  # events are handed over by emit() until the task is cancelled

    async def emit(self, name: str, data: dict[str, Any] | None = None) -> None:
        """QEMU sends the QMP event ``name`` (once the supervisor pumps events)."""
        await self._pumping.wait()
        assert self._sink is not None
        if name == "SHUTDOWN":
            self.shutdown_seen = True
        self._sink(name, data or {})

    def console(self, text: str) -> None:
        """The guest writes ``text`` on the serial console."""
        assert self.serial_reader is not None
        self.serial_reader.feed_data(text.encode())

    def exit(self, code: int) -> None:
        """QEMU ends with ``code`` (negative: killed by that signal); the console ends with it."""
        if self._code is None:
            self._code = code
            if self.serial_reader is not None:
                self.serial_reader.feed_eof()
            self._exit.set()

    def obey_power_button(self) -> None:
        """The guest shuts down cleanly at the power button."""
        self.handlers["system_powerdown"] = self._shut_down

    def _shut_down(self) -> None:
        self.shutdown_seen = True
        if self._sink is not None:
            self._sink("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        self.exit(0)

    async def send_key(self, key: str) -> None:
        await self.execute("send-key", {"keys": [{"type": "qcode", "data": key}]})

    async def wait(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._exit.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float, on_step: Callable[[EventKind], None] = lambda step: None) -> str:
        """The real ladder in short: power button, quit, kill."""
        if self.exited:
            return "exited"
        on_step(EventKind.POWERDOWN_REQUESTED)
        await self.execute("system_powerdown")
        if await self.wait(timeout):
            return "guest"
        on_step(EventKind.QUIT_SENT)
        await self.execute("quit")
        self.exit(0)
        return "quit"

    async def kill(self) -> None:
        self.exit(-9)


def config(storage: Path, run_base: Path, **changes: Any) -> Config:
    """A small VM's configuration (no TPM, no share, no media)."""
    values: dict[str, Any] = {
        "name": "t", "ram": 512 << 20, "cpus": 1, "disk_size": 256 << 20, "disk_format": "qcow2",
        "disk_bus": "virtio-blk", "storage": storage, "run_base": run_base, "iso": None, "accel": "tcg",
        "tpm": False, "secure_boot": False, "timeout": 30.0, "vnc": "none",
    }
    values.update(changes)
    return Config(**values)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Rig:
    """The real supervisor over a :class:`FakeMachine`, in a temporary storage and run directory."""

    def __init__(self, storage: Path, run_base: Path, *, swtpm: Swtpm | None = None,
                 answer_medium: Path | None = None, **changes: Any) -> None:
        self.cfg = config(storage, run_base, **changes)
        self.paths = VmPaths(self.cfg.state_dir, self.cfg.run_dir)
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = WatchedLog(self.paths.events)
        self.torn_down: list[str] = []
        stack = contextlib.ExitStack()
        stack.callback(self.torn_down.append, "launch")
        stack.callback(self.log.close)
        self.machine = FakeMachine()
        self.out = io.StringIO()
        proc = subprocess.Popen(["true"])
        proc.wait()
        self.launched = Launched(self.cfg, self.paths, self.log, {}, proc, [], stack, swtpm=swtpm,
                                 answer_medium=answer_medium)
        self.room: asyncio.Future[int] | None = asyncio.get_running_loop().create_future() if _in_loop() else None
        """Resolved by the test with the free bytes: the storage has room again."""
        self.room_asked: list[Path] = []
        self.supervisor = Supervisor(self.launched, self.machine, out=self.out, room=self._wait_for_room)

    async def _wait_for_room(self, storage: Path) -> int:
        self.room_asked.append(storage)
        assert self.room is not None
        return await self.room

    def start(self) -> asyncio.Task[int]:
        """Run the supervisor; the test awaits the task for its exit status."""
        return asyncio.get_running_loop().create_task(self.supervisor.run())

    def said(self) -> list[str]:
        return self.out.getvalue().splitlines()
