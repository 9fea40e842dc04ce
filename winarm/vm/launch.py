"""Everything before the asyncio loop: lock the VM, prepare its files, start swtpm and QEMU (paused).

Kept free of asyncio on purpose: ``winarm up`` spawns QEMU after importing only what this needs, then
imports the event loop and the QMP library while QEMU initialises in parallel. Each step checks before it
writes, so a refused start (a VM already running, a missing program) changes nothing on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from winarm.config.paths import VmPaths, remove_answer_media
from winarm.config.vm import Config
from winarm.errors import RuntimeFailure, UserError
from winarm.files import write_atomic
from winarm.procs import listening_socket, spawn
from winarm.qemu import disk
from winarm.qemu.argv import Endpoints, build_argv
from winarm.qemu.firmware import ensure_vars, find_firmware
from winarm.services.smbd import Smbd
from winarm.services.smbd import check_available as check_samba
from winarm.services.swtpm import Swtpm, check_available
from winarm.timeline.events import EventLog

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
    """Replace the remembered facts atomically (temp file, fsync, rename; nothing left behind on failure).
    Raises :class:`UserError` when the storage cannot be written."""
    write_atomic(paths.facts, json.dumps(facts, indent=2, sort_keys=True).encode(), what="VM facts")


def rotate_events(paths: VmPaths) -> None:
    """Move the previous run's event log into ``history/`` (keeping the newest few), and its QEMU, console and
    swtpm logs to ``<log>.1`` (one previous run kept), so logs never grow without bound and the last lines of a
    log are always this run's."""
    for log in (paths.qemu_log, paths.serial_log, paths.swtpm_log):
        if log.exists():
            os.replace(log, log.with_name(log.name + ".1"))
    if not paths.events.exists():
        return
    paths.history.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.fromtimestamp(paths.events.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    os.replace(paths.events, paths.history / f"events-{stamp}.jsonl")
    old = sorted(paths.history.glob("events-*.jsonl"))
    for stale in old[:-HISTORY_KEEP]:
        stale.unlink(missing_ok=True)


@dataclass
class Launched:
    """A VM whose QEMU has just been spawned, paused, with everything the supervisor needs to take over."""

    cfg: Config
    paths: VmPaths
    lock: VmLock
    events: EventLog
    facts: dict[str, Any]
    proc: subprocess.Popen[bytes]
    argv: list[str]
    swtpm: Swtpm | None = None
    smbd: Smbd | None = None

    def release(self) -> None:
        """Remove the run directory and drop the lock (after the processes are gone)."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.paths.run_dir)
        self.events.close()
        self.lock.release()


def _preflight(cfg: Config) -> None:
    """Checks that need no writes: the programs are installed. Raises a WinarmError."""
    if shutil.which(cfg.qemu_binary) is None:
        raise RuntimeFailure(f"{cfg.qemu_binary} not found: install it (Debian: apt-get install qemu-system-arm)")
    if cfg.tpm:
        check_available()
    if cfg.share is not None:
        check_samba()


def _prepare_run_dir(paths: VmPaths) -> None:
    """Create the run directory (0700) and clear what a dead daemon left in it."""
    run_dir = paths.run_dir
    run_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    for stale in run_dir.iterdir():
        if stale.is_socket() or stale.suffix in (".pid", ".sock"):
            stale.unlink(missing_ok=True)
    paths.daemon_pid.write_text(f"{os.getpid()}\n")


def launch(cfg: Config, t0: float) -> Launched:  # noqa: C901, PLR0915
    """Lock the VM, create what is missing (disk, UEFI variables, run dir), start swtpm and spawn QEMU paused.

    Raises :class:`UserError` (the VM already runs) or :class:`RuntimeFailure` (a program is missing, QEMU
    cannot be spawned); on failure everything started here is stopped and the lock released.
    """
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    _preflight(cfg)
    firmware = find_firmware(cfg.secure_boot)
    paths.check_socket_lengths()
    plan = None
    if cfg.unattend and cfg.iso is not None and not read_facts(paths).get("install_complete"):
        from winarm.answer.plan import plan_install  # here: Jinja2 and the ISO reader load only for an install

        plan = plan_install(cfg, read_facts(paths))

    paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = VmLock(paths.lock)
    lock.acquire(cfg.name)
    swtpm: Swtpm | None = None
    smbd: Smbd | None = None
    events: EventLog | None = None
    try:
        facts = read_facts(paths)
        rotate_events(paths)
        events = EventLog(paths.events, t0=t0)
        events.record("start", name=cfg.name, accel=cfg.accel, ram=cfg.ram, cpus=cfg.cpus)
        if disk.ensure_image(paths.disk, cfg.disk_format, cfg.disk_size, allocate=cfg.allocate):
            facts = {}  # a new disk has never booted
            write_facts(paths, facts)
        ensure_vars(firmware, paths.efivars)
        media = [cfg.iso] if cfg.iso else []
        if plan is not None:
            from winarm.answer.medium import build_answer_medium

            answer, built = build_answer_medium(paths.state_dir, plan.settings, plan.selection)
            media.append(answer)
            events.record("answer-medium", path=str(answer), built=built, edition=plan.edition.name,
                          drivers_pass=cfg.drivers_pass, winpe=[p.driver.name for p in plan.selection.boot_critical],
                          drivers=[p.driver.name for p in plan.selection.others],
                          missing=plan.selection.missing)
        elif facts.get("install_complete"):
            remove_answer_media(paths.state_dir)
        _prepare_run_dir(paths)
        if cfg.tpm:
            swtpm = Swtpm(paths.tpm_state, paths.tpm_socket, paths.swtpm_log)
            swtpm.start()
            events.record("swtpm-started", pid=swtpm.proc.pid if swtpm.proc else None)
        if cfg.share is not None:
            smbd = Smbd(cfg.share, paths.run_dir / "samba")
            smbd.write_files()
            smbd.start()  # it gets ready while QEMU starts; the daemon waits for it before the guest runs
            events.record("smbd-started", pid=smbd.pid, port=smbd.port,
                          shares=[s.name for s in cfg.share.shares], uid=cfg.share.uid, gid=cfg.share.gid)
        qmp_listener = listening_socket(paths.qmp_socket)
        serial_listener = listening_socket(paths.serial_socket)
        try:
            argv = build_argv(
                cfg, firmware, paths,
                Endpoints(qmp=qmp_listener.fileno(), serial=serial_listener.fileno()),
                media=media,
                tpm_socket=paths.tpm_socket if swtpm else None,
                share_port=smbd.port if smbd else None,
            )
            with paths.qemu_log.open("ab") as log_file:
                proc = spawn(argv, pass_fds=(qmp_listener.fileno(), serial_listener.fileno()),
                             stdout=log_file, stderr=log_file)
        except FileNotFoundError:
            raise RuntimeFailure(
                f"{cfg.qemu_binary} not found: install it (Debian: apt-get install qemu-system-arm)"
            ) from None
        finally:
            qmp_listener.close()  # QEMU holds its own copies
            serial_listener.close()
        events.record("spawned", pid=proc.pid)
    except BaseException:
        for helper in (swtpm, smbd):
            if helper is not None and helper.proc is not None:
                helper.proc.kill()
                helper.proc.wait()
        with contextlib.suppress(OSError):
            shutil.rmtree(paths.run_dir)
        if events is not None:
            events.close()
        lock.release()
        raise
    return Launched(cfg, paths, lock, events, facts, proc, argv, swtpm, smbd)
