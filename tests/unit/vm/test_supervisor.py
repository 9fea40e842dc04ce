"""The supervisor's paths, driven through a fake QMP machine (QEMU cannot run in the unit tier; see
:mod:`tests.unit.vm.fakes`): every wait is on an event the supervisor records, never a sleep."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tests.unit.vm.fakes import FAKE_PID, Rig
from winarm.guest import CD_PROMPT, KEY_FOR_CD_PROMPT, MARKER_PREFIX
from winarm.procs import spawn
from winarm.services.swtpm import Swtpm
from winarm.timeline.events import EventKind
from winarm.vm.control import ask, status_of
from winarm.vm.install_watch import ANSWER_DEVICE
from winarm.vm.state import VmState

DISK_BOOT = 'BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x4,0x0)\r\n'
CD_BOOT = 'BdsDxe: starting Boot0002 "UEFI QEMU QEMU USB HARDDRIVE" from PciRoot(0x0)/Pci(0x2,0x0)/USB(0x0,0x0)\r\n'


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 20))  # the bound only catches a hung supervisor


def test_a_clean_stop_walks_starting_running_stopping_stopped(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        states: list[VmState] = [rig.supervisor.lifecycle.state]
        rig.machine.obey_power_button()
        shut_down = rig.machine.handlers["system_powerdown"]

        def power_button() -> None:
            states.append(rig.supervisor.lifecycle.state)
            shut_down()

        rig.machine.handlers["system_powerdown"] = power_button
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        states.append(rig.supervisor.lifecycle.state)
        assert rig.supervisor.status().state == "running" and rig.supervisor.status().healthy
        rig.machine.console(DISK_BOOT)  # an OS loader started: the stop gives the guest the whole timeout
        await rig.log.seen(EventKind.BOOT_DEVICE)
        rig.supervisor.request_stop("the test")
        assert await task == 0
        states.append(rig.supervisor.lifecycle.state)
        assert states == [VmState.STARTING, VmState.RUNNING, VmState.STOPPING, VmState.STOPPED]
        exit_event = rig.log.events[-1]
        assert exit_event["kind"] == "exit" and exit_event["stop"] == "guest" and exit_event["clean"] is True
        sampled = {"query-blockstats"}  # the traffic watch's sampling, once a second from the start
        assert [c for c, _ in rig.machine.commands if c not in sampled] == ["cont", "query-vnc", "system_powerdown"]
        assert "stopping (the test): power button, up to 30 s for the guest" in rig.out.getvalue()
        assert rig.machine.closed and rig.torn_down == ["launch"], "the machine and the launch closed"
        assert not rig.paths.control_socket.exists() or ask(rig.paths.control_socket, "status") is None

    run(scenario())


def test_qemu_dying_without_a_shutdown_is_a_crash_with_status_1(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console("WINARM-PHASE kernel\r\n")
        await rig.log.seen(EventKind.MARKER)
        rig.machine.exit(-signal.SIGSEGV)
        assert await task == 1
        crash = await rig.log.seen(EventKind.CRASH)
        assert crash["phase"] == "kernel" and crash["code"] == -signal.SIGSEGV
        assert rig.log.kinds()[-1] == "exit" and rig.log.events[-1]["clean"] is False
        assert "system_powerdown" not in [c for c, _ in rig.machine.commands], "a dead QEMU is not stopped"
        assert any("QEMU died (killed by SIGSEGV) during kernel" in line for line in rig.said())
        assert rig.supervisor.lifecycle.state == VmState.STOPPED

    run(scenario())


def test_a_second_signal_kills_qemu_without_waiting_for_the_guest(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, timeout=600.0)  # the guest ignores the power button
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        os.kill(os.getpid(), signal.SIGTERM)
        requested = await rig.log.seen(EventKind.STOP_REQUESTED)
        assert requested["reason"] == "SIGTERM"
        await rig.log.seen(EventKind.POWERDOWN_REQUESTED)
        assert not task.done() and not rig.machine.exited, "the first signal waits for the guest"
        os.kill(os.getpid(), signal.SIGTERM)
        assert await task == 1, "a forced stop is not a clean one"
        assert rig.machine.returncode == -9, "the second signal killed QEMU"
        assert "quit" not in [c for c, _ in rig.machine.commands], "it did not wait out the 600 s for quit"
        said = rig.said()
        assert "[t] SIGTERM: stopping the VM gracefully (again to force)" in said
        assert "[t] second signal: stopping QEMU now" in said
        assert any("QEMU was killed at the second signal" in line for line in said)
        assert not any("QEMU died" in line for line in said), "a kill asked for is no crash"
        assert rig.log.kinds()[-1] == "exit"
        exit_event = rig.log.events[-1]
        assert exit_event["stop"] == "forced" and exit_event["clean"] is False

    run(scenario())
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "the handlers are removed after the run"


def test_a_full_storage_pauses_the_vm_and_cont_is_sent_when_room_returns(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        await rig.machine.emit("BLOCK_IO_ERROR", {"device": "disk0", "operation": "write", "action": "stop",
                                                  "nospace": True, "reason": "No space left on device"})
        full = await rig.log.seen(EventKind.STORAGE_FULL)
        assert full["error"] == "write on disk0: No space left on device"
        status = rig.supervisor.status()
        assert (status.state, status.paused, status.healthy) == ("paused", "storage full", False)
        assert rig.machine.sent("cont") == [None], "no cont while there is no room"
        await rig.machine.emit("BLOCK_IO_ERROR", {"device": "disk0", "action": "stop", "nospace": True})
        assert rig.log.kinds().count("storage-full") == 1, "the pause is said once"
        assert rig.room is not None
        rig.room.set_result(300 << 20)
        resumed = await rig.log.seen(EventKind.STORAGE_RESUMED)
        assert resumed["free"] == 300 << 20 and rig.machine.sent("cont") == [None, None]
        assert rig.room_asked == [tmp_path], "the room asked for is the storage's"
        status = rig.supervisor.status()
        assert (status.state, status.paused) == ("running", None)
        assert "[t] the storage has room again (300 MiB free): the VM goes on" in rig.said()
        rig.supervisor.request_stop("done")
        assert await task == 0

    run(scenario())


def test_a_lost_tpm_stops_the_vm_gracefully_with_status_1(tmp_path: Path, run_base: Path) -> None:
    """swtpm is stood in for by a real process (``sleep``): only its end matters here."""

    async def scenario() -> None:
        swtpm = Swtpm(tmp_path / "tpm", run_base / "tpm.sock", tmp_path / "swtpm.log")
        swtpm.proc = spawn(["sleep", "60"])
        rig = Rig(tmp_path, run_base, swtpm=swtpm, tpm=True)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        assert rig.supervisor.status().tpm and rig.supervisor.status().healthy
        swtpm.proc.kill()
        assert await task == 1
        kinds = rig.log.kinds()
        assert kinds.index("swtpm-lost") < kinds.index("powerdown-requested") < kinds.index("exit")
        assert "crash" not in kinds and rig.log.events[-1]["clean"] is True
        assert any("stopping (TPM lost): power button" in line for line in rig.said())

    run(scenario())


def test_down_through_the_control_socket(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        status = await asyncio.to_thread(status_of, rig.paths, "t")
        assert (status.name, status.state, status.qemu_pid, status.daemon_pid) == ("t", "running", FAKE_PID,
                                                                                    os.getpid())
        assert oct(rig.paths.control_socket.stat().st_mode & 0o777) == "0o600"
        reply = await asyncio.to_thread(ask, rig.paths.control_socket, "down")
        assert reply == {"ok": True, "daemon_pid": os.getpid(), "timeout": 5.0,
                         "because": "no OS running (firmware)"}, "in the firmware: 5 s, not the 30 s timeout"
        assert await task == 0
        assert rig.log.events[[e["kind"] for e in rig.log.events].index("stop-requested")]["reason"] == "winarm down"
        unknown = ask(rig.paths.control_socket, "status")
        assert unknown is None, "the socket is closed with the run"

    run(scenario())


def test_the_cd_prompt_key_is_pressed_only_before_the_disk_has_booted(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(CD_BOOT + CD_PROMPT)  # the prompt comes without a newline
        await rig.log.seen(EventKind.KEY_PRESSED)
        assert rig.machine.sent("send-key") == [{"keys": [{"type": "qcode", "data": KEY_FOR_CD_PROMPT}]}]
        rig.machine.console("\r\nWINARM-EVENT barrier\r\n")
        await rig.log.seen(EventKind.GUEST_EVENT)  # the console so far is read
        assert len(rig.machine.sent("send-key")) == 1, "the prompt's line ending is no new prompt"
        await rig.machine.emit("RESET", {"guest": True, "reason": "guest-reset"})
        after_reset = len(rig.log.events)
        rig.machine.console(DISK_BOOT)
        await rig.log.seen(EventKind.BOOT_DEVICE, after=after_reset)
        await rig.machine.emit("RESET", {"guest": True, "reason": "guest-reset"})
        rig.machine.console(CD_PROMPT + "\r\n")
        await rig.log.seen(EventKind.CD_PROMPT_IGNORED)
        assert len(rig.machine.sent("send-key")) == 1, "once the disk has booted, the prompt is left alone"
        facts = json.loads(rig.paths.facts.read_text())
        assert facts["disk_booted"] is True and facts["disk_boots"] == 1
        rig.supervisor.request_stop("done")
        assert await task == 0

    run(scenario())


def test_the_answer_medium_is_detached_and_deleted_at_the_install_done_marker(tmp_path: Path,
                                                                              run_base: Path) -> None:
    async def scenario() -> None:
        medium = tmp_path / "answer.iso"
        medium.write_bytes(b"password inside")
        rig = Rig(tmp_path, run_base, answer_medium=medium, stop_at="ready")
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(f"{MARKER_PREFIX} windowsPE\r\n")
        await rig.log.seen(EventKind.MARKER)
        assert medium.exists() and rig.machine.sent("device_del") == []
        rig.machine.console(f"{MARKER_PREFIX} ready\r\n")
        removed = await rig.log.seen(EventKind.ANSWER_MEDIUM_REMOVED)
        assert removed["detached"] is True and not medium.exists()
        assert rig.machine.sent("device_del") == [{"id": ANSWER_DEVICE}]
        assert json.loads(rig.paths.facts.read_text())["install_complete"] is True
        assert await task == 0, "--stop-at ready stopped the VM"
        assert "[t] installation complete: answer medium detached and deleted" in rig.said()
        kinds = rig.log.kinds()
        assert kinds.index("answer-medium-removed") < kinds.index("stop-requested")

    run(scenario())


def test_status_of_a_vm_with_no_daemon_is_stopped(tmp_path: Path, run_base: Path) -> None:
    rig_paths = Rig(tmp_path, run_base).paths
    report = status_of(rig_paths, "t")
    assert report.as_json() == {"name": "t", "state": "stopped", "healthy": False, "daemon_pid": None,
                                "qemu_pid": None, "run_dir": str(rig_paths.run_dir),
                                "state_dir": str(rig_paths.state_dir)}
