"""The supervisor behind ``winarm up``: one asyncio loop that takes over a just-spawned, paused QEMU.

QMP and serial connected -> continue -> watch events and the console (phases, the CD prompt, markers) ->
stop on request (signal, ``winarm down``, a marker) -> clean up: QEMU and swtpm gone, run dir removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from winarm.errors import RuntimeFailure, WinarmError
from winarm.qemu import console
from winarm.vm.full_storage import ConsoleLog, io_error_summary, wait_for_room

if TYPE_CHECKING:
    from winarm.services.metrics import MetricsServer
from winarm.guest import (
    CD_PROMPT,
    DESKTOP_READY,
    DESKTOP_READY_FILE,
    INSTALL_DONE_AFTER_DISK_BOOTS,
    INSTALL_DONE_MARKERS,
    KEY_FOR_CD_PROMPT,
)
from winarm.procs import wait_exit
from winarm.qemu.machine import Machine, tail
from winarm.timeline.phases import Phase, derive_phases, format_phase_line, format_table
from winarm.vm.launch import Launched, write_facts
from winarm.vm.watch import IN_CLOSE_WRITE, IN_MOVED_TO, Watch

ANSWER_DEVICE = "media1"


class Daemon:
    """Runs one VM from start to stop. Use :meth:`run`; it returns the process exit status."""

    def __init__(self, launched: Launched, *, out: TextIO | None = None, echo_console: bool = False) -> None:
        self.launched = launched
        self.cfg = launched.cfg
        self.paths = launched.paths
        self.events = launched.events
        self.facts = launched.facts
        self.swtpm = launched.swtpm
        self.smbd = launched.smbd
        self.t0 = launched.events.t0
        self.out = out
        self.echo_console = echo_console
        self.machine = Machine(
            launched.proc,
            qmp_socket=self.paths.qmp_socket,
            serial_socket=self.paths.serial_socket,
            qemu_log=self.paths.qemu_log,
            name=self.cfg.name,
        )
        self.state = "starting"
        answer = [e for e in launched.events.events if e["kind"] == "answer-medium"]
        self._answer_medium: Path | None = Path(answer[-1]["path"]) if answer else None
        self._stop_requested = asyncio.Event()
        self._stop_reason = ""
        self._signals = 0
        self._printed_phases = 0
        self._key_pressed_this_boot = False
        self._output_this_boot = False
        self._markers_this_boot: set[str] = set()
        self._vnc: str | None = None
        self._paused_for_room: asyncio.Future[None] | None = None
        self._io_error_said = False
        self._facts_unsaved = False

    # -- output -------------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        """One line for the person watching, prefixed with the VM name."""
        if self.out is not None:
            print(f"[{self.cfg.name}] {message}", file=self.out, flush=True)

    def record(self, kind: str, *, at: float | None = None, **details: Any) -> None:
        """Timestamp an event, append it to the log, and print any phase it completed."""
        self.events.record(kind, at=at, **details)
        phases = [p for p in derive_phases(self.events.events) if p.end is not None]
        for phase in phases[self._printed_phases :]:
            self.say(format_phase_line(phase))
        self._printed_phases = len(phases)

    # -- the console --------------------------------------------------------------------------------------
    async def _read_console(self, reader: asyncio.StreamReader) -> None:
        splitter = console.LineSplitter()
        raw_log = ConsoleLog(self.paths.serial_log)
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    return
                raw_log.write(data)
                if self.echo_console:
                    os.write(2, data)
                if not self._output_this_boot:
                    self._output_this_boot = True
                    self.record("firmware-output")
                for line in splitter.feed(data):
                    await self._on_line(line)
                if CD_PROMPT in splitter.pending():
                    await self._on_prompt()
        finally:
            raw_log.close()

    def _save_facts(self) -> None:
        """Write the remembered facts; when the storage refuses (full), keep them and try again later."""
        try:
            write_facts(self.paths, self.facts)
            self._facts_unsaved = False
        except WinarmError as error:
            if not self._facts_unsaved:
                self.record("facts-unsaved", error=str(error))
            self._facts_unsaved = True

    async def _on_line(self, line: str) -> None:
        entry = console.parse_boot_entry(line)
        if entry is not None:
            self.record(
                "boot-device", device=entry.device, entry=entry.entry, description=entry.description, path=entry.path
            )
            if entry.device == "disk":
                self.facts["disk_booted"] = True
                self.facts["disk_boots"] = int(self.facts.get("disk_boots", 0)) + 1
                if self.facts["disk_boots"] >= INSTALL_DONE_AFTER_DISK_BOOTS and self._answer_medium is not None:
                    self.facts["install_complete"] = True
                self._save_facts()
            return
        marker = console.parse_marker(line)
        if marker is not None:
            await self._on_marker(*marker, source="serial")
            return
        guest_event = console.parse_guest_event(line)
        if guest_event is not None:
            name, rest = guest_event
            self.record("guest-event", name=name, detail=rest)
            return
        if CD_PROMPT in line:
            await self._on_prompt()

    async def _on_marker(self, name: str, rest: str, *, source: str) -> None:
        """A guest marker: the first of its name in a boot starts a phase; a repeat (the same signal through
        another channel, like desktop-ready on the serial port and on the share) is only noted."""
        if name in self._markers_this_boot:
            self.record("marker-again", name=name, source=source)
            return
        self._markers_this_boot.add(name)
        details: dict[str, Any] = {"name": name}
        if rest:
            details["detail"] = rest
        if source != "serial":
            details["source"] = source
        self.record("marker", **details)
        if name in INSTALL_DONE_MARKERS and self._answer_medium is not None:
            await self._detach_answer_medium()
        if self.cfg.stop_at and name in self.cfg.stop_at.split(","):
            self.request_stop(f"the guest reached {name}")

    def _watch_desktop_ready(self) -> Watch | None:
        """Watch the first share for the desktop-ready file the guest writes at each logon (see
        :data:`winarm.guest.DESKTOP_READY_FILE`); None without a share or when it cannot be watched."""
        if self.smbd is None:
            return None
        folder = self.smbd.settings.shares[0].path
        marker_file = folder / DESKTOP_READY_FILE
        marker_file.unlink(missing_ok=True)  # left by an earlier run
        try:
            watch = Watch(folder, IN_CLOSE_WRITE | IN_MOVED_TO)
        except OSError as error:
            self.record("share-watch-failed", error=str(error))
            return None

        def on_readable() -> None:
            if DESKTOP_READY_FILE in watch.drain() and marker_file.exists():
                marker_file.unlink(missing_ok=True)
                asyncio.ensure_future(self._on_marker(DESKTOP_READY, "", source="share"))

        asyncio.get_running_loop().add_reader(watch.fd, on_readable)
        return watch

    async def _on_prompt(self) -> None:
        """Press a key at the CD's prompt, on the boots before the disk has ever booted, once a boot."""
        if self._key_pressed_this_boot:
            return
        self._key_pressed_this_boot = True
        if self.facts.get("disk_booted"):
            self.record("cd-prompt-ignored")
            return
        await self.machine.send_key(KEY_FOR_CD_PROMPT)
        self.record("key-pressed", key=KEY_FOR_CD_PROMPT)

    async def _detach_answer_medium(self) -> None:
        """The install is complete: unplug the answer medium (it holds the password) and delete it."""
        medium = self._answer_medium
        if medium is None:
            return
        self._answer_medium = None
        self.facts["install_complete"] = True
        self._save_facts()
        try:
            await self.machine.execute("device_del", {"id": ANSWER_DEVICE})
            detached = True
        except Exception:  # an unplug refused by the guest still ends with the file gone
            detached = False
        medium.unlink(missing_ok=True)
        self.record("answer-medium-removed", detached=detached)
        self.say("installation complete: answer medium detached and deleted")

    def _on_qmp_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "RESET":
            self._markers_this_boot = set()
            self._key_pressed_this_boot = False
            self._output_this_boot = False
            self.record("reset", guest=bool(data.get("guest", False)), reason=data.get("reason"))
        elif name == "SHUTDOWN":
            self.record("shutdown", guest=bool(data.get("guest", False)), reason=data.get("reason"))
        elif name == "POWERDOWN":
            self.record("powerdown")
        elif name in ("STOP", "RESUME", "GUEST_PANICKED"):
            self.record(name.lower())
        elif name == "BLOCK_IO_ERROR":
            self._on_io_error(data)

    def _on_io_error(self, data: dict[str, Any]) -> None:
        """A disk request failed. Out of room (``nospace``, the VM paused by QEMU): say so once, and continue
        the VM when the storage has room again. Another error (reported to the guest): said once a run."""
        if data.get("nospace") and data.get("action") == "stop":
            if self._paused_for_room is not None or self._stop_requested.is_set():
                return
            self.state = "paused"
            self.record("storage-full", error=io_error_summary(data))
            self.say(f"the storage {self.cfg.storage} is full: the VM is paused, nothing is lost; it goes on by "
                     "itself once there is room again (free some space), or 'winarm down' stops it")
            self._paused_for_room = asyncio.ensure_future(self._resume_when_room())
        elif not self._io_error_said:
            self._io_error_said = True
            self.record("io-error", error=io_error_summary(data), action=data.get("action"))
            self.say(f"disk error ({io_error_summary(data)}): the guest was told; see {self.paths.qemu_log}")

    async def _resume_when_room(self) -> None:
        free = await wait_for_room(self.cfg.storage)  # the events kept meanwhile go out with the next record
        if self._facts_unsaved:
            self._save_facts()
        try:
            await self.machine.execute("cont")
        except Exception as error:  # QEMU went away meanwhile: the supervisor reports that
            self.record("resume-failed", error=str(error))
            return
        self._paused_for_room = None
        self.state = "running"
        self.record("storage-resumed", free=free)
        self.say(f"the storage has room again ({free // (1024 * 1024)} MiB free): the VM goes on")

    def _on_share_event(self, kind: str, **details: Any) -> None:
        self.record(kind, **details)
        if kind == "share-health":
            login = "guest" if self.smbd is None or self.smbd.settings.guest_login else "user"
            self.say(f"share: healthy (an SMB {login} session reaches the share)" if details.get("healthy")
                     else f"share: UNHEALTHY: {details.get('error')}")

    # -- control --------------------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask for a graceful stop (idempotent). The request is the shutdown phase's start, recorded now: what
        the guest prints before the supervisor gets to press the power button belongs to the shutdown."""
        if not self._stop_requested.is_set():
            self._stop_reason = reason
            self._stop_requested.set()
            self.record("stop-requested", reason=reason)

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            self.say(f"{signal.Signals(signum).name}: stopping the VM gracefully (again to force)")
            self.request_stop(signal.Signals(signum).name)
        else:
            self.say("second signal: stopping QEMU now")
            asyncio.ensure_future(self.machine.kill())

    def status(self) -> dict[str, Any]:
        """What ``winarm status --json`` reports for this VM."""
        phases = derive_phases(self.events.events)
        current = phases[-1].name if phases and phases[-1].end is None else None
        return {
            "name": self.cfg.name,
            "state": self.state,
            "paused": "storage full" if self._paused_for_room is not None else None,
            "log_behind": self.events.write_error is not None,
            "healthy": self.state == "running"
            and self.machine is not None
            and not self.machine.exited
            and (self.swtpm is None or self.swtpm.alive)
            and (self.smbd is None or bool(self.smbd.status()["healthy"])),
            "daemon_pid": os.getpid(),
            "qemu_pid": self.machine.pid,
            "run_dir": str(self.paths.run_dir),
            "state_dir": str(self.paths.state_dir),
            "accel": self.cfg.accel,
            "tpm": self.swtpm is not None,
            "share": self.smbd.status() if self.smbd is not None else None,
            "vnc": self._vnc,
            "vnc_password": self.cfg.vnc_password is not None,
            "phase": current,
            "uptime": round(time.monotonic() - self.t0, 3),
        }

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            request = json.loads(line or b"{}")
            command = request.get("command") if isinstance(request, dict) else None
            if command == "status":
                reply: dict[str, Any] = self.status()
            elif command == "down":
                self.request_stop("winarm down")
                reply = {"ok": True, "daemon_pid": os.getpid(), "timeout": self.cfg.timeout}
            else:
                reply = {"error": f"unknown command {command!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ValueError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    # -- the whole run ----------------------------------------------------------------------------------------
    async def run(self) -> int:  # noqa: C901, PLR0912, PLR0915
        """Connect, continue and supervise the VM until it stops; always leaves QEMU and swtpm gone and the
        run directory removed. Returns 0 after a clean stop or a guest power-off, 1 when QEMU died, could not
        be reached, or had to be killed."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_signal, signum)
        control = None
        metrics: MetricsServer | None = None
        share_task: asyncio.Future[None] | None = None
        desktop_watch: Watch | None = None
        smbd_ready = asyncio.ensure_future(self.smbd.wait_ready()) if self.smbd is not None else None
        try:
            await self.machine.connect()
            self.record("qmp-ready")
            if self.cfg.vnc_password is not None:  # before the guest runs; QEMU refuses VNC logins until then
                await self.machine.execute("set_password", {"protocol": "vnc", "password": self.cfg.vnc_password})
                self.record("vnc-password-set")
            if smbd_ready is not None and self.smbd is not None:
                try:
                    took = await smbd_ready
                except RuntimeFailure as error:
                    self.record("smbd-failed", reason=str(error))
                    raise
                self.record("smbd-ready", port=self.smbd.port, after=round(took, 4))
                share_task = asyncio.ensure_future(self.smbd.supervise(self._on_share_event, self.say))
                desktop_watch = self._watch_desktop_ready()
                self.say(f"share: {', '.join(s.guest_unc for s in self.smbd.settings.shares)} -> "
                         f"{', '.join(str(s.path) for s in self.smbd.settings.shares)} "
                         f"(files owned by {self.smbd.settings.uid}:{self.smbd.settings.gid}, "
                         f"smbd on 127.0.0.1:{self.smbd.port})")
            control = await self._start_control()
            metrics = self._start_metrics()
            pump = asyncio.ensure_future(self.machine.pump_events(self._on_qmp_event))
            assert self.machine.serial_reader is not None
            reader_task = asyncio.ensure_future(self._read_console(self.machine.serial_reader))
            run_state = await self.machine.cont()
            self.state = "running"
            self.record("running", status=run_state)
            self.say(f"QEMU pid {self.machine.pid} running ({self.cfg.accel}); phase log {self.paths.events}")
            await self._query_vnc()
            return await self._supervise(pump, reader_task)
        finally:
            if smbd_ready is not None and not smbd_ready.done():
                smbd_ready.cancel()
            if share_task is not None:
                share_task.cancel()
            if desktop_watch is not None:
                loop.remove_reader(desktop_watch.fd)
                desktop_watch.close()
            if control is not None:
                control.close()
            if metrics is not None:
                metrics.stop()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await self.machine.kill()
            await self.machine.close()
            if self._facts_unsaved:  # the storage was full when they changed: a last try
                self._save_facts()
            if self.swtpm is not None:
                await self.swtpm.stop()
            if self.smbd is not None:
                await self.smbd.stop()
            self.launched.release()

    def _start_metrics(self) -> MetricsServer | None:
        if self.cfg.metrics_port is None:
            return None
        from winarm.services.metrics import DaemonCollector, MetricsServer

        server = MetricsServer(DaemonCollector(self.cfg.name, self.status, lambda: list(self.events.events)),
                               self.cfg.metrics_address, self.cfg.metrics_port)
        server.start()
        self.record("metrics-started", address=self.cfg.metrics_address, port=self.cfg.metrics_port)
        self.say(f"metrics: http://{self.cfg.metrics_address}:{self.cfg.metrics_port}/metrics")
        return server

    async def _start_control(self) -> asyncio.AbstractServer:
        old = os.umask(0o177)
        try:
            return await asyncio.start_unix_server(self._serve_control, path=os.fspath(self.paths.control_socket))
        finally:
            os.umask(old)

    async def _query_vnc(self) -> None:
        with contextlib.suppress(Exception):
            info = await self.machine.execute("query-vnc")
            if info.get("enabled"):
                self._vnc = f"{info.get('host')}:{info.get('service')}"
                self.say(f"display: VNC on {self._vnc}")

    async def _supervise(self, pump: asyncio.Future[None], reader_task: asyncio.Future[None]) -> int:  # noqa: C901
        machine = self.machine
        exited = asyncio.ensure_future(machine.wait())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        waiting: set[asyncio.Future[Any]] = {exited, stop}
        tpm_gone = None
        if self.swtpm is not None and self.swtpm.proc is not None:
            tpm_gone = asyncio.ensure_future(wait_exit(self.swtpm.proc))
            waiting.add(tpm_gone)
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        tpm_lost = tpm_gone is not None and tpm_gone.done() and not exited.done() and not stop.done()
        if tpm_lost:
            status = self.swtpm.proc.returncode if self.swtpm and self.swtpm.proc else None
            self.record("swtpm-lost", status=status)
            self.say(f"the TPM (swtpm) ended (status {status}): stopping the VM rather than running it without "
                     f"its TPM; see {self.paths.swtpm_log}")
            self._stop_reason = "TPM lost"
        how = "exited"
        paused = self._paused_for_room is not None
        if not exited.done():
            self.state = "stopping"
            if paused:
                self.say(f"stopping ({self._stop_reason}): the VM is paused for lack of room and cannot shut down, so "
                         "QEMU is told to quit (it closes the disk image consistent; the guest checks its file "
                         "systems at its next boot)")
            else:
                self.say(f"stopping ({self._stop_reason}): power button, up to {self.cfg.timeout:g} s for the guest")
            how = await machine.stop(0 if paused else self.cfg.timeout, on_step=self.record)
        if self._paused_for_room is not None:
            self._paused_for_room.cancel()
        stop.cancel()
        if tpm_gone is not None:
            tpm_gone.cancel()
        await machine.wait()
        exit_time = self.events.now()
        # the console ends at QEMU's exit; let it drain what the guest said last, then end the event pump
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(reader_task, return_exceptions=True), 2)
        await asyncio.sleep(0)  # let the QMP reader hand over events already received
        pump.cancel()
        code = machine.returncode
        clean = machine.shutdown_seen or how in ("guest", "quit")
        if not clean and how != "killed":
            self._report_crash(code, at=exit_time)
        self.record("exit", at=exit_time, code=code, stop=how, clean=clean)
        self.state = "stopped"
        self._print_summary()
        if how == "killed":
            self.say("QEMU ignored quit and was killed")
            return 1
        if not clean:
            return 1
        if how == "quit" and not paused:
            self.say(f"the guest did not shut down within {self.cfg.timeout:g} s: QEMU was told to quit")
        return 1 if tpm_lost else 0

    def _report_crash(self, code: int | None, *, at: float) -> None:
        """QEMU ended without a shutdown: one line with the phase it died in and the last words of QEMU and of
        the guest's console, and a ``crash`` event in the phase log."""
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"status {code}"
        phases = derive_phases(self.events.events)
        phase = phases[-1].name if phases else "launch"
        qemu_said = tail(self.paths.qemu_log, 3) or "nothing"
        guest_said = console.strip_ansi(tail(self.paths.serial_log, 3).encode()).decode(errors="replace") or "nothing"
        self.record("crash", at=at, code=code, phase=phase)
        self.say(f"QEMU died ({how}) during {phase}: QEMU said: {qemu_said}; the console's last lines: {guest_said}")

    def _print_summary(self) -> None:
        phases: list[Phase] = derive_phases(self.events.events)
        self.say("boot timeline:")
        for line in format_table(phases):
            self.say("  " + line)
