"""Everything before the asyncio loop: lock the VM, prepare its files, start swtpm and QEMU (paused).

Kept free of asyncio on purpose: ``winarm up`` spawns QEMU after importing only what this needs, then
imports the event loop and the QMP library while QEMU initialises in parallel. Each step checks before it
writes, so a refused start (a VM already running, a missing program) changes nothing on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from winarm.config.host import check_windows_cpu
from winarm.config.paths import VmPaths, remove_answer_media
from winarm.config.vm import Config
from winarm.errors import RuntimeFailure, UserError
from winarm.procs import kill_now, listening_socket, spawn
from winarm.qemu import disk
from winarm.qemu.argv import Endpoints, build_argv
from winarm.qemu.firmware import Firmware, ensure_vars, find_firmware
from winarm.services.smbd import Smbd
from winarm.services.smbd import check_available as check_samba
from winarm.services.swtpm import Swtpm, check_available
from winarm.timeline.events import EventKind, EventLog
from winarm.vm.facts import known_build, read_facts, remember_build, write_facts
from winarm.vm.run_dir import check_base, clear_stale, make_run_dir
from winarm.vm.vnc_secret import with_vnc_password

if TYPE_CHECKING:
    from collections.abc import Callable

    from winarm.answer.plan import InstallPlan
    from winarm.media.iso import InstallImage

HISTORY_KEEP = 20
VARS_SECURE_BOOT_FACT = "efivars_secure_boot"
"""Whether the VM's UEFI variables were copied from a Secure Boot template (the variables, not the firmware's
code, hold the keys and the switch)."""

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
    """A VM whose QEMU has just been spawned, paused, with everything the supervisor needs to take over.

    ``stack`` holds the launch's own teardown, registered as each resource was acquired: closing it kills what
    still runs (QEMU, smbd, swtpm: SIGKILL, the last resort after the supervisor's graceful stops), removes the
    run directory, closes the event log and drops the lock, in that order."""

    cfg: Config
    paths: VmPaths
    events: EventLog
    facts: dict[str, Any]
    proc: subprocess.Popen[bytes]
    argv: list[str]
    stack: contextlib.ExitStack
    swtpm: Swtpm | None = None
    smbd: Smbd | None = None
    answer_medium: Path | None = None
    """The answer medium attached this run (it holds the password), None when there is none."""
    install_image: InstallImage | None = None
    """The image this run's install applies (its TOTALBYTES and file size), None when there is no install or
    the image gives no size."""
    windows_build: int | None = None
    """The Windows build this run installs or the disk's install remembered (``windows_build`` in its facts); None when
    neither is known (an install without the answer medium, or a disk installed before winarm kept it)."""
    disk_grown_from: int | None = None
    """The disk's size before this start grew it to ``cfg.disk_size``; None when it was not grown."""

    def close(self) -> None:
        """Undo the launch (see the class docstring); idempotent, never raises for a run directory already gone."""
        self.stack.close()


def _preflight(cfg: Config) -> None:
    """Checks that need no writes: the programs are installed. Raises a WinarmError."""
    if shutil.which(cfg.qemu_binary) is None:
        raise RuntimeFailure(f"{cfg.qemu_binary} not found: install it (Debian: apt-get install qemu-system-arm)")
    if cfg.tpm:
        check_available()
    if cfg.share is not None:
        check_samba()


def _prepare_run_dir(paths: VmPaths) -> None:
    """Create the run directory (0700, checked: :mod:`winarm.vm.run_dir`) and clear what a dead daemon left in
    it. Raises :class:`UserError` for a run directory another user could have planted."""
    make_run_dir(paths.run_dir)
    clear_stale(paths.run_dir)
    paths.daemon_pid.write_text(f"{os.getpid()}\n")


def _open_log(cfg: Config, paths: VmPaths, t0: float, stack: contextlib.ExitStack) -> EventLog:
    """Move the previous run's logs aside and open this run's phase log (closed by ``stack``)."""
    rotate_events(paths)
    events = EventLog(paths.events, t0=t0)
    stack.callback(events.close)
    events.record(EventKind.START, name=cfg.name, accel=cfg.accel, ram=cfg.ram, cpus=cfg.cpus)
    return events


def _settle_facts(cfg: Config, paths: VmPaths, install_build: int | None) -> dict[str, Any]:
    """This run's facts, written when they change: none for a disk created now (it has never booted), and the
    build an install applies (``install_build``) remembered for later starts. Raises a WinarmError when the
    disk cannot be created or the facts cannot be written."""
    facts = read_facts(paths)
    changed = False
    if disk.ensure_image(paths.disk, cfg.disk_format, cfg.disk_size, allocate=cfg.allocate):
        facts, changed = {}, True
    if remember_build(facts, install_build) or changed:
        write_facts(paths, facts)
    return facts


def _firmware_vars(firmware: Firmware, paths: VmPaths, facts: dict[str, Any]) -> None:
    """Give the VM its UEFI variables: copied from the firmware's template when missing, and afresh when Secure
    Boot was switched (``--no-secure-boot`` after a start with it, say) while the disk has never booted (no OS
    wrote boot entries there yet); the way out of a CD refused by Secure Boot. Writes the facts when they change.
    Raises a WinarmError when the variables or the facts cannot be written."""
    made = facts.get(VARS_SECURE_BOOT_FACT)
    if isinstance(made, bool) and made != firmware.secure_boot and not facts.get("disk_booted"):
        paths.efivars.unlink(missing_ok=True)
    if ensure_vars(firmware, paths.efivars):
        facts[VARS_SECURE_BOOT_FACT] = firmware.secure_boot
        write_facts(paths, facts)


def _media(cfg: Config, paths: VmPaths, plan: InstallPlan | None, events: EventLog) -> list[Path]:
    """The removable media of this run: the ISO, and the answer medium built for an install."""
    media = [cfg.iso] if cfg.iso else []
    if plan is not None:
        from winarm.answer.medium import build_answer_medium

        answer, built = build_answer_medium(paths.state_dir, plan.settings, plan.selection)
        media.append(answer)
        events.record(EventKind.ANSWER_MEDIUM, path=str(answer), built=built, edition=plan.edition.name,
                      language=plan.settings.language, ui_language=plan.settings.ui_language,
                      drivers_pass=cfg.drivers_pass, winpe=[p.driver.name for p in plan.selection.boot_critical],
                      drivers=[p.driver.name for p in plan.selection.others], missing=plan.selection.missing,
                      left_out={item.name: item.reason for item in plan.selection.left_out},
                      signatures={p.driver.name: p.signature.verdict.value for p in
                                  (*plan.selection.boot_critical, *plan.selection.others) if p.signature})
        for line in plan.selection.lines(cfg.drivers_pass):
            print(f"winarm: {line}", file=sys.stderr, flush=True)
        for line in plan.selection.warnings():
            print(f"winarm: warning: {line}", file=sys.stderr, flush=True)
    return media


def _start_services(cfg: Config, paths: VmPaths, events: EventLog,
                    stack: contextlib.ExitStack) -> tuple[Swtpm | None, Smbd | None]:
    """Start swtpm and smbd as the VM asks; each registers its kill on ``stack`` before it starts."""
    swtpm: Swtpm | None = None
    smbd: Smbd | None = None
    if cfg.tpm:
        swtpm = Swtpm(paths.tpm_state, paths.tpm_socket, paths.swtpm_log, paths.tpm_ca)
        stack.callback(swtpm.kill_now)
        swtpm.start()
        events.record(EventKind.SWTPM_STARTED, pid=swtpm.proc.pid if swtpm.proc else None)
    if cfg.share is not None:
        smbd = Smbd(cfg.share, paths.run_dir / "samba")
        stack.callback(smbd.kill_now)
        smbd.write_files()
        smbd.start()  # it gets ready while QEMU starts; the daemon waits for it before the guest runs
        events.record(EventKind.SMBD_STARTED, pid=smbd.pid, port=smbd.port,
                      shares=[s.name for s in cfg.share.shares], uid=cfg.share.uid, gid=cfg.share.gid)
    return swtpm, smbd


def _spawn_qemu(cfg: Config, paths: VmPaths, argv_for: Callable[[Endpoints], list[str]],
                stack: contextlib.ExitStack) -> tuple[subprocess.Popen[bytes], list[str]]:
    """Spawn QEMU paused on fresh QMP and serial listeners (QEMU keeps its own copies); its kill goes on
    ``stack``. Raises :class:`RuntimeFailure` when the program is missing."""
    qmp_listener = listening_socket(paths.qmp_socket)
    serial_listener = listening_socket(paths.serial_socket)
    try:
        argv = argv_for(Endpoints(qmp=qmp_listener.fileno(), serial=serial_listener.fileno()))
        with paths.qemu_log.open("ab") as log_file:
            proc = spawn(argv, pass_fds=(qmp_listener.fileno(), serial_listener.fileno()),
                         stdout=log_file, stderr=log_file)
    except FileNotFoundError:
        raise RuntimeFailure(
            f"{cfg.qemu_binary} not found: install it (Debian: apt-get install qemu-system-arm)"
        ) from None
    finally:
        qmp_listener.close()
        serial_listener.close()
    stack.callback(kill_now, proc)
    return proc, argv


def launch(cfg: Config, t0: float) -> Launched:
    """Lock the VM, create what is missing (disk, UEFI variables, run dir), start swtpm and spawn QEMU paused.

    Raises :class:`UserError` (the VM already runs; before anything is written, the CPU cannot run the Windows
    build being installed or remembered, see :func:`check_windows_cpu`) or :class:`RuntimeFailure` (a program is
    missing, QEMU cannot be spawned); on failure everything started here is stopped and the lock released (the launch's
    :class:`contextlib.ExitStack` unwinds). On success that stack goes to the caller in :class:`Launched`.
    """
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    _preflight(cfg)
    firmware = find_firmware(cfg.secure_boot)
    paths.check_socket_lengths()
    check_base(paths.run_dir.parent)  # before anything is written
    plan = None
    if cfg.unattend and cfg.iso is not None and not read_facts(paths).get("install_complete"):
        from winarm.answer.plan import plan_install  # here: Jinja2 and the ISO reader load only for an install
        from winarm.media.iso_answer import warn_answer_file

        plan = plan_install(cfg, read_facts(paths))
        warn_answer_file(plan.info if plan is not None else None, cfg.iso)  # Setup may take the ISO's own
    build = plan.edition.build_number if plan is not None else known_build(paths)
    check_windows_cpu(cfg.accel, cfg.cpu_model, build)
    paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cfg = with_vnc_password(cfg, paths)
    with contextlib.ExitStack() as stack:
        lock = VmLock(paths.lock)
        lock.acquire(cfg.name)
        stack.callback(lock.release)
        events = _open_log(cfg, paths, t0, stack)
        grown_from = disk.growth(paths.disk, cfg.disk_format, cfg.disk_size)
        facts = _settle_facts(cfg, paths, build if plan is not None else None)
        if grown_from is not None:
            events.record(EventKind.DISK_GROWN, size_before=grown_from, size=cfg.disk_size)
        _firmware_vars(firmware, paths, facts)
        media = _media(cfg, paths, plan, events)
        if plan is None and facts.get("install_complete"):
            remove_answer_media(paths.state_dir)
        _prepare_run_dir(paths)
        stack.callback(shutil.rmtree, paths.run_dir, ignore_errors=True)  # checked ours just now
        swtpm, smbd = _start_services(cfg, paths, events, stack)
        proc, argv = _spawn_qemu(cfg, paths, lambda endpoints: build_argv(
            cfg, firmware, paths, endpoints, media=media, tpm_socket=paths.tpm_socket if swtpm else None,
            share_port=smbd.port if smbd else None, windows_build=build), stack)
        events.record(EventKind.SPAWNED, pid=proc.pid)
        launched = Launched(cfg, paths, events, facts, proc, argv, stack.pop_all(), swtpm, smbd,
                            answer_medium=media[-1] if plan is not None else None,
                            install_image=plan.image if plan is not None else None, windows_build=build,
                            disk_grown_from=grown_from)
    return launched
