#!/usr/bin/env python3
"""Crash rounds: start the VM, let the guest write, SIGKILL everything at a random moment; again and again.

The testbed (a real arm64 Linux playing Windows, under TCG) is installed once through ``winarm up``, with a
software TPM (swtpm) and a shared folder (smbd), and asked for its write load (a file on its "Windows"
partition, see ``winarm_testbed/write_load.py``). Then each round:

1. ``winarm up`` on that storage; the guest checks its FAT file systems (fsck.fat, ``WINARM-EVENT fsck ...``:
   the verdict on what the previous round's kill left), runs its Run key (``desktop-ready`` over the guest
   channel and the share), reaches its own ``ready`` (a guest event: playing Windows it has no serial phases)
   and writes files in a loop (``WINARM-EVENT guest-writing``);
2. at a moment drawn from the seeded RNG, either up to ``--window`` seconds after ``guest-writing`` or, in a
   share ``--early-share`` of the rounds, anywhere from QEMU running to that many seconds past the time the
   guest took to start writing in the last round (the first round is always of the first kind), winarm,
   QEMU, swtpm, smbd and every other descendant get SIGKILL at once (psutil, the whole process tree);
3. no qemu-system, smbd or swtpm of this VM may be left; ``qemu-img check`` of the disk image must find
   nothing (exit 0: no corruption, no leaked cluster); the host's own ``fsck.fat -n`` of the image's FAT
   partitions is recorded: the guest's read-only check at the next boot must find exactly that.

After the last round, two more boots stopped gracefully (``winarm down`` once the guest says ``guest-writing``,
so the write load runs when the power button comes; ``--stop-at desktop-ready`` would press it before the load
starts, as the Run key reports before it): the first gives the last round's fsck verdict, the second must find
the file systems clean.

What "clean" means here. FAT has no journal and Linux's vfat orders none of its writes (and only an fsync
flushes the disk's write cache: a guest write not flushed yet may be lost when QEMU dies, as from a disk's
volatile cache; for a write to a new qcow2 cluster the L2 entry waits in QEMU's memory for the flush). So a
crash while the file system is mounted read-write leaves its dirty bit set and may leave clusters no file
owns, FAT copies that differ, a file size that disagrees with its cluster chain or a new directory whose
cluster was not written. That is the file system's nature, not damage to the image: the image is judged by
``qemu-img check``, and the guest's check must see what the host's fsck sees in the image. The file system is
judged by what fsck.fat finds: every finding after a kill must be of those kinds
(``winarm_testbed.disk_image.classify``), the guest's repair at boot (``fsck.fat -a``, as Windows runs chkdsk
on a dirty volume) must leave it clean, a kill before the guest's ``ready`` (nothing mounted read-write) must
leave a clean file system when the boot's own check had left it clean, and a graceful stop must leave it clean.

Usage:
    python bench/crash_rounds.py [--rounds 30] [--seed N] [--json FILE] [--workdir DIR] [--keep] [--smoke]

``--smoke`` is one round (seed 37 unless given) and the two graceful boots: a few minutes, not half an hour.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import psutil
from _common import WINARM, BenchError
from _crash_boot import Boot, EventLog, become_subreaper, kill_tree, leftovers, reap, watch_boot
from _crash_judge import (
    ALLOWED,
    Round,
    clean_at_kill,
    fsck_kinds,
    host_fsck_text,
    img_check,
    img_summary,
    judge,
    print_table,
    short,
    summary,
)

from winarm.guest import DESKTOP_READY
from winarm_testbed.disk_image import fsck_image
from winarm_testbed.write_load import set_write_load

NAME = "crash"
VM = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--timeout", "30"]


def up_argv(storage: Path, extra: list[str]) -> list[str]:
    return [*WINARM, "up", "--name", NAME, "--storage", str(storage), *VM, *extra]


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
            if os.geteuid() == 0:  # not root's: root as the share's default owner is refused
                os.chown(shared, 4321, 4321)
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
        if boot.exit_status != 0 or boot.seen("marker", DESKTOP_READY) is None:
            raise RuntimeError(f"the install failed (exit {boot.exit_status}); see {self.logs / 'install.log'}")
        set_write_load(self.disk)

    def paths(self) -> list[Path]:
        return [self.storage, self.run_base]

    def crash_round(self, index: int) -> tuple[Round, Boot]:
        early = index > 1 and self.rng.random() < self.args.early_share
        fraction = self.rng.random()
        if early:
            span = (self.to_writing or 20.0) + self.args.window
            kill_after = (("firmware",), fraction * span)
            plan = f"running+{kill_after[1]:.1f}s"
        else:
            kill_after = (("writing",), fraction * self.args.window)
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

    def graceful_boot(self, label: str, *args: str, load: bool = False) -> Boot:
        """One ``winarm up`` (with ``args``) stopped gracefully, watched to the end: at ``desktop-ready``, or with
        LOAD by ``winarm down`` once the guest's write load runs (``guest-writing``, or ``guest-writing-failed``,
        which the caller finds among the events). Raises BenchError when ``winarm down`` fails."""
        proc, log, start = self.spawn(label, [*args] if load else [*args, "--stop-at", DESKTOP_READY])
        boot = Boot()
        try:
            if load and watch_boot(proc, log, boot, start, (("writing", "writing-failed"), 0.0)) is not None:
                self.down(label)
            watch_boot(proc, log, boot, start, None)
        finally:
            log.close()
            kill_tree(proc.pid)
        return boot

    def down(self, label: str) -> None:
        """``winarm down`` of the VM (waiting until it has stopped). Raises BenchError when it fails."""
        done = subprocess.run([*WINARM, "down", "--name", NAME, "--storage", str(self.storage)], env=self.env,
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise BenchError(f"winarm down at the {label} boot exited {done.returncode}: {done.stderr.strip()}")


def parse_args() -> argparse.Namespace:
    """The options; ``seed`` is always set (drawn and printed when not given), ``--smoke`` sets one round."""
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
    parser.add_argument("--smoke", action="store_true",
                        help="one round (seed 37 unless given) and the graceful boots, its time checked")
    args = parser.parse_args()
    if args.smoke:
        args.rounds = 1
        args.seed = 37 if args.seed is None else args.seed
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    return args


def inputs(args: argparse.Namespace, work: Path) -> None:
    """Fill in ``args.iso`` (the cached Windows-shaped test ISO) and ``args.drivers`` (placeholders) if not given."""
    cache = Path(os.environ.get("WINARM_CACHE") or Path.home() / ".cache" / "winarm")
    if args.iso is None:
        from winarm_testbed.windows_iso import build_windows_testbed

        args.iso = build_windows_testbed(cache, log=lambda line: None)
    if args.drivers is None:
        from winarm_testbed.virtio_tree import make_fake_virtio_tree

        args.drivers = make_fake_virtio_tree(work / "virtio-win")


def run_rounds(runner: Rounds, count: int) -> list[Round]:
    """Install, then ``count`` crash rounds, each judged by the next boot's check (the last by the caller's)."""
    started = time.monotonic()
    runner.install()
    baseline, report = img_check(runner.disk)
    print(f"installed in {time.monotonic() - started:.0f} s; write load requested; qemu-img check: "
          f"{img_summary(baseline, report)}", flush=True)
    clean = not any(not r.clean for r in fsck_image(runner.disk))  # before the first round
    rounds: list[Round] = []
    for index in range(1, count + 1):
        record, boot = runner.crash_round(index)
        if rounds:
            judge(rounds[-1], boot)
        record.clean_at_kill = clean = clean_at_kill(record, clean)
        rounds.append(record)
        print(f"round {index:>2} ({record.seconds:4.1f} s): {record.plan:<16} killed in {record.phase_at_kill:<14} "
              f"qemu-img check {img_summary(record.img_status, record.img)}; host fsck "
              f"{host_fsck_text(record.host_fsck)[:80]}; this boot's fsck {short(record.boot_fsck, 60)}",
              flush=True)
    return rounds


def final_boots(runner: Rounds, rounds: list[Round]) -> tuple[list[str], list[str]]:
    """Two graceful boots with the write load running: the first judges the last round, the second's check must
    be clean. Returns the second's fsck details and the problems found."""
    first = runner.graceful_boot("final-1", load=True)
    if rounds:
        judge(rounds[-1], first)
    second = runner.graceful_boot("final-2", load=True)
    final = second.fsck()
    problems = [f"the {label} graceful boot exited with {boot.exit_status}"
                for label, boot in (("first", first), ("second", second)) if boot.exit_status != 0]
    if final != ["clean"]:
        problems.append(f"fsck after a graceful stop with the write load running: {' | '.join(final)}")
    for label, boot in (("first", first), ("second", second)):
        if boot.seen("guest-event", "guest-writing") is None:
            problems.append(f"the write load did not start at the {label} graceful boot")
        problems += [f"the guest's write load failed at the {label} graceful boot: {e.get('detail', '')}"
                     for _, e in boot.events
                     if e.get("kind") == "guest-event" and e.get("name") == "guest-writing-failed"]
    last, report = img_check(runner.disk)
    if img_summary(last, report) != "clean":
        problems.append(f"qemu-img check after the graceful boots: {img_summary(last, report)}")
    left = leftovers(runner.paths())
    if left:
        problems.append(f"left running after the graceful boots: {', '.join(left)}")
    return final, problems


def report(rounds: list[Round], final: list[str], final_problems: list[str], seed: int) -> int:
    """The table and the summary, printed; 0 when no round and no final boot found a problem, else 1."""
    print()
    print_table(rounds)
    for problem in final_problems:
        print(f"PROBLEM: {problem}")
    print()
    print("\n".join(summary(rounds, final, final_problems, seed)))
    return 0 if not any(r.problems for r in rounds) and not final_problems else 1


def main() -> int:
    args = parse_args()
    become_subreaper()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="winarm-crash-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    inputs(args, work)
    runner = Rounds(args, work, args.iso, args.drivers)
    rounds: list[Round] = []
    final: list[str] = []
    final_problems: list[str] = []
    status = 1
    try:
        print(f"seed {args.seed}; work directory {work}", flush=True)
        rounds = run_rounds(runner, args.rounds)
        final, final_problems = final_boots(runner, rounds)
        if args.smoke:
            final_problems += [f"round {r.index} took {r.seconds!r} s" for r in rounds if not r.seconds > 0]
        status = report(rounds, final, final_problems, args.seed)
    finally:
        if args.json:
            args.json.write_text(json.dumps({
                "seed": args.seed, "rounds": [asdict(r) for r in rounds], "final_fsck": final,
                "final_problems": final_problems, "status": status}, indent=1))
        shutil.rmtree(runner.run_base, ignore_errors=True)
        if not args.keep and args.workdir is None and status == 0:
            shutil.rmtree(work, ignore_errors=True)
        elif args.workdir is None:
            print(f"kept {work} (winarm's output of each boot in logs/, the VM in storage/)", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
