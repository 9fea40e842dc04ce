#!/usr/bin/env python3
"""Crash rounds: start the VM, let the guest write, SIGKILL everything at a random moment; again and again.

The testbed (a real arm64 Linux playing Windows, under TCG) is installed once through ``winarm up``, with a
software TPM (swtpm) and a shared folder (smbd), and asked for its write load (a file on its "Windows"
partition, see ``winarm/testbed/write_load.py``). Then each round:

1. ``winarm up`` on that storage; the guest checks its FAT file systems (fsck.fat, ``WINARM-EVENT fsck ...``:
   the verdict on what the previous round's kill left), reaches ``ready`` and writes files in a loop
   (``WINARM-EVENT guest-writing``);
2. at a moment drawn from the seeded RNG, either up to ``--window`` seconds after ``guest-writing`` or, in a
   share ``--early-share`` of the rounds, anywhere from QEMU running to that many seconds past the time the
   guest took to start writing in the last round (the first round is always of the first kind), winarm,
   QEMU, swtpm, smbd and every other descendant get SIGKILL at once (psutil, the whole process tree);
3. no qemu-system, smbd or swtpm of this VM may be left; ``qemu-img check`` of the disk image must find
   nothing (exit 0: no corruption, no leaked cluster); the host's own ``fsck.fat -n`` of the image's FAT
   partitions is recorded: the guest's read-only check at the next boot must find exactly that.

After the last round, two more boots stopped gracefully (``--stop-at ready``, the write load running when the
power button comes): the first gives the last round's fsck verdict, the second must find the file systems clean.

What "clean" means here. FAT has no journal and Linux's vfat orders none of its writes (and only an fsync
flushes the disk's write cache: a guest write not flushed yet may be lost when QEMU dies, as from a disk's
volatile cache; for a write to a new qcow2 cluster the L2 entry waits in QEMU's memory for the flush). So a
crash while the file system is mounted read-write leaves its dirty bit set and may leave clusters no file
owns, FAT copies that differ, a file size that disagrees with its cluster chain or a new directory whose
cluster was not written. That is the file system's nature, not damage to the image: the image is judged by
``qemu-img check``, and the guest's check must see what the host's fsck sees in the image. The file system is
judged by what fsck.fat finds: every finding after a kill must be of those kinds
(``winarm_testbed.disk_image.classify``), the guest's repair at boot (``fsck.fat -a``, as Windows runs chkdsk
on a dirty volume) must leave it clean, a kill before ``ready`` (nothing mounted read-write) must leave a clean
file system when the boot's own check had left it clean, and a graceful stop must leave it clean.

Usage:
    python bench/crash_rounds.py [--rounds 30] [--seed N] [--json FILE] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from winarm.vm.watch import IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_MOVED_TO, Watch
from winarm_testbed.disk_image import classify, fsck_image
from winarm_testbed.write_load import set_write_load

WINARM = [sys.executable, "-m", "winarm"]
NAME = "crash"
VM = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--timeout", "30"]
HELPERS = ("qemu-system", "smbd", "swtpm", "notifyd", "cleanupd", "socat")
"""Process names (prefixes) of what winarm starts: QEMU, swtpm, smbd and its helpers, the share relay."""
ALLOWED = {"dirty-bit", "lost-clusters", "fat-copies-differ", "size-vs-chain", "dir-unwritten", "path"}
"""fsck.fat findings a crash of a mounted FAT file system explains (see classify)."""
HANG = 600.0
"""Seconds without the awaited event after which a boot counts as hung (a guard, never a measurement)."""
_PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------------------------------
# The VM's event log, read as winarm appends to it


class EventLog:
    """The VM's phase log (``events.jsonl``) of the run started after this object: each call to :meth:`next`
    returns the events appended since the last one, waiting on inotify (no polling) until there are some."""

    def __init__(self, vm_dir: Path) -> None:
        self.path = vm_dir / "events.jsonl"
        self.watch = Watch(vm_dir, IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO)
        try:
            self._old: int | None = self.path.stat().st_ino  # the last run's log, moved aside by the next run
        except FileNotFoundError:
            self._old = None
        self._inode: int | None = None
        self._offset = 0
        self._rest = b""

    def _read(self) -> list[dict[str, Any]]:
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            return []
        if inode == self._old:
            return []
        if inode != self._inode:
            self._inode, self._offset, self._rest = inode, 0, b""
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        *lines, self._rest = (self._rest + data).split(b"\n")
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    events.append(item)
        return events

    def next(self, timeout: float, also: int) -> list[dict[str, Any]]:
        """New events; an empty list when ``timeout`` seconds passed without any, or the file descriptor
        ALSO (a pidfd: the process ended) became readable first."""
        events = self._read()
        if events:
            return events
        ready, _, _ = select.select([self.watch.fd, also], [], [], max(0.0, timeout))
        if self.watch.fd in ready:
            self.watch.drain()
        return self._read()

    def close(self) -> None:
        self.watch.close()


# --------------------------------------------------------------------------------------------------
# Processes


def become_subreaper() -> None:
    """Adopt orphaned descendants (QEMU when winarm dies first, say), so that they are reaped here, not left
    as zombies under a PID 1 that may not reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_tree(pid: int) -> list[str]:
    """SIGKILL the process PID and all its descendants at once; wait until they are gone. Returns the names
    of the processes killed (read before the kill: a dead process's name is cut at 15 characters)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    names = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            names.append(proc.name())
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)
    reap()
    return names


def reap() -> None:
    """Reap every child that has ended (adopted orphans included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def leftovers(paths: list[Path]) -> list[str]:
    """Live processes of this VM after a kill: winarm's helpers (by name) that are descendants of this
    process or mention one of PATHS on their command line, and any other live descendant."""
    reap()
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or [])
        ours = info["pid"] in mine or any(str(p) in cmdline for p in paths)
        helper = any((info["name"] or "").startswith(h) for h in HELPERS)
        if ours and (helper or info["pid"] in mine):
            found.append(f"{info['name']}[{info['pid']}]")
    return found


# --------------------------------------------------------------------------------------------------
# One boot


@dataclass
class Boot:
    """What one ``winarm up`` showed: events with the time this script saw them (seconds since the start)."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    exit_status: int | None = None

    def seen(self, kind: str, name: str | None = None) -> float | None:
        for at, event in self.events:
            if event.get("kind") == kind and (name is None or event.get("name") == name):
                return at
        return None

    def fsck(self) -> list[str]:
        """The guest's check of this boot: the details of its fsck events ("clean", "errors ...", ...)."""
        return [str(e.get("detail", "")) for _, e in self.events
                if e.get("kind") == "guest-event" and e.get("name") == "fsck"]

    def phase_at(self, moment: float) -> str:
        """How far the boot had got at MOMENT (as this script saw the events): the furthest step in PROGRESS
        (the desktop-ready marker can come through the share after ``ready`` came through the console)."""
        phase = "launch"
        for at, event in self.events:
            if at > moment:
                break
            label = step_of(event)
            if label is not None and PROGRESS.index(_rank(label)) >= PROGRESS.index(_rank(phase)):
                phase = label
        return phase

    def reached(self, step: str) -> bool:
        """Whether the boot got to STEP (a PROGRESS name) or further."""
        return PROGRESS.index(_rank(self.phase_at(float("inf")))) >= PROGRESS.index(step)


PROGRESS = ["launch", "firmware", "boot-disk", "init", "fsck", "share", "desktop-ready", "ready", "writing",
            "poweroff"]
"""The steps of a boot from the installed disk, in order."""


def _rank(label: str) -> str:
    return label.split(" ", 1)[0] if label.startswith("fsck") else label if label in PROGRESS else "init"


def step_of(event: dict[str, Any]) -> str | None:  # noqa: PLR0911
    """The step an event marks ("fsck errors" for the guest's check that found something), or None."""
    kind, name = event.get("kind"), event.get("name")
    if kind == "running":
        return "firmware"
    if kind == "boot-device":
        return f"boot-{event.get('device')}"
    if kind == "marker":
        return str(name)
    if kind == "guest-event" and name == "fsck":
        return f"fsck {str(event.get('detail', '')).split(' ', 1)[0]}"
    if kind == "guest-event" and name == "share-reconnected":
        return "share"
    if kind == "guest-event" and name == "guest-writing":
        return "writing"
    return None


def up_argv(storage: Path, extra: list[str]) -> list[str]:
    return [*WINARM, "up", "--name", NAME, "--storage", str(storage), *VM, *extra]


def watch_boot(proc: subprocess.Popen[bytes], log: EventLog, boot: Boot, start: float,
               kill_after: tuple[str, float] | None) -> float | None:
    """Follow a boot's events until winarm exits or, with KILL_AFTER (step, seconds), until that many seconds
    after the event of that step (see step_of: "firmware" for QEMU running, "writing" for guest-writing) was
    seen; returns that moment (None when winarm exited first). A boot with no event for HANG seconds raises
    RuntimeError (the caller kills it)."""
    kill_at: float | None = None
    idle_until = time.monotonic() + HANG
    pidfd = os.pidfd_open(proc.pid)
    try:
        while True:
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                return now - start
            if now >= idle_until:
                raise RuntimeError(f"the boot made no progress for {HANG:.0f} s: {boot.events[-3:]}")
            ended = proc.poll() is not None
            events = log.next(0.0 if ended else (kill_at or idle_until) - now, pidfd)
            seen = time.monotonic() - start
            for event in events:
                boot.events.append((seen, event))
                idle_until = time.monotonic() + HANG
                if kill_after is not None and kill_at is None and step_of(event) == kill_after[0]:
                    kill_at = start + seen + kill_after[1]
            if not events and ended:
                boot.exit_status = proc.returncode
                return None
    finally:
        os.close(pidfd)


# --------------------------------------------------------------------------------------------------
# The rounds


@dataclass
class Round:
    index: int
    plan: str
    seconds: float = 0.0
    """The whole round: boot, kill, checks."""
    killed_at: float | None = None
    phase_at_kill: str = ""
    after_writing: float | None = None
    boot_fsck: list[str] = field(default_factory=list)
    """The guest's check at this round's boot (the verdict on the previous round's kill)."""
    killed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    img_status: int = -1
    img: dict[str, Any] = field(default_factory=dict)
    host_fsck: dict[str, list[str]] = field(default_factory=dict)
    """The host's fsck.fat -n of the image after the kill: findings by partition (clean ones left out)."""
    kinds: dict[str, int] = field(default_factory=dict)
    """Those findings by kind (winarm_testbed.disk_image.classify)."""
    clean_at_kill: bool = False
    """The file systems were clean and not mounted read-write at the kill: the next check must say clean."""
    next_fsck: list[str] = field(default_factory=list)
    """The guest's check at the next boot (empty: that boot was killed before its check)."""
    problems: list[str] = field(default_factory=list)


def img_check(disk: Path) -> tuple[int, dict[str, Any]]:
    """``qemu-img check`` of DISK: its exit status (0 clean, 2 corruptions, 3 leaked clusters only, 1 the
    check could not be done) and its JSON report."""
    proc = subprocess.run(["qemu-img", "check", "-f", "qcow2", "--output=json", str(disk)], capture_output=True,
                          text=True, check=False)
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        report = {"error": (proc.stderr or proc.stdout).strip()[-300:]}
    return proc.returncode, report


def img_summary(status: int, report: dict[str, Any]) -> str:
    if status == 0 and not report.get("corruptions") and not report.get("leaks") and not report.get("check-errors"):
        return "clean"
    parts = [f"exit {status}"]
    parts += [f"{k} {report[k]}" for k in ("corruptions", "leaks", "check-errors") if report.get(k)]
    if "error" in report:
        parts.append(str(report["error"]))
    return ", ".join(parts)


def fsck_kinds(findings: dict[str, list[str]]) -> Counter[str]:
    """The kinds (classify) of the host's findings, file names left out."""
    return Counter(k for items in findings.values() for k in map(classify, items) if k != "path")


def judge_fsck(details: list[str], must_be_clean: bool) -> list[str]:
    """What is wrong with a boot's check, given as its fsck events' details (empty: the boot did not get to
    it; ending in "errors": killed during the repair). MUST_BE_CLEAN: nothing but "clean" will do. (What
    the findings are is judged on the host's fsck of the same image, which the guest's must equal: the
    guest cuts its summary at 300 characters.)"""
    if not details:
        return []
    problems = []
    verdicts = [d.split(" ", 1)[0] for d in details]
    if verdicts[-1] != "errors" and verdicts not in (["clean"], ["errors", "repaired"]):
        problems.append(f"fsck: {' | '.join(details)}")
    if must_be_clean and verdicts[0] != "clean":
        problems.append("fsck not clean though the file systems were clean and not mounted read-write at the kill")
    return problems


def clean_at_kill(record: Round, clean_before: bool) -> bool:
    """Whether the file systems were clean and not mounted read-write when RECORD's kill came: before the
    boot's check, as they were before the boot (CLEAN_BEFORE); after a check that left them clean and before
    ``ready`` (the write load mounts the partition read-write right after it), yes; else no."""
    step = record.phase_at_kill
    if step in ("launch", "firmware", "boot-disk", "init"):
        return clean_before
    return step in ("fsck clean", "fsck repaired", "share", "desktop-ready")


class Rounds:
    def __init__(self, args: argparse.Namespace, work: Path, iso: Path, drivers: Path) -> None:
        self.args = args
        self.storage = work / "storage"
        self.vm_dir = self.storage / NAME
        self.disk = self.vm_dir / "disk.qcow2"
        self.run_base = Path(tempfile.mkdtemp(prefix="wcr-", dir="/tmp"))
        self.env = {**os.environ, "WINARM_RUN_DIR": str(self.run_base)}
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.extra: list[str] = ["--tpm" if args.tpm else "--no-tpm"]
        if args.share:
            shared = work / "shared"
            shared.mkdir(exist_ok=True)
            os.chmod(work, 0o755)
            os.chmod(shared, 0o777)
            self.extra += ["--shared", f"Data={shared}"]
        self.iso = iso
        self.drivers = drivers
        self.rng = random.Random(args.seed)
        self.to_writing: float | None = None
        """Seconds from QEMU running to guest-writing, as last seen: the span of the early kills."""

    def spawn(self, label: str, extra: list[str]) -> tuple[subprocess.Popen[bytes], EventLog, float]:
        log = EventLog(self.vm_dir)
        out = (self.logs / f"{label}.log").open("wb")
        start = time.monotonic()
        proc = subprocess.Popen(up_argv(self.storage, [*self.extra, *extra]), stdout=out, stderr=subprocess.STDOUT,
                                env=self.env)
        out.close()
        return proc, log, start

    def install(self) -> None:
        self.vm_dir.mkdir(parents=True, exist_ok=True)
        boot = self.graceful_boot("install", "--iso", str(self.iso), "--drivers", str(self.drivers))
        if boot.exit_status != 0 or boot.seen("marker", "ready") is None:
            raise RuntimeError(f"the install failed (exit {boot.exit_status}); see {self.logs / 'install.log'}")
        set_write_load(self.disk)

    def paths(self) -> list[Path]:
        return [self.storage, self.run_base]

    def crash_round(self, index: int) -> tuple[Round, Boot]:
        early = index > 1 and self.rng.random() < self.args.early_share
        fraction = self.rng.random()
        if early:
            span = (self.to_writing or 20.0) + self.args.window
            kill_after = ("firmware", fraction * span)
            plan = f"running+{kill_after[1]:.1f}s"
        else:
            kill_after = ("writing", fraction * self.args.window)
            plan = f"writing+{kill_after[1]:.1f}s"
        record = Round(index, plan)
        proc, log, start = self.spawn(f"round-{index:02d}", [])
        record.seconds = -start
        boot = Boot()
        try:
            record.killed_at = watch_boot(proc, log, boot, start, kill_after)
        finally:
            log.close()
            record.killed = kill_tree(proc.pid)
            proc.wait()
        record.left = leftovers(self.paths())
        for name in record.left:
            with contextlib.suppress(ValueError, psutil.Error):
                psutil.Process(int(name.rsplit("[", 1)[1].rstrip("]"))).kill()
        reap()
        if record.killed_at is None:
            record.problems.append(f"winarm exited by itself (status {boot.exit_status}) before the kill")
            record.killed_at = boot.events[-1][0] if boot.events else 0.0
        record.phase_at_kill = boot.phase_at(record.killed_at)
        writing, running = boot.seen("guest-event", "guest-writing"), boot.seen("running")
        if writing is not None:
            record.after_writing = record.killed_at - writing
            if running is not None:
                self.to_writing = writing - running
        record.boot_fsck = boot.fsck()
        record.problems += [f"the guest's write load failed: {e.get('detail', '')}" for _, e in boot.events
                            if e.get("kind") == "guest-event" and e.get("name") == "guest-writing-failed"]
        self.check_image(record)
        record.seconds += time.monotonic()
        return record, boot

    def check_image(self, record: Round) -> None:
        if record.left:
            record.problems.append(f"left running after the kill: {', '.join(record.left)}")
        record.img_status, record.img = img_check(self.disk)
        if img_summary(record.img_status, record.img) != "clean":
            record.problems.append(f"qemu-img check: {img_summary(record.img_status, record.img)}")
        record.host_fsck = {r.partition: list(r.findings) for r in fsck_image(self.disk) if not r.clean}
        record.kinds = dict(fsck_kinds(record.host_fsck))
        unexplained = sorted(k for k in record.kinds if k not in ALLOWED)
        if unexplained:
            record.problems.append(f"fsck findings a crash of FAT does not explain: {', '.join(unexplained)}")

    def graceful_boot(self, label: str, *args: str) -> Boot:
        """One ``winarm up`` (with ``args``) to the guest's ``ready`` and its graceful stop, watched to the end."""
        proc, log, start = self.spawn(label, [*args, "--stop-at", "ready"])
        boot = Boot()
        try:
            watch_boot(proc, log, boot, start, None)
        finally:
            log.close()
            kill_tree(proc.pid)
        return boot


def judge(record: Round, boot: Boot) -> None:
    """Judge RECORD's kill by the check of the BOOT that followed it: see judge_fsck; and the guest's
    read-only check must have found what the host's found in the image after the kill (the same bytes)."""
    record.next_fsck = boot.fsck()
    if not record.next_fsck and boot.reached("share"):
        record.problems.append("no fsck event at a boot that got past the check")
    record.problems += judge_fsck(record.next_fsck, record.clean_at_kill)
    if record.next_fsck:
        verdict, _, found = record.next_fsck[0].partition(" ")
        host = host_fsck_text(record.host_fsck)
        guest = "clean" if verdict == "clean" else found
        if verdict in ("clean", "errors") and guest != host:
            record.problems.append(f"the guest's check found {guest!r}, the host's {host!r}")


def host_fsck_text(found: dict[str, list[str]]) -> str:
    """The host's findings as the guest words its check (each partition's cut at 300 characters)."""
    return " / ".join(f"{part}: {'; '.join(items)[:300]}" for part, items in found.items()) or "clean"


def short(details: list[str], width: int) -> str:
    text = " | ".join(details) if details else "(not reached)"
    return text if len(text) <= width else text[: width - 3] + "..."


def print_table(rounds: list[Round]) -> None:
    print(f"{'round':>5}  {'kill plan':<16} {'phase at kill':<16} {'after writing':>13}  {'qemu-img check':<15} "
          f"{'host fsck -n after the kill':<44} next boot's fsck")
    for r in rounds:
        after = f"{r.after_writing:.2f} s" if r.after_writing is not None and r.after_writing >= 0 else "-"
        print(f"{r.index:>5}  {r.plan:<16} {r.phase_at_kill:<16} {after:>13}  "
              f"{img_summary(r.img_status, r.img):<15} {short([host_fsck_text(r.host_fsck)], 44):<44} "
              f"{short(r.next_fsck, 90)}")
        for problem in r.problems:
            print(f"{'':>7}PROBLEM: {problem}")


def summary(rounds: list[Round], final: list[str], final_problems: list[str], seed: int) -> list[str]:
    phases = Counter(r.phase_at_kill for r in rounds)
    img = Counter(img_summary(r.img_status, r.img) for r in rounds)
    reached = [r for r in rounds if r.next_fsck]
    verdicts = Counter(" -> ".join(d.split(" ", 1)[0] for d in r.next_fsck) for r in reached)
    kinds: Counter[str] = Counter()
    for r in rounds:
        kinds.update(set(r.kinds))
    hosts = Counter("clean" if not r.host_fsck else "findings" for r in rounds)
    killed: Counter[str] = Counter()
    for r in rounds:
        killed.update(set(r.killed))
    problems = [p for r in rounds for p in r.problems] + final_problems
    seconds = sorted(r.seconds for r in rounds) or [0.0]
    lines = [
        f"crash rounds: {len(rounds)} (seed {seed}), {seconds[len(seconds) // 2]:.1f} s each (median); kills in: "
        + ", ".join(f"{k} {v}" for k, v in sorted(phases.items(), key=lambda kv: -kv[1])),
        f"  killed while the guest was writing: {sum(1 for r in rounds if r.phase_at_kill == 'writing')}, "
        f"processes left after a kill: {sum(len(r.left) for r in rounds)}",
        "  processes killed (rounds with each): " + ", ".join(f"{k} {v}" for k, v in killed.most_common()),
        "  qemu-img check after each kill: " + ", ".join(f"{k} {v}" for k, v in img.items()),
        "  host fsck.fat -n after each kill: " + ", ".join(f"{k} {v}" for k, v in hosts.items()),
        f"  next boot's fsck (guest), {len(reached)} of {len(rounds)} reached: "
        + ", ".join(f"{k} {v}" for k, v in verdicts.most_common()),
        "  kinds of findings after the kills (rounds with each): "
        + (", ".join(f"{k} {v}" for k, v in kinds.most_common()) or "none"),
        f"  after two graceful stops with the load running, fsck: {' | '.join(final) or '(none)'}",
        f"  guest's check = host's fsck of the image after the kill: "
        f"{sum(1 for r in reached if not any('the host' in p for p in r.problems))} of {len(reached)}",
        f"  verdict: {'PASS' if not problems else f'FAIL ({len(problems)} problems)'}",
    ]
    return lines


def main() -> int:  # noqa: C901, PLR0912, PLR0915
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None, help="the RNG's seed [default: a random one, printed]")
    parser.add_argument("--window", type=float, default=6.0,
                        help="kills come up to this many seconds after guest-writing [default 6]")
    parser.add_argument("--early-share", type=float, default=0.3,
                        help="share of the rounds killed anywhere from QEMU running on [default 0.3]")
    parser.add_argument("--iso", type=Path, help="the Windows-shaped test ISO [default: built, cached]")
    parser.add_argument("--drivers", type=Path, help="a virtio-win tree [default: placeholders]")
    parser.add_argument("--tpm", action=argparse.BooleanOptionalAction, default=True, help="with swtpm [on]")
    parser.add_argument("--share", action=argparse.BooleanOptionalAction, default=True,
                        help="with a shared folder (smbd) [on]")
    parser.add_argument("--workdir", type=Path, help="where the VM lives [default: a new temporary directory]")
    parser.add_argument("--keep", action="store_true", help="keep the work directory [kept anyway on failure]")
    parser.add_argument("--json", type=Path, help="write every round's record here")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    args.seed = seed

    become_subreaper()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="winarm-crash-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("WINARM_CACHE") or Path.home() / ".cache" / "winarm")
    if args.iso is None:
        from winarm_testbed.windows_iso import build_windows_testbed

        args.iso = build_windows_testbed(cache, log=lambda line: None)
    if args.drivers is None:
        from winarm_testbed.virtio_tree import make_fake_virtio_tree

        args.drivers = make_fake_virtio_tree(work / "virtio-win")
    runner = Rounds(args, work, args.iso, args.drivers)
    rounds: list[Round] = []
    final: list[str] = []
    final_problems: list[str] = []
    status = 1
    try:
        print(f"seed {seed}; work directory {work}", flush=True)
        started = time.monotonic()
        runner.install()
        baseline, report = img_check(runner.disk)
        print(f"installed in {time.monotonic() - started:.0f} s; write load requested; qemu-img check: "
              f"{img_summary(baseline, report)}", flush=True)
        clean = not any(not r.clean for r in fsck_image(runner.disk))  # before the first round
        for index in range(1, args.rounds + 1):
            record, boot = runner.crash_round(index)
            if rounds:
                judge(rounds[-1], boot)
            record.clean_at_kill = clean = clean_at_kill(record, clean)
            rounds.append(record)
            print(f"round {index:>2} ({record.seconds:4.1f} s): {record.plan:<16} killed in {record.phase_at_kill:<14} "
                  f"qemu-img check {img_summary(record.img_status, record.img)}; host fsck "
                  f"{host_fsck_text(record.host_fsck)[:80]}; this boot's fsck {short(record.boot_fsck, 60)}",
                  flush=True)
        first = runner.graceful_boot("final-1")
        if rounds:
            judge(rounds[-1], first)
        if first.exit_status != 0:
            final_problems.append(f"the first graceful boot exited with {first.exit_status}")
        second = runner.graceful_boot("final-2")
        final = second.fsck()
        if second.exit_status != 0:
            final_problems.append(f"the second graceful boot exited with {second.exit_status}")
        if final != ["clean"]:
            final_problems.append(f"fsck after a graceful stop with the write load running: {' | '.join(final)}")
        for label, boot in (("first", first), ("second", second)):
            if boot.seen("guest-event", "guest-writing") is None:
                final_problems.append(f"the write load did not start at the {label} graceful boot")
            final_problems += [f"the guest's write load failed at the {label} graceful boot: {e.get('detail', '')}"
                               for _, e in boot.events
                               if e.get("kind") == "guest-event" and e.get("name") == "guest-writing-failed"]
        last, report = img_check(runner.disk)
        if img_summary(last, report) != "clean":
            final_problems.append(f"qemu-img check after the graceful boots: {img_summary(last, report)}")
        left = leftovers(runner.paths())
        if left:
            final_problems.append(f"left running after the graceful boots: {', '.join(left)}")
        print()
        print_table(rounds)
        for problem in final_problems:
            print(f"PROBLEM: {problem}")
        print()
        lines = summary(rounds, final, final_problems, seed)
        print("\n".join(lines))
        status = 0 if not any(r.problems for r in rounds) and not final_problems else 1
    finally:
        if args.json:
            args.json.write_text(json.dumps({
                "seed": seed, "rounds": [asdict(r) for r in rounds], "final_fsck": final,
                "final_problems": final_problems, "status": status}, indent=1))
        shutil.rmtree(runner.run_base, ignore_errors=True)
        if not args.keep and args.workdir is None and status == 0:
            shutil.rmtree(work, ignore_errors=True)
        elif args.workdir is None:
            print(f"kept {work} (winarm's output of each boot in logs/, the VM in storage/)", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
