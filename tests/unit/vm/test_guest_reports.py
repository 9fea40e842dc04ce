"""The guest's reports turned into events, phases and lines (no QEMU: the supervisor's fake machine drives it,
and the reports are handed over as the guest channel would after its checks)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tests.unit.vm.fakes import Rig
from winarm.timeline.events import EventKind
from winarm.timeline.phases import derive_phases
from winarm.vm.guest_reports import GuestReports, report_details, report_line
from winarm.vm.report_body import Report

DISK_BOOT = 'BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x4,0x0)\r\n'


def Sent(name: str, items: tuple[tuple[str, str], ...] = ()) -> Report:  # noqa: N802 - reads like the report
    """A report as the channel hands it over, after its checks."""
    return Report(name, items)


DRIVERS = Sent("drivers", (("pass", "specialize"), ("driver", "02-viostor 0"), ("driver", "03-NetKVM 3010"),
                           ("driver", "05-Balloon 1")))


def test_driver_results_name_each_failure() -> None:
    details = report_details(DRIVERS)
    assert details["pass"] == "specialize" and details["failed"] == 1
    assert [(d["folder"], d["code"], d["ok"]) for d in details["drivers"]] == [
        ("02-viostor", 0, True), ("03-NetKVM", 3010, True), ("05-Balloon", 1, False)]
    assert report_line("drivers", details) == (
        "guest: driver step ended in specialize: 2 of 3 installed; FAILED: 05-Balloon (pnputil exit 1)")


def test_hooks_and_plain_reports() -> None:
    hooks = report_details(Sent("hook", (("hook", "install.bat 0"), ("hook", "setup.ps1 2"))))
    assert report_line("hook", hooks) == "guest: hooks ran: install.bat ok, setup.ps1 FAILED (exit 2)"
    assert report_details(Sent("desktop-ready")) == {}
    assert report_details(Sent("shutdown", (("by", "user"),))) == {"body": [["by", "user"]]}


def test_reports_confirm_the_boot_and_start_their_phases(tmp_path: Path, run_base: Path) -> None:
    """The drivers report confirms the inferred specialize boot; first-logon and desktop-ready start phases of
    their own (source guest); desktop-ready also ends the install (the answer medium detached); the stall watch
    hears each report."""
    async def scenario() -> None:
        medium = tmp_path / "answer.iso"
        medium.write_bytes(b"answer")
        rig = Rig(tmp_path, run_base, answer_medium=medium, stop_at="desktop-ready")
        rig.machine.obey_power_button()
        rig.supervisor.facts.values.update(disk_booted=True, disk_boots=0)
        tasks: list[asyncio.Task[None]] = []

        def spawn(work: Coroutine[Any, Any, None]) -> object:
            tasks.append(asyncio.get_running_loop().create_task(work))
            return tasks[-1]

        reports = GuestReports(rig.supervisor.reporter, rig.supervisor.install, spawn)
        heard: list[str] = []
        reports.listeners.append(heard.append)
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(DISK_BOOT)
        await rig.log.seen(EventKind.MARKER)
        reports.on_report(DRIVERS)
        await rig.machine.emit("RESET", {"guest": True})
        rig.machine.console(DISK_BOOT)
        await rig.log.seen(EventKind.MARKER, after=len(rig.log.events))
        reports.on_report(Sent("first-logon"))
        reports.on_report(Sent("desktop-ready"))
        await asyncio.gather(*tasks)
        assert await task == 0, "--stop-at desktop-ready stopped the VM"
        phases = [(p.name, p.source) for p in derive_phases(rig.log.events) if p.source]
        assert phases == [("specialize", "guest"), ("oobeSystem", "guest"), ("first-logon", "guest"),
                          ("desktop-ready", "guest")]
        assert "answer-medium-removed" in rig.log.kinds() and not medium.exists()
        assert heard == ["drivers", "first-logon", "desktop-ready"]
        assert reports.snapshot() == {"accepted": 3, "refused": 0, "last": "desktop-ready"}

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_refusals_are_recorded_and_counted(tmp_path: Path, run_base: Path) -> None:
    rig = Rig(tmp_path, run_base)
    reports = GuestReports(rig.supervisor.reporter, rig.supervisor.install, lambda work: work.close())
    reports.on_refused("unknown report name", {"name": "evil"})
    reports.on_refused("refusals suppressed", {"count": 41})
    refused = [e for e in rig.log.events if e["kind"] == "report-refused"]
    assert [e["reason"] for e in refused] == ["unknown report name", "refusals suppressed"]
    assert reports.snapshot()["refused"] == 42
    assert "[t] guest channel: refused: unknown report name" in rig.said()


def test_desktop_ready_missing_after_the_last_pass() -> None:
    from winarm.vm.guest_reports import desktop_ready_missing, missing_line

    install = [{"kind": "marker", "name": "windowsPE"}, {"kind": "marker", "name": "specialize"},
               {"kind": "reset"}, {"kind": "marker", "name": "oobeSystem", "source": "boot-order"}]
    assert desktop_ready_missing(install)
    assert not desktop_ready_missing([*install, {"kind": "marker", "name": "desktop-ready", "source": "guest"}])
    assert not desktop_ready_missing(install[:2]), "before the last pass nothing is missing yet"
    assert not desktop_ready_missing([{"kind": "marker", "name": "ready"}]), "no install, nothing missing"
    assert "--no-guest-channel" in missing_line(False, 0)
    assert "no report reached winarm" in missing_line(True, 0)
    assert "reported 2 times" in missing_line(True, 2)


def test_a_report_over_the_channel_socket_reaches_the_phase_log(tmp_path: Path, run_base: Path) -> None:
    """The supervisor serves the guest channel on the run directory's report socket (what QEMU's guestfwd relay
    connects to): a report sent there is answered 204 and becomes a report event and a phase; the channel is
    gone with the run; with --no-guest-channel nothing listens."""
    async def send(path: Path, request: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer

    async def scenario() -> None:
        rig = Rig(tmp_path, run_base)
        rig.machine.obey_power_button()
        task = rig.start()
        ready = await rig.log.seen(EventKind.CHANNEL_READY)
        assert ready["url"] == "http://10.0.2.5/report/"
        answer = await send(rig.paths.report_socket,
                            b"POST /report/desktop-ready HTTP/1.1\r\nHost: 10.0.2.5\r\nContent-Length: 0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 204") or answer.startswith(b"HTTP/1.0 204"), answer
        marker = await rig.log.seen(EventKind.MARKER)
        assert (marker["name"], marker["source"]) == ("desktop-ready", "guest")
        assert rig.supervisor.status().reports == {"accepted": 1, "refused": 0, "last": "desktop-ready"}
        rig.supervisor.request_stop("the test")
        assert await task == 0
        assert not rig.paths.report_socket.exists() or not _answers(rig.paths.report_socket)

    asyncio.run(asyncio.wait_for(scenario(), 20))


def _answers(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def test_no_channel_no_listener(tmp_path: Path, run_base: Path) -> None:
    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, guest_channel=False)
        rig.machine.obey_power_button()
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        assert not rig.paths.report_socket.exists()
        assert rig.supervisor.status().reports is None
        rig.supervisor.request_stop("the test")
        assert await task == 0
        assert "channel-ready" not in rig.log.kinds()

    asyncio.run(asyncio.wait_for(scenario(), 20))
