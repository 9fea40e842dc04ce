"""What the crash rounds record and how they judge it: a round's record, ``qemu-img check`` of the image, the
host's and the guest's fsck findings, and the table and summary printed at the end."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _crash_boot import Boot

from winarm_testbed.disk_image import classify

ALLOWED = {"dirty-bit", "lost-clusters", "fat-copies-differ", "size-vs-chain", "dir-unwritten", "path"}
"""fsck.fat findings a crash of a mounted FAT file system explains (see classify)."""


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
