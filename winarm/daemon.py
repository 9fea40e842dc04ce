"""The supervisor behind ``winarm up``: one asyncio loop that prepares, launches, watches and stops a VM.

Order of work, each step checked before the next creates anything:
lock the VM -> find firmware and programs -> disk image and UEFI variables -> run directory -> swtpm ->
QEMU (paused) -> QMP and serial connected -> continue -> watch events and the console -> stop -> clean up.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from . import console, disk
from .config import Config
from .errors import RuntimeFailure, UserError
from .firmware import ensure_vars, find_firmware
from .machine import Machine, tail
from .paths import VmPaths
from .phases import EventLog, Phase, derive_phases, format_phase_line, format_table
from .procs import listening_socket
from .qemu_argv import Endpoints, build_argv
from .tpm import Swtpm, check_available

log = logging.getLogger("winarm")

KEY_FOR_CD_PROMPT = "spc"
"""The key pressed at "Press any key to boot from CD or DVD": harmless anywhere else."""
HISTORY_KEEP = 20


class VmLock:
    """An exclusive flock on the VM's state directory, held while a daemon runs it.

    The kernel drops it when the holder dies, however it dies, so a stale lock cannot exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, name: str) -> None:
        """Take the lock or raise :class:`UserError` naming the running daemon."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"VM {name!r} is already running (winarm pid {holder}): stop it with 'winarm down --name {name}' "
                "or choose another --name"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_facts(paths: VmPaths) -> dict[str, Any]:
    """What winarm remembered about this VM (empty when new or unreadable)."""
    try:
        data = json.loads(paths.facts.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_facts(paths: VmPaths, facts: dict[str, Any]) -> None:
    """Replace the remembered facts atomically (temp file, fsync, rename)."""
    partial = paths.facts.with_name(paths.facts.name + ".partial")
    with partial.open("w") as handle:
        json.dump(facts, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, paths.facts)


def rotate_events(paths: VmPaths) -> None:
    """Move the previous run's event log into ``history/`` (keeping the newest few)."""
    if not paths.events.exists():
        return
    paths.history.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.fromtimestamp(paths.events.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    os.replace(paths.events, paths.history / f"events-{stamp}.jsonl")
    old = sorted(paths.history.glob("events-*.jsonl"))
    for stale in old[:-HISTORY_KEEP]:
        stale.unlink(missing_ok=True)


class Daemon:
    """Runs one VM from start to stop. Use :meth:`run`; it returns the process exit status."""

    def __init__(
        self, cfg: Config, *, t0: float | None = None, out: TextIO | None = None, echo_console: bool = False
    ) -> None:
        self.cfg = cfg
        self.paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
        self.t0 = time.monotonic() if t0 is None else t0
        self.out = out
        self.echo_console = echo_console
        self.machine: Machine | None = None
        self.swtpm: Swtpm | None = None
        self.events: EventLog | None = None
        self.state = "starting"
        self.facts: dict[str, Any] = {}
        self._stop_requested = asyncio.Event()
        self._stop_reason = ""
        self._signals = 0
        self._printed_phases = 0
        self._key_pressed_this_boot = False
        self._output_this_boot = False
        self._vnc: str | None = None

    # -- output -------------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        """One line for the person watching, prefixed with the VM name."""
        if self.out is not None:
            print(f"[{self.cfg.name}] {message}", file=self.out, flush=True)

    def record(self, kind: str, *, at: float | None = None, **details: Any) -> None:
        """Timestamp an event, append it to the log, and print any phase it completed."""
        assert self.events is not None
        self.events.record(kind, at=at, **details)
        phases = [p for p in derive_phases(self.events.events) if p.end is not None]
        for phase in phases[self._printed_phases :]:
            self.say(format_phase_line(phase))
        self._printed_phases = len(phases)

    # -- preparation ----------------------------------------------------------------------------------------
    def _preflight(self) -> None:
        """Checks that need no writes: programs present. Raises a WinarmError."""
        if shutil.which(self.cfg.qemu_binary) is None:
            raise RuntimeFailure(
                f"{self.cfg.qemu_binary} not found: install it (Debian: apt-get install qemu-system-arm)"
            )
        if self.cfg.tpm:
            check_available()

    def _prepare_run_dir(self) -> None:
        """Create the run directory (0700) and clear what a dead daemon left in it."""
        run_dir = self.paths.run_dir
        run_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        run_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(run_dir, 0o700)
        for stale in run_dir.iterdir():
            if stale.is_socket() or stale.suffix in (".pid", ".sock"):
                stale.unlink(missing_ok=True)
        self.paths.daemon_pid.write_text(f"{os.getpid()}\n")

    def _cleanup_run_dir(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.paths.run_dir)

    # -- the console --------------------------------------------------------------------------------------
    async def _read_console(self, reader: asyncio.StreamReader) -> None:
        splitter = console.LineSplitter()
        with self.paths.serial_log.open("ab") as raw_log:
            while True:
                data = await reader.read(4096)
                if not data:
                    return
                raw_log.write(data)
                raw_log.flush()
                if self.echo_console:
                    os.write(2, data)
                if not self._output_this_boot:
                    self._output_this_boot = True
                    self.record("firmware-output")
                for line in splitter.feed(data):
                    await self._on_line(line)
                if console.CD_PROMPT in splitter.pending():
                    await self._on_prompt()

    async def _on_line(self, line: str) -> None:
        entry = console.parse_boot_entry(line)
        if entry is not None:
            self.record(
                "boot-device", device=entry.device, entry=entry.entry, description=entry.description, path=entry.path
            )
            if entry.device == "disk" and not self.facts.get("disk_booted"):
                self.facts["disk_booted"] = True
                write_facts(self.paths, self.facts)
            return
        marker = console.parse_marker(line)
        if marker is not None:
            name, rest = marker
            if rest:
                self.record("marker", name=name, detail=rest)
            else:
                self.record("marker", name=name)
            if self.cfg.stop_at and name == self.cfg.stop_at:
                self.request_stop(f"the guest reached {name}")
            return
        if console.CD_PROMPT in line:
            await self._on_prompt()

    async def _on_prompt(self) -> None:
        """Press a key at the CD's prompt, on the boots before the disk has ever booted, once a boot."""
        if self._key_pressed_this_boot:
            return
        self._key_pressed_this_boot = True
        if self.facts.get("disk_booted"):
            self.record("cd-prompt-ignored")
            return
        assert self.machine is not None
        await self.machine.send_key(KEY_FOR_CD_PROMPT)
        self.record("key-pressed", key=KEY_FOR_CD_PROMPT)

    def _on_qmp_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "RESET":
            self._key_pressed_this_boot = False
            self._output_this_boot = False
            self.record("reset", guest=bool(data.get("guest", False)), reason=data.get("reason"))
        elif name == "SHUTDOWN":
            self.record("shutdown", guest=bool(data.get("guest", False)), reason=data.get("reason"))
        elif name == "POWERDOWN":
            self.record("powerdown")
        elif name in ("STOP", "RESUME", "GUEST_PANICKED"):
            self.record(name.lower())

    # -- control --------------------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask for a graceful stop (idempotent)."""
        if not self._stop_requested.is_set():
            self._stop_reason = reason
            self._stop_requested.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            self.say(f"{signal.Signals(signum).name}: stopping the VM gracefully (again to force)")
            self.request_stop(signal.Signals(signum).name)
        elif self.machine is not None:
            self.say("second signal: stopping QEMU now")
            asyncio.ensure_future(self.machine.kill())

    def status(self) -> dict[str, Any]:
        """What ``winarm status --json`` reports for this VM."""
        phases = derive_phases(self.events.events) if self.events else []
        current = phases[-1].name if phases and phases[-1].end is None else None
        return {
            "name": self.cfg.name,
            "state": self.state,
            "healthy": self.state == "running"
            and self.machine is not None
            and not self.machine.exited
            and (self.swtpm is None or self.swtpm.alive),
            "daemon_pid": os.getpid(),
            "qemu_pid": self.machine.pid if self.machine else None,
            "run_dir": str(self.paths.run_dir),
            "state_dir": str(self.paths.state_dir),
            "accel": self.cfg.accel,
            "tpm": self.swtpm is not None,
            "vnc": self._vnc,
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
    async def run(self) -> int:
        """Boot the VM and supervise it until it stops. Returns 0 after a clean stop or a guest power-off,
        1 when QEMU died or could not be stopped gracefully... raises UserError/RuntimeFailure before
        anything is launched when a check fails."""
        cfg, paths = self.cfg, self.paths
        self._preflight()
        firmware = find_firmware(cfg.secure_boot)
        paths.check_socket_lengths()

        paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = VmLock(paths.lock)
        lock.acquire(cfg.name)
        try:
            return await self._run_locked(firmware)
        finally:
            lock.release()

    async def _run_locked(self, firmware: Any) -> int:
        cfg, paths = self.cfg, self.paths
        self.facts = read_facts(paths)
        rotate_events(paths)
        self.events = EventLog(paths.events, t0=self.t0)
        self.record("start", name=cfg.name, accel=cfg.accel, ram=cfg.ram, cpus=cfg.cpus)

        created = await disk.ensure_image(paths.disk, cfg.disk_format, cfg.disk_size)
        if created:
            self.facts = {}  # a new disk has never booted
            write_facts(self.paths, self.facts)
        ensure_vars(firmware, paths.efivars)
        self._prepare_run_dir()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_signal, signum)
        control = None
        try:
            if cfg.tpm:
                self.swtpm = Swtpm(paths.tpm_state, paths.tpm_socket, paths.state_dir / "swtpm.log")
                await self.swtpm.start()
                self.record("swtpm-started")

            qmp_listener = listening_socket(paths.qmp_socket)
            serial_listener = listening_socket(paths.serial_socket)
            argv = build_argv(
                cfg,
                firmware,
                paths,
                Endpoints(qmp=qmp_listener.fileno(), serial=serial_listener.fileno()),
                media=[cfg.iso] if cfg.iso else [],
                tpm_socket=paths.tpm_socket if self.swtpm else None,
            )
            self.machine = Machine(
                argv, qmp_listener=qmp_listener, serial_listener=serial_listener, qemu_log=paths.qemu_log, name=cfg.name
            )
            await self.machine.launch()
            self.record("spawned", pid=self.machine.pid)
            self.record("qmp-ready")
            control = await self._start_control()

            pump = asyncio.ensure_future(self.machine.pump_events(self._on_qmp_event))
            assert self.machine.serial_reader is not None
            reader_task = asyncio.ensure_future(self._read_console(self.machine.serial_reader))
            run_state = await self.machine.cont()
            self.state = "running"
            self.record("running", status=run_state)
            await self._query_vnc()
            self.say(
                f"QEMU pid {self.machine.pid} running ({cfg.accel}); VNC {self._vnc or 'off'}; phase log {paths.events}"
            )
            return await self._supervise(pump, reader_task)
        finally:
            if control is not None:
                control.close()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            if self.machine is not None:
                await self.machine.kill()
                await self.machine.close()
            if self.swtpm is not None:
                await self.swtpm.stop()
            self._cleanup_run_dir()
            if self.events is not None:
                self.events.close()

    async def _start_control(self) -> asyncio.AbstractServer:
        old = os.umask(0o177)
        try:
            return await asyncio.start_unix_server(self._serve_control, path=os.fspath(self.paths.control_socket))
        finally:
            os.umask(old)

    async def _query_vnc(self) -> None:
        assert self.machine is not None
        with contextlib.suppress(Exception):
            info = await self.machine.execute("query-vnc")
            if info.get("enabled"):
                self._vnc = f"{info.get('host')}:{info.get('service')}"

    async def _supervise(self, pump: asyncio.Future[None], reader_task: asyncio.Future[None]) -> int:
        machine = self.machine
        assert machine is not None and machine.proc is not None
        exited = asyncio.ensure_future(machine.proc.wait())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
        how = "exited"
        if not exited.done():
            self.state = "stopping"
            self.say(f"stopping ({self._stop_reason}): power button, up to {self.cfg.timeout:g} s for the guest")
            how = await machine.stop(self.cfg.timeout, on_step=self.record)
        stop.cancel()
        await machine.wait()
        assert self.events is not None
        exit_time = self.events.now()
        # the console ends at QEMU's exit; let it drain what the guest said last, then end the event pump
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(reader_task, return_exceptions=True), 2)
        await asyncio.sleep(0)  # let the QMP reader hand over events already received
        pump.cancel()
        code = machine.proc.returncode
        clean = machine.shutdown_seen or how in ("guest", "quit")
        self.record("exit", at=exit_time, code=code, stop=how, clean=clean)
        self.state = "stopped"
        self._print_summary()
        if how == "killed":
            self.say("QEMU ignored quit and was killed")
            return 1
        if not clean:
            self.say(f"QEMU died (status {code}): {tail(self.paths.qemu_log, 5) or 'no output'}")
            self.say(f"last console lines: {tail(self.paths.serial_log, 5) or 'none'}")
            return 1
        if how == "quit":
            self.say(f"the guest did not shut down within {self.cfg.timeout:g} s: QEMU was told to quit")
        return 0

    def _print_summary(self) -> None:
        assert self.events is not None
        phases: list[Phase] = derive_phases(self.events.events)
        self.say("boot timeline:")
        for line in format_table(phases):
            self.say("  " + line)
