"""How the test guest plays the logon scripts (items 14 and 16 of issue 13): it finds the share script and the
extend script through the answer file's commands and reads them from C: as Windows would, and it extends C:'s
partition on the GPT as diskpart's `extend` would. The awk programs run here with the host's awk (mawk);
the guest runs them with busybox awk (tests/system/test_install_share.py, tests/system/test_disk_grow.py)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.unit.testbed.test_guest_inputs import PACKAGE, awk
from winarm.answer.logon_scripts import render_extend_script, render_share_script
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings
from winarm_testbed.disk_image import gpt_problems, partitions

MiB = 1024 * 1024
SECTOR = 512
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"


def test_the_answer_file_runs_the_scripts_and_registers_the_task(tmp_path: Path) -> None:
    settings = AnswerSettings(shares=("Data",), share_user="alice", share_password="pw")
    facts = awk("cmdline.awk", "answer-facts.awk", data=render(settings), tmp_path=tmp_path).splitlines()
    first = [f.split(" ", 2)[2] for f in facts if f.startswith("fl ")]
    assert r"batch 1 |%WINDIR%\Setup\Scripts\winarm-map-shares.cmd|" in first
    assert r"batch 1 |%WINDIR%\Setup\Scripts\winarm-extend-c.cmd|" in first
    assert r"task WinarmExtendC |%WINDIR%\Setup\Scripts\winarm-extend-c.cmd|" in first
    assert not any(f.startswith("share ") for f in first), "no net use in the answer file any more"
    copies = [f.split(" ", 3)[3] for f in facts if f.startswith("sp ") and " copy " in f]
    for name in ("map-shares.cmd", "extend-c.cmd", "extend-c.txt"):
        assert any(c.startswith(f"|winarm/{name}|") for c in copies), name
    run_key = next(f for f in first if f.startswith("runkey WinarmMapShares "))
    stored = run_key.split(" |", 1)[1].rstrip("|")
    keys = awk("cmdline.awk", "run-key-facts.awk", data=f"WinarmMapShares reg_expand_sz {stored}\n",
               tmp_path=tmp_path).splitlines()
    assert keys == [r"rk WinarmMapShares reg_expand_sz batch 0 |%WINDIR%\Setup\Scripts\winarm-map-shares.cmd|"]


def test_batch_facts_read_the_share_and_extend_scripts(tmp_path: Path) -> None:
    share = awk("cmdline.awk", "batch-facts.awk", data=render_share_script(("Data", "Music")), tmp_path=tmp_path)
    assert share.splitlines() == ["attempts 20", "login |winarm/share-login.txt|", "cmdkey host.lan",
                                  "map Z: host.lan Data", "map Y: host.lan Music"]
    extend = awk("cmdline.awk", "batch-facts.awk", data=render_extend_script(), tmp_path=tmp_path)
    assert extend.splitlines() == ["diskpart |%~dp0winarm-extend-c.txt|"]


def test_task_and_batch_facts_keep_only_what_the_testbed_plays(tmp_path: Path) -> None:
    lines = [
        r'schtasks /create /tn T /tr "C:\x.cmd" /sc onlogon /ru SYSTEM /f',  # not at start: not played
        r'schtasks.exe /create /tn T /tr "C:\x.cmd" /sc onstart /ru Bob /f',  # not SYSTEM
        r'SCHTASKS /Create /TN T2 /TR C:\y.cmd /SC ONSTART /RU system /RL HIGHEST /F',
        r'cmd /c call "C:\a.bat"', r'cmd.exe /c start "" /min C:\b.cmd', r"cmd /c C:\c.exe",
    ]
    program = tmp_path / "facts.awk"
    program.write_text("{ f = task_fact($0); if (f == \"\") f = batch_fact($0); print (f == \"\" ? \"-\" : f) }\n")
    argv = ["awk", "-f", str(PACKAGE / "cmdline.awk"), "-f", str(program)]
    out = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["-", "-", r"task T2 |C:\y.cmd|", r"batch 1 |C:\a.bat|", r"batch 0 |C:\b.cmd|", "-"]


def make_disk(path: Path, script: str, size: int) -> None:
    assert shutil.which("sfdisk"), "sfdisk (util-linux) is on every Debian system"
    path.write_bytes(b"")
    subprocess.run(["truncate", "-s", str(size // 4), str(path)], check=True)
    subprocess.run(["sfdisk", "-q", str(path)], input="label: gpt\nunit: sectors\n" + script, text=True,
                   check=True, capture_output=True)
    subprocess.run(["truncate", "-s", str(size), str(path)], check=True)


def plan_for(path: Path, tmp_path: Path) -> list[str]:
    """What gpt-extend.awk plans for the disk file PATH (as extend_c in init.sh feeds it)."""
    head = path.read_bytes()[: 34 * SECTOR]
    dump = subprocess.run(["hexdump", "-v", "-C"], input=head, capture_output=True, check=True).stdout.decode()
    last = path.stat().st_size // SECTOR - 1
    argv = ["awk", "-f", str(PACKAGE / "gpt-extend.awk"), "-v", f"last={last}", "-v", "part=2"]
    return subprocess.run(argv, input=dump, capture_output=True, text=True, check=True).stdout.splitlines()


def octal(text: str) -> bytes:
    return bytes(int(code, 8) for code in re.findall(r"\\([0-7]{3})", text))


def apply_plan(path: Path, plan: list[str]) -> None:
    """What extend_c does with the plan: patches, the backup entries and header at the end, the primary last."""
    esec = int(plan[0].split()[4])
    with path.open("r+b") as disk:
        head = bytearray(disk.read(34 * SECTOR))
        for line in plan[1:]:
            kind, offset, text = line.split(" ", 2)
            if kind == "p":
                head[int(offset): int(offset) + len(octal(text))] = octal(text)
        backup = bytearray(head[SECTOR: 2 * SECTOR])
        for line in plan[1:]:
            kind, offset, text = line.split(" ", 2)
            if kind == "b":
                backup[int(offset): int(offset) + len(octal(text))] = octal(text)
        last = path.stat().st_size // SECTOR - 1
        disk.seek((last - esec) * SECTOR)
        disk.write(head[2 * SECTOR: (2 + esec) * SECTOR])
        disk.write(backup)
        disk.seek(0)
        disk.write(head)


@pytest.mark.parametrize("size", [64 * MiB, 1024 * MiB])
def test_gpt_extend_grows_c_to_the_end_and_moves_the_backup(tmp_path: Path, size: int) -> None:
    disk = tmp_path / "disk.raw"
    make_disk(disk, f"start=2048, size=4096, type={ESP}\nstart=6144, size=8192, type={DATA}\n", size)
    assert gpt_problems(disk, "raw"), "the backup GPT is not at the end of the grown disk"
    plan = plan_for(disk, tmp_path)
    last = size // SECTOR - 1
    assert plan[0] == f"extend 6144 14335 {last - 33} 32"
    apply_plan(disk, plan)
    assert gpt_problems(disk, "raw") == []
    check = subprocess.run(["sfdisk", "--verify", str(disk)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "No errors detected" in check.stdout, check.stdout + check.stderr
    grown = partitions(disk, "raw")
    assert [(p.number, p.start, p.size) for p in grown] == [
        (1, 2048 * SECTOR, 4096 * SECTOR), (2, 6144 * SECTOR, (last - 33 - 6144 + 1) * SECTOR)]
    with disk.open("rb") as handle:
        mbr_size = struct.unpack_from("<I", handle.read(SECTOR), 458)[0]
    assert mbr_size == min(last, 0xFFFFFFFF), "the protective MBR covers the disk"
    assert plan_for(disk, tmp_path) == ["none no unallocated space after C:"]


def test_gpt_extend_leaves_a_c_that_is_not_last_alone(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    make_disk(disk, f"start=2048, size=4096, type={ESP}\nstart=6144, size=8192, type={DATA}\n"
                    f"start=14336, size=2048, type={DATA}\n", 64 * MiB)
    assert plan_for(disk, tmp_path) == ["none C: (partition 2) is not the last partition"]
    (tmp_path / "zero.raw").write_bytes(bytes(40 * SECTOR))
    assert plan_for(tmp_path / "zero.raw", tmp_path) == ["none not a GPT this testbed handles"]
