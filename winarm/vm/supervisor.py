"""The supervisor behind ``winarm up``: one asyncio loop that takes over a just-spawned, paused QEMU.

QMP and serial connected -> continue -> watch events and the console (phases, the CD prompt, markers) ->
stop on request (signal, ``winarm down``, a marker, a lost TPM) -> clean up: QEMU, swtpm and smbd gone, run dir
removed. Every resource registers its close on one :class:`contextlib.AsyncExitStack` as it is acquired, every
task runs in one :class:`asyncio.TaskGroup`, and the launch's own teardown is closed last. The parts:
:mod:`~winarm.vm.install_watch` (the console), :mod:`~winarm.vm.storage_pause` (a full storage),
:mod:`~winarm.vm.share_watch` (the desktop-ready file), :mod:`~winarm.vm.control_server` (``status``, ``down``),
:mod:`~winarm.vm.ending` (the exit), with the machine injected so a fake can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from winarm.errors import RuntimeFailure
from winarm.guest import DESKTOP_READY, REPORT_URL
from winarm.qemu.disk import grown_line
from winarm.timeline.events import EventKind
from winarm.timeline.phases import derive_phases
from winarm.vm import ending, stop_plan
from winarm.vm.control_server import ControlServer
from winarm.vm.facts import Facts
from winarm.vm.firmware_watch import FIRMWARE_ONLY_ENV
from winarm.vm.full_storage import wait_for_room
from winarm.vm.guest_reports import desktop_ready_missing, missing_line
from winarm.vm.install_watch import InstallWatch
from winarm.vm.report import Reporter
from winarm.vm.share_watch import ShareWatch
from winarm.vm.state import Lifecycle, VmState
from winarm.vm.status import VmStatus
from winarm.vm.storage_pause import RoomWait, StoragePause
from winarm.vm.vnc_secret import vnc_access, vnc_where
from winarm.vm.watches import Watches

if TYPE_CHECKING:
    from types import TracebackType

    from winarm.qemu.machine import EventSink
    from winarm.vm.launch import Launched

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class MachineLike(Protocol):
    """What the supervisor needs of a machine (:class:`winarm.qemu.machine.Machine`, or a fake in tests)."""

    serial_reader: asyncio.StreamReader | None
    shutdown_seen: bool

    @property
    def pid(self) -> int: ...
    @property
    def exited(self) -> bool: ...
    @property
    def returncode(self) -> int | None: ...
    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None: ...
    async def connect(self, connect_timeout: float = 15.0) -> None: ...
    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...
    async def cont(self) -> str: ...
    async def pump_events(self, sink: EventSink) -> None: ...
    async def send_key(self, key: str) -> None: ...
    async def wait(self, timeout: float | None = None) -> bool: ...
    async def stop(self, timeout: float, on_step: Callable[[EventKind], None] = ...) -> str: ...
    async def kill(self) -> None: ...


class Supervisor:
    """Runs one launched VM from start to stop. Use :meth:`run`; it returns the process exit status."""

    def __init__(self, launched: Launched, machine: MachineLike, *, out: TextIO | None = None,
                 echo_console: bool = False, room: RoomWait = wait_for_room) -> None:
        self.launched = launched
        self.cfg = launched.cfg
        self.paths = launched.paths
        self.machine = machine
        self.echo_console = echo_console
        self.reporter = Reporter(launched.events, self.cfg.name, out)
        self.lifecycle = Lifecycle()
        self.facts = Facts(self.paths, launched.facts, self.reporter)
        self.install = InstallWatch(self.reporter, machine, self.facts, answer_medium=launched.answer_medium,
                                    on_marker=self._on_marker, install_cd=self.cfg.iso is not None,
                                    on_fail=self._on_fail, firmware_only=os.environ.get(FIRMWARE_ONLY_ENV) == "1")
        self.storage = StoragePause(self.reporter, self.lifecycle, storage=self.cfg.storage,
                                    qemu_log=self.paths.qemu_log, cont=lambda: machine.execute("cont"),
                                    wait_for_room=room)
        self.storage.before_resume = self.facts.save_if_unsaved
        self.watches = Watches(launched, machine, self.reporter, self.install, self._spawn)
        self._stop_requested = asyncio.Event()
        self.storage.stopping = self._stop_requested.is_set
        self._stop_reason = ""
        self._stop_plan: stop_plan.StopPlan | None = None
        self._failure: str | None = None
        self._signals = 0
        self._vnc: str | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._background: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None

    # -- requests -----------------------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask for a graceful stop (idempotent). The request is the shutdown phase's start, recorded now: what
        the guest prints before the supervisor gets to press the power button belongs to the shutdown."""
        if not self._stop_requested.is_set():
            self._stop_reason = reason
            self._stop_plan = stop_plan.plan_stop(self.reporter.events.events, self.cfg.timeout,
                                                  reports=self.cfg.guest_channel)
            self._stop_requested.set()
            self.reporter.record(EventKind.STOP_REQUESTED, reason=reason)

    def _on_fail(self, reason: str) -> None:
        """The VM cannot boot (the install watch said why): stop it, with exit status 1."""
        self._failure = reason
        self.request_stop(reason)

    def _on_marker(self, name: str) -> None:
        if self.cfg.stop_at and name in self.cfg.stop_at.split(","):
            self.request_stop(f"the guest reached {name}")

    def _on_signal(self, signum: int) -> None:
        """The first signal asks for a graceful stop; the next kills QEMU now."""
        self._signals += 1
        if self._signals == 1:
            self.reporter.say(f"{signal.Signals(signum).name}: stopping the VM gracefully (again to force)")
            self.request_stop(signal.Signals(signum).name)
        else:
            self.reporter.say("second signal: stopping QEMU now")
            self._spawn(self.machine.kill())

    def _on_down(self) -> dict[str, Any]:
        self.request_stop("winarm down")
        plan = self._stop_plan
        return {"ok": True, "daemon_pid": os.getpid(), "timeout": plan.wait if plan else self.cfg.timeout,
                "because": plan.reason if plan else None}

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in the supervisor's task group: its failure ends the run and is reported, never lost."""
        assert self._tasks is not None, "tasks are spawned only while the supervisor runs"
        return self._tasks.create_task(work)

    # -- what happens -------------------------------------------------------------------------------------------
    def _on_qmp_event(self, name: str, data: dict[str, Any]) -> None:
        self.watches.on_qmp_event(name, data)
        if name == "RESET":
            self.install.new_boot()
            self.reporter.record(EventKind.RESET, guest=bool(data.get("guest", False)), reason=data.get("reason"))
        elif name == "SHUTDOWN":
            self.reporter.record(EventKind.SHUTDOWN, guest=bool(data.get("guest", False)),
                                 reason=data.get("reason"))
        elif name == "POWERDOWN":
            self.reporter.record(EventKind.POWERDOWN)
        elif name in ("STOP", "RESUME", "GUEST_PANICKED"):
            self.reporter.record(EventKind(name.lower()))
        elif name == "BLOCK_IO_ERROR":
            self.storage.on_io_error(data, self._spawn)

    def _on_share_event(self, kind: EventKind, **details: Any) -> None:
        self.reporter.record(kind, **details)
        if kind == EventKind.SHARE_HEALTH:
            smbd = self.launched.smbd
            login = "guest" if smbd is None or smbd.settings.guest_login else "user"
            self.reporter.say(f"share: healthy (an SMB {login} session reaches the share)" if details.get("healthy")
                              else f"share: UNHEALTHY: {details.get('error')}")

    def status(self) -> VmStatus:
        """What ``winarm status`` reports for this VM now."""
        events = self.launched.events
        phases = derive_phases(events.events)
        swtpm, smbd = self.launched.swtpm, self.launched.smbd
        running = self.lifecycle.state == VmState.RUNNING
        return VmStatus(
            name=self.cfg.name, state=self.lifecycle.state.value,
            paused="storage full" if self.storage.paused else None, log_behind=events.write_error is not None,
            healthy=running and not self.machine.exited and (swtpm is None or swtpm.alive)
            and (smbd is None or bool(smbd.status()["healthy"])) and self.install.problem is None,
            problem=self.install.problem,
            daemon_pid=os.getpid(), qemu_pid=self.machine.pid, run_dir=str(self.paths.run_dir),
            state_dir=str(self.paths.state_dir), accel=self.cfg.accel, tpm=swtpm is not None,
            share=smbd.status() if smbd is not None else None, vnc=self._vnc,
            vnc_password=self.cfg.vnc_password is not None,
            phase=phases[-1].name if phases and phases[-1].end is None else None,
            phase_source=phases[-1].source if phases and phases[-1].end is None else None,
            **self.watches.status(),
            uptime=round(time.monotonic() - events.t0, 3),
        )

    # -- the whole run --------------------------------------------------------------------------------------------
    async def run(self) -> int:
        """Connect, continue and supervise the VM until it stops; always leaves QEMU, swtpm and smbd gone and the
        run directory removed. Returns 0 after a clean stop or a guest power-off, 1 when QEMU died or had to be
        killed (a second signal included) or the TPM was lost. Raises :class:`RuntimeFailure` when QEMU or smbd
        cannot be reached (the first error of a failed part, not a group)."""
        try:
            return await self._run()
        except BaseExceptionGroup as group:
            raise _first(group) from None

    async def _run(self) -> int:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.launched.close)  # the launch's teardown, last: kills, run dir, log, lock
            for service in (self.launched.smbd, self.launched.swtpm):  # swtpm ends first, as QEMU's peer
                if service is not None:
                    stack.push_async_callback(service.close)
            stack.callback(self.facts.save_if_unsaved)  # the storage was full when they changed: a last try
            await stack.enter_async_context(self.machine)
            self._tasks = await stack.enter_async_context(asyncio.TaskGroup())
            stack.callback(self._end_background)
            loop = asyncio.get_running_loop()
            for signum in SIGNALS:
                loop.add_signal_handler(signum, self._on_signal, signum)
                stack.callback(loop.remove_signal_handler, signum)
            await self._take_over(stack)
            code = await self._supervise()
        return code

    def _end_background(self) -> None:
        """Cancel the long-lived tasks (event pump, console, share) so the task group can close."""
        for task in [*self._background, *([self._reader] if self._reader else [])]:
            task.cancel()

    async def _take_over(self, stack: contextlib.AsyncExitStack) -> None:
        """Connect to QEMU, wait for smbd, serve control and metrics, start the watches, and let the VM run."""
        smbd_ready = self._spawn(self._smbd_ready()) if self.launched.smbd is not None else None
        await self.machine.connect()
        self.reporter.record(EventKind.QMP_READY)
        if self.cfg.vnc_password is not None:  # before the guest runs; QEMU refuses VNC logins until then
            await self.machine.execute("set_password", {"protocol": "vnc", "password": self.cfg.vnc_password})
            self.reporter.record(EventKind.VNC_PASSWORD_SET)
        if smbd_ready is not None:
            await smbd_ready
            self._start_share()
        await stack.enter_async_context(ControlServer(self.paths.control_socket, self.status, self._on_down,
                                                      self.watches.stall.screenshot))
        self._start_metrics(stack)
        if self.cfg.guest_channel:
            from winarm.vm.guest_channel import GuestChannel

            reports = self.watches.reports
            await stack.enter_async_context(GuestChannel(self.paths.report_socket, reports.on_report,
                                                         reports.on_refused))
            self.reporter.record(EventKind.CHANNEL_READY, url=REPORT_URL)
        self._background.append(self._spawn(self.machine.pump_events(self._on_qmp_event)))
        assert self.machine.serial_reader is not None
        self._reader = self._spawn(self.install.read(self.machine.serial_reader, self.paths.serial_log,
                                                     echo=self.echo_console))
        run_state = await self.machine.cont()
        self.lifecycle.move(VmState.RUNNING)
        self.reporter.record(EventKind.RUNNING, status=run_state)
        self._background += self.watches.start(self._spawn)
        self.reporter.say(f"QEMU pid {self.machine.pid} running ({self.cfg.accel}); phase log {self.paths.events}")
        if self.launched.disk_grown_from is not None:
            self.reporter.say(grown_line(self.launched.disk_grown_from, self.cfg.disk_size))
        await self._query_vnc()

    async def _smbd_ready(self) -> None:
        """Wait for smbd to accept; raises :class:`RuntimeFailure` (recorded as ``smbd-failed``) if it cannot."""
        assert self.launched.smbd is not None
        try:
            took = await self.launched.smbd.wait_ready()
        except RuntimeFailure as error:
            self.reporter.record(EventKind.SMBD_FAILED, reason=str(error))
            raise
        self.reporter.record(EventKind.SMBD_READY, port=self.launched.smbd.port, after=round(took, 4))

    def _start_share(self) -> None:
        """Supervise smbd, watch the share for the desktop-ready file, and say where the share is."""
        smbd = self.launched.smbd
        assert smbd is not None
        self._background.append(self._spawn(smbd.supervise(self._on_share_event, self.reporter.say)))
        try:
            watch = ShareWatch(smbd.settings.shares[0].path, self.reporter.say)
        except OSError as error:
            self.reporter.record(EventKind.SHARE_WATCH_FAILED, error=str(error))
        else:
            self._background.append(self._spawn(watch.run(self._desktop_ready)))
        shares = smbd.settings.shares
        self.reporter.say(f"share: {', '.join(s.guest_unc for s in shares)} -> "
                          f"{', '.join(str(s.path) for s in shares)} "
                          f"(files owned by {smbd.settings.uid}:{smbd.settings.gid}, smbd on 127.0.0.1:{smbd.port})")

    async def _desktop_ready(self) -> None:
        await self.install.on_guest_marker(DESKTOP_READY, "", source="share")

    def _start_metrics(self, stack: contextlib.AsyncExitStack) -> None:
        """Serve ``/metrics`` when asked (stopped by ``stack``). Raises :class:`RuntimeFailure` for a bad port."""
        if self.cfg.metrics_port is not None:
            from winarm.services.metrics import serve_metrics

            stack.callback(serve_metrics(self.cfg, lambda: self.status().as_json(),
                                         lambda: list(self.launched.events.events), self.reporter))

    async def _query_vnc(self) -> None:
        try:
            info = await self.machine.execute("query-vnc")
        except RuntimeFailure:  # no VNC display, or QEMU already gone: nothing to say
            return
        self._vnc = vnc_where(info, self.paths.vnc_socket)
        if self._vnc is not None:
            self.reporter.say(f"display: VNC on {self._vnc}{vnc_access(self.cfg)}")

    async def _supervise(self) -> int:
        """Wait for the end (QEMU exits, a stop is requested, the TPM is lost), stop the VM, and report."""
        exited, tpm_lost = await self._wait_for_end()
        if tpm_lost:
            status = self.launched.swtpm.returncode if self.launched.swtpm else None
            self.reporter.record(EventKind.SWTPM_LOST, status=status)
            self.reporter.say(f"the TPM (swtpm) ended (status {status}): stopping the VM rather than running it "
                              f"without its TPM; see {self.paths.swtpm_log}")
            self._stop_reason = "TPM lost"
        paused = self.storage.paused
        how = "exited" if exited else await self._stop_vm(paused)
        if self._signals > 1 and how == "guest" and not self.machine.shutdown_seen:
            how = "forced"  # the second signal's kill ended the wait for the guest, not the guest itself
        self.storage.cancel()
        await self.machine.wait()
        exit_time = self.launched.events.now()
        await self._drain()
        if self.launched.answer_medium is not None and desktop_ready_missing(self.launched.events.events):
            self.reporter.record(EventKind.DESKTOP_READY_MISSING, channel=self.cfg.guest_channel)
            self.reporter.say(missing_line(self.cfg.guest_channel, self.watches.reports.accepted))
        self.lifecycle.move(VmState.STOPPED)
        quit_on_purpose = paused or self._failure is not None  # no stop-plan line then
        code = ending.finish(self.reporter, self.machine, self.paths, how=how, paused=quit_on_purpose,
                             tpm_lost=tpm_lost, at=exit_time, plan=self._stop_plan)
        return 1 if self._failure is not None else code

    async def _wait_for_end(self) -> tuple[bool, bool]:
        """Whether QEMU exited by itself, and whether the TPM was lost (swtpm ended first)."""
        exited = asyncio.create_task(self.machine.wait())
        stop = asyncio.create_task(self._stop_requested.wait())
        waits: set[asyncio.Future[Any]] = {exited, stop}
        swtpm = self.launched.swtpm
        tpm_gone = asyncio.create_task(swtpm.wait()) if swtpm is not None and swtpm.proc is not None else None
        if tpm_gone is not None:
            waits.add(tpm_gone)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.wait(waits)
        # swtpm ends when QEMU dies (its peer is gone): when QEMU is already dead, the TPM was not lost first
        ended = (exited.done() and not exited.cancelled()) or self.machine.exited
        stopped = stop.done() and not stop.cancelled()
        lost = tpm_gone is not None and tpm_gone.done() and not tpm_gone.cancelled()
        return ended, lost and not ended and not stopped

    async def _stop_vm(self, paused: bool) -> str:
        """The graceful stop (power button, then quit, then kill), the power button's wait judged by
        :func:`~winarm.vm.stop_plan.plan_stop` (short when no OS or Setup runs); a VM paused for room, or one that
        cannot boot (no OS runs), is told to quit."""
        self.lifecycle.move(VmState.STOPPING)
        self.watches.hold()
        if self._failure is not None:  # in the firmware, which ignores the power button: quit now
            self.reporter.say(f"stopping ({self._stop_reason}): no OS runs, so QEMU is told to quit")
            return await self.machine.stop(0, on_step=self.reporter.record)
        plan = self._stop_plan = self._stop_plan or stop_plan.plan_stop(
            self.reporter.events.events, self.cfg.timeout, reports=self.cfg.guest_channel)
        if paused:
            self.reporter.say(f"stopping ({self._stop_reason}): the VM is paused for lack of room and cannot shut "
                              "down, so QEMU is told to quit (it closes the disk image consistent; the guest checks "
                              "its file systems at its next boot)")
        else:
            self.reporter.say(plan.stopping_line(self._stop_reason))
        if paused:
            return await self.machine.stop(0, on_step=self.reporter.record)
        return await self.machine.stop(plan.wait, on_step=plan.recorder(self.reporter.record))

    async def _drain(self) -> None:
        """The console ends at QEMU's exit: let it hand over what the guest said last (at most 2 s), and the
        QMP reader the events already received; then end the long-lived tasks."""
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=2)
        await asyncio.sleep(0)  # one turn of the loop, not a timed wait
        self._end_background()


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error in a (nested) exception group: what one line can report."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def supervise(launched: Launched, *, out: TextIO | None = None, echo_console: bool = False) -> int:
    """Supervise ``launched`` with the real QEMU machine (QMP and the serial console); see :meth:`Supervisor.run`."""
    from winarm.qemu.machine import Machine

    machine = Machine(launched.proc, qmp_socket=launched.paths.qmp_socket, serial_socket=launched.paths.serial_socket,
                      qemu_log=launched.paths.qemu_log, name=launched.cfg.name)
    return await Supervisor(launched, machine, out=out, echo_console=echo_console).run()
