"""Load on the launcher: several VMs at once, and many starts and stops of one, with real QEMU under TCG.

What this proves:

- Four firmware-only VMs started at the same time (each with its own shared folder, one with a TPM) all come
  up running and healthy, and ``winarm status --json`` (no ``--name``) lists all four. Nothing is shared
  between them that must not be: VNC port, smbd port, QMP and serial sockets, run directory, Samba state
  directories. Every TCP socket any of their processes listens on (winarm, QEMU, smbd and its children,
  swtpm) is on loopback, each VM listens on exactly its VNC and smbd ports, and no port belongs to two VMs.
  ``winarm down`` stops each (run concurrently), and afterwards none of their processes and none of their run
  directories is left.
- Up/down cycles of one VM leave nothing behind that accumulates: this process's open file descriptors, live
  descendant processes, entries under the run-directory base and in the VM's storage directory (the event
  log history stays at its cap) stay the same from cycle to cycle, and the daemon's resident memory while
  running does not creep up.

Synchronisation is only on what winarm prints (``running (tcg)``, ``share: healthy``), never on sleeps; no
wall-clock time is asserted (the machine may be shared and slow).
"""

from __future__ import annotations

import ipaddress
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.vmtools import FIRMWARE_ONLY, WINARM, Up, family, live_names, winarm
from winarm.vm.launch import HISTORY_KEEP

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the shared folders belong to another uid (4321)"),
]
FAST = [*FIRMWARE_ONLY, "--timeout", "1"]
"""The firmware ignores the power button: ``down`` then quits QEMU after 1 s."""
START = 90.0
"""Seconds a VM may take to print a line during start (generous: four TCG guests share two cores)."""


def shared_folder(root: Path, name: str) -> Path:
    """A folder of its own for one VM, owned by 4321:4322 (a uid with no account here), mode 0775."""
    folder = root / name
    folder.mkdir()
    os.chown(folder, 4321, 4322)
    os.chmod(folder, 0o775)
    return folder




def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie counts as gone: it holds no sockets, files or memory)."""
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(process)
        except psutil.NoSuchProcess:
            pass
    return left


def tcp_listeners(processes: list[psutil.Process]) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket the processes hold (an inherited socket counts once)."""
    found = set()
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found


def unix_paths(process: psutil.Process) -> set[str]:
    """The paths of the unix sockets a process holds (listening or accepted)."""
    return {str(c.laddr) for c in process.net_connections(kind="unix") if c.laddr}


def samba_dirs(run_dir: Path) -> dict[str, str]:
    """The ``... dir(ectory) = PATH`` settings of a VM's smb.conf: where its smbd keeps state."""
    dirs = {}
    for line in (run_dir / "samba" / "smb.conf").read_text().splitlines():
        key, equals, value = line.partition(" = ")
        if equals and key.endswith((" dir", " directory")):
            dirs[key] = value
    return dirs




def pairwise_distinct(what: str, values: list[Any]) -> None:
    assert len(set(values)) == len(values), f"two VMs share a {what}: {values}"


def start_all(tmp_path: Path, run_base: Path, folders: dict[str, Path], vms: dict[str, Up]) -> None:
    """Start a VM for each folder at once (into ``vms``: the caller closes them), the last with a TPM, and wait
    until each runs and its share is healthy."""
    for name, folder in folders.items():
        extra = ["--tpm"] if name == "ld" else []
        vms[name] = Up(tmp_path, run_base, *FAST, "--shared", str(folder), "--vnc", "127.0.0.1", *extra, name=name)
    for vm in vms.values():
        vm.wait_line("running (tcg)", START)
    for vm in vms.values():
        vm.wait_line("share: healthy", START)


def check_listing(tmp_path: Path, vms: dict[str, Up], folders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """``winarm status --json`` with no ``--name`` lists every VM, running and healthy; returns the reports."""
    names = list(folders)
    listing = winarm("status", "--storage", str(tmp_path), "--json", env=vms["la"].env)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    reports = json.loads(listing.stdout)
    assert isinstance(reports, list), reports
    assert sorted(r["name"] for r in reports) == names
    by_name = {r["name"]: r for r in reports}
    for name, report in by_name.items():
        assert report["state"] == "running" and report["healthy"] is True, report
        assert report["share"]["healthy"] is True and report["share"]["path"] == str(folders[name])
        assert report["tpm"] is (name == "ld")
        assert report["daemon_pid"] == vms[name].proc.pid
        assert report["vnc"].startswith("127.0.0.1:") and report["share"]["host_address"] == "127.0.0.1"
        alone = vms[name].status()
        assert (alone["run_dir"], alone["qemu_pid"]) == (report["run_dir"], report["qemu_pid"])
    return by_name


def check_distinct(by_name: dict[str, dict[str, Any]], names: list[str],
                   run_base: Path) -> tuple[list[int], list[int], list[Path]]:
    """No two VMs share a port, run dir, state dir or process; returns the VNC ports, smbd ports, run dirs."""
    ports_vnc = [int(by_name[n]["vnc"].rpartition(":")[2]) for n in names]
    ports_smbd = [by_name[n]["share"]["host_port"] for n in names]
    run_dirs = [Path(by_name[n]["run_dir"]) for n in names]
    assert {p.parent for p in run_dirs} == {run_base} and sorted(p.name for p in run_dirs) == names
    assert sorted(p.name for p in run_base.iterdir()) == names, "one run directory per VM, nothing else"
    for what, values in (("VNC port", ports_vnc), ("smbd port", ports_smbd), ("run dir", run_dirs),
                         ("state dir", [by_name[n]["state_dir"] for n in names]),
                         ("QEMU", [by_name[n]["qemu_pid"] for n in names]),
                         ("smbd", [by_name[n]["share"]["smbd_pid"] for n in names])):
        pairwise_distinct(what, values)
    pairwise_distinct("port", ports_vnc + ports_smbd)
    return ports_vnc, ports_smbd, run_dirs


def check_sockets_and_samba(by_name: dict[str, dict[str, Any]], names: list[str], run_dirs: list[Path]) -> None:
    """The QMP and serial sockets: in each VM's own run dir, held by that VM's QEMU and no other; each smbd's
    state: every directory below its own run dir's samba/, none shared."""
    sockets = {}
    for name, run_dir in zip(names, run_dirs, strict=True):
        held = unix_paths(psutil.Process(by_name[name]["qemu_pid"]))
        mine = {str(run_dir / "qmp.sock"), str(run_dir / "serial.sock")}
        assert mine <= held, f"{name}'s QEMU holds {held}"
        assert all(Path(path).parent == run_dir for path in held), f"{name}'s QEMU holds {held}"
        sockets[name] = held
    pairwise_distinct("socket path", [path for held in sockets.values() for path in held])
    state = {}
    for name, run_dir in zip(names, run_dirs, strict=True):
        dirs = samba_dirs(run_dir)
        assert {"private dir", "ncalrpc dir", "state directory", "cache directory", "lock directory",
                "pid directory"} <= dirs.keys(), dirs
        assert all(Path(d).parent == run_dir / "samba" for d in dirs.values()), dirs
        smbd = psutil.Process(by_name[name]["share"]["smbd_pid"])
        assert str(run_dir / "samba" / "smb.conf") in smbd.cmdline()
        state[name] = dirs
    pairwise_distinct("Samba state dir", [d for dirs in state.values() for d in dirs.values()])


def check_processes(vms: dict[str, Up], names: list[str], ports_vnc: list[int],
                    ports_smbd: list[int]) -> dict[str, list[psutil.Process]]:
    """The processes of each VM, taken now (before the stop) to check afterwards that none is left: each VM
    has its QEMU and smbd (and swtpm when asked); every TCP listener is on loopback; each VM listens on its
    VNC and smbd ports, no port in two VMs."""
    processes = {name: family(vms[name].proc.pid) for name in names}
    for name, procs in processes.items():
        kinds = live_names(procs)
        assert {"qemu-system-aarch64", "smbd"} <= kinds, kinds
        assert ("swtpm" in kinds) is (name == "ld"), kinds
    owners: dict[int, list[str]] = {}
    for name, procs in processes.items():
        listeners = tcp_listeners(procs)
        for address, port in listeners:
            assert ipaddress.ip_address(address).is_loopback, f"{name} listens on {address}:{port}"
            owners.setdefault(port, []).append(name)
        vnc, smbd_port = ports_vnc[names.index(name)], ports_smbd[names.index(name)]
        assert {port for _, port in listeners} == {vnc, smbd_port}, f"{name} listens on {listeners}"
    assert all(len(vms_on_port) == 1 for vms_on_port in owners.values()), owners
    return processes


def down_all(tmp_path: Path, vms: dict[str, Up]) -> None:
    """Stop every VM at once, each with its own winarm down, and wait until each daemon ends with 0."""
    downs = {
        name: subprocess.Popen([*WINARM, "down", "--name", name, "--storage", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=vms[name].env)
        for name in vms
    }
    for name, down in downs.items():
        out, err = down.communicate(timeout=60)
        assert down.returncode == 0, f"{name}: {out}{err}"
        assert f"VM {name!r} stopped" in out
    for vm in vms.values():
        assert vm.wait(60) == 0, "\n".join(vm.lines)


def test_four_vms_at_once_share_nothing_and_stop_clean(tmp_path: Path, run_base: Path, share_root: Path) -> None:
    names = ["la", "lb", "lc", "ld"]
    folders = {name: shared_folder(share_root, name) for name in names}
    vms: dict[str, Up] = {}
    try:
        start_all(tmp_path, run_base, folders, vms)
        by_name = check_listing(tmp_path, vms, folders)
        ports_vnc, ports_smbd, run_dirs = check_distinct(by_name, names, run_base)
        check_sockets_and_samba(by_name, names, run_dirs)
        processes = check_processes(vms, names, ports_vnc, ports_smbd)
        down_all(tmp_path, vms)
    finally:
        for vm in vms.values():
            vm.close()
    for name, procs in processes.items():
        psutil.wait_procs(alive(procs), timeout=10)
        assert not alive(procs), f"{name} left {[(p.pid, p.name()) for p in alive(procs)]}"
    assert list(run_base.iterdir()) == [], "every run directory is removed"
    for name in names:
        logged = [e["kind"] for e in vms[name].events()]
        assert logged[-1] == "exit" and "killed" not in logged, logged


CYCLES = 8
STEADY_FROM = 1
"""Cycle index from which the counts must not change (the first may still create files)."""


def storage_entries(state_dir: Path) -> int:
    """Every file and directory below the VM's state directory (the event log history included)."""
    return sum(1 for _ in state_dir.rglob("*"))


def test_up_down_cycles_leave_nothing_that_grows(tmp_path: Path, run_base: Path, share_root: Path) -> None:
    folder = shared_folder(share_root, "cycles")
    state_dir = tmp_path / "cy"
    history = state_dir / "history"
    history.mkdir(parents=True, mode=0o700)
    # the history is full from the start (logs older than any real one): every rotation must drop the oldest
    seeded = [history / f"events-19700101T0000{i:02d}.000000Z.jsonl" for i in range(HISTORY_KEEP)]
    for path in seeded:
        path.write_text("")
    me = psutil.Process()
    rows: list[dict[str, float]] = []
    for _ in range(CYCLES):
        vm = Up(tmp_path, run_base, *FAST, "--shared", str(folder), name="cy")
        try:
            vm.wait_line("running (tcg)", START)
            vm.wait_line("share: healthy", START)  # the health check has run: its imports are in the RSS
            rss = psutil.Process(vm.proc.pid).memory_info().rss
            down = winarm("down", "--name", "cy", "--storage", str(tmp_path), env=vm.env)
            assert down.returncode == 0, down.stdout + down.stderr
            assert vm.wait(60) == 0, "\n".join(vm.lines)
        finally:
            vm.close()
        rows.append({
            "fds": me.num_fds(),
            "descendants": len(alive(me.children(recursive=True))),
            "run_entries": len(list(run_base.iterdir())),
            "storage_entries": storage_entries(state_dir),
            "history": len(list(history.iterdir())),
            "seeded_left": sum(path.exists() for path in seeded),
            "rss": rss,
        })
    table = "\n".join(str(row) for row in rows)
    for row in rows:
        assert row["descendants"] == 0 and row["run_entries"] == 0, table
        assert row["history"] == HISTORY_KEEP, table
    assert [row["seeded_left"] for row in rows] == [HISTORY_KEEP - cycle for cycle in range(CYCLES)], \
        f"each start moves one log into the history and drops the oldest\n{table}"
    for key in ("fds", "storage_entries"):
        assert len({row[key] for row in rows[STEADY_FROM:]}) == 1, f"{key} changes across cycles\n{table}"
    baseline = statistics.median(row["rss"] for row in rows[:3])
    assert rows[-1]["rss"] <= baseline * 1.10, f"the daemon's RSS grows: {rows[-1]['rss']} > 1.1 x {baseline}\n{table}"
