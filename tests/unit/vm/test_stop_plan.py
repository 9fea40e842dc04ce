"""The stop's wait judged from where the boot is (:mod:`winarm.vm.stop_plan`), on event streams like a run's, and
through the supervisor over the fake machine (QEMU cannot run in the unit tier; see :mod:`tests.unit.vm.fakes`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.vm.fakes import Rig
from winarm.guest import CD_PROMPT
from winarm.timeline.events import Event, EventKind
from winarm.vm import stop_plan
from winarm.vm.stop_plan import NO_OS, PROMPT_WAIT, SETUP, plan_stop

TIMEOUT = 105.0
CD_BOOT = 'BdsDxe: starting Boot0002 "UEFI QEMU QEMU USB HARDDRIVE" from PciRoot(0x0)/Pci(0x2,0x0)/USB(0x0,0x0)\r\n'
DISK_BOOT = 'BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x4,0x0)\r\n'


def events(*kinds: tuple[str, dict[str, Any]]) -> list[Event]:
    """A run's events, one second apart, from ``running`` on."""
    out: list[Event] = [{"t": 0.5, "kind": "start"}, {"t": 1.0, "kind": "running"}]
    for i, (kind, details) in enumerate(kinds, start=2):
        out.append({"t": float(i), "kind": kind, **details})
    return out


def boot(device: str) -> tuple[str, dict[str, Any]]:
    return ("boot-device", {"device": device})


def marker(name: str, source: str | None = None) -> tuple[str, dict[str, Any]]:
    return ("marker", {"name": name, **({"source": source} if source else {})})


@pytest.mark.parametrize(("stream", "phase", "why"), [
    ([], "firmware", NO_OS),
    ([boot("network")], "boot-network", NO_OS),
    ([boot("firmware-app")], "boot-firmware-app", NO_OS),
    ([boot("disk"), ("reset", {})], "firmware", NO_OS),  # a reboot: the next boot's firmware
    ([boot("cd"), marker("windowsPE", "boot-order")], "windowsPE", SETUP),
    ([boot("disk"), marker("specialize", "boot-order"), ("report", {"name": "drivers"})], "specialize", SETUP),
    ([boot("disk"), marker("oobeSystem", "boot-order")], "oobeSystem", SETUP),
    ([boot("disk"), marker("oobeSystem", "boot-order"), marker("first-logon", "guest")], "first-logon", None),
    ([boot("disk"), marker("desktop-ready", "share")], "desktop-ready", None),
    ([boot("disk")], "boot-disk", None),  # Windows' loader started: it handles the button once it is up
    ([boot("cd")], "boot-cd", None),
    ([boot("disk"), marker("kernel"), marker("ready")], "ready", None),  # the test guest's Linux
])
def test_the_wait_follows_the_phase(stream: list[tuple[str, dict[str, Any]]], phase: str, why: str | None) -> None:
    plan = plan_stop(events(*stream), TIMEOUT)
    assert (plan.phase, plan.why) == (phase, why)
    assert plan.wait == (PROMPT_WAIT if why else TIMEOUT)


def test_oobe_system_counts_as_setup_only_while_the_guest_channel_can_end_it() -> None:
    """Without the channel no first-logon report comes: the boot's desktop would read oobeSystem for good."""
    oobe = events(boot("disk"), marker("oobeSystem", "boot-order"))
    assert plan_stop(oobe, TIMEOUT, reports=False) == stop_plan.StopPlan(TIMEOUT, "oobeSystem")
    assert plan_stop(oobe, TIMEOUT, reports=True).why == SETUP
    specialize = events(boot("disk"), marker("specialize", "boot-order"))
    assert plan_stop(specialize, TIMEOUT, reports=False).why == SETUP, "specialize ends in Setup's own reboot"


def test_a_stop_already_asked_for_does_not_hide_the_phase_it_was_asked_in() -> None:
    stream = events(boot("cd"), marker("windowsPE", "boot-order"), ("stop-requested", {"reason": "SIGTERM"}))
    assert plan_stop(stream, TIMEOUT).why == SETUP
    assert plan_stop([], TIMEOUT).phase == "launch"


def test_a_timeout_shorter_than_the_prompt_wait_is_kept() -> None:
    assert plan_stop(events(), 2.0).wait == 2.0
    assert plan_stop(events(boot("disk")), 2.0).wait == 2.0


def test_the_lines_say_why_and_what_setup_loses() -> None:
    firmware = plan_stop(events(), TIMEOUT)
    assert firmware.stopping_line("winarm down") == (
        "stopping (winarm down): power button, then quit after 5 s: no OS running (firmware)")
    assert firmware.stopped_line() == "stopped: no OS running (firmware), quit after 5 s"
    setup = plan_stop(events(boot("cd"), marker("windowsPE", "boot-order")), TIMEOUT)
    assert setup.stopped_line() == ("stopped: Windows Setup (windowsPE) ignores the power button, quit after 5 s; "
                                    "the install's progress is lost")
    running = plan_stop(events(boot("disk")), TIMEOUT)
    assert running.stopping_line("SIGTERM") == "stopping (SIGTERM): power button, up to 105 s for the guest"
    assert running.stopped_line() == "the guest did not shut down within 105 s: QEMU was told to quit"
    assert running.reason is None
    assert firmware.details() == {"wait": 5.0, "phase": "firmware", "why": NO_OS,
                                  "because": "no OS running (firmware)"}
    assert running.details() == {"wait": 105.0, "phase": "boot-disk"}


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario, 20))  # the bound catches a stop that waits the whole 600 s timeout


def test_a_stop_in_the_firmware_quits_after_the_short_wait(tmp_path: Path, run_base: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The guest ignores the power button (the fake machine never shuts down); the timeout is 600 s."""
    monkeypatch.setattr(stop_plan, "PROMPT_WAIT", 0.05)

    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, timeout=600.0)
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.supervisor.request_stop("winarm down")
        assert await task == 0, "a quit asked for is a clean stop"
        assert "quit" in [c for c, _ in rig.machine.commands]
        pressed = next(e for e in rig.log.events if e["kind"] == "powerdown-requested")
        assert (pressed["wait"], pressed["why"], pressed["phase"]) == (0.05, NO_OS, "firmware")
        assert pressed["because"] == "no OS running (firmware)"
        assert rig.log.events[-1]["kind"] == "exit" and rig.log.events[-1]["why"] == NO_OS
        said = rig.said()
        assert "[t] stopping (winarm down): power button, then quit after 0.05 s: no OS running (firmware)" in said
        assert "[t] stopped: no OS running (firmware), quit after 0.05 s" in said
        assert not any("did not shut down within" in line for line in said)

    run(scenario())


def test_a_stop_during_windows_setup_says_the_install_is_lost(tmp_path: Path, run_base: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """windowsPE is named by the boot order (the CD before the disk ever booted, an answer medium attached)."""
    monkeypatch.setattr(stop_plan, "PROMPT_WAIT", 0.05)

    async def scenario() -> None:
        medium = tmp_path / "answer.iso"
        medium.write_bytes(b"answer")
        rig = Rig(tmp_path, run_base, answer_medium=medium, timeout=600.0)
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(CD_BOOT + CD_PROMPT + "\r\n")
        await rig.log.seen(EventKind.MARKER)
        rig.supervisor.request_stop("SIGTERM")
        assert await task == 0
        pressed = next(e for e in rig.log.events if e["kind"] == "powerdown-requested")
        assert (pressed["why"], pressed["phase"]) == (SETUP, "windowsPE")
        assert ("[t] stopped: Windows Setup (windowsPE) ignores the power button, quit after 0.05 s; the install's "
                "progress is lost") in rig.said()

    run(scenario())


def test_a_stop_once_an_os_loader_started_gives_the_whole_timeout(tmp_path: Path, run_base: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The guest shuts down on its own once the power button was pressed with the whole timeout."""
    monkeypatch.setattr(stop_plan, "PROMPT_WAIT", 0.05)

    async def scenario() -> None:
        rig = Rig(tmp_path, run_base, timeout=600.0)
        waits: list[float] = []
        stop = rig.machine.stop

        async def stop_with(timeout: float, on_step: Callable[[EventKind], None] = lambda step: None) -> str:
            waits.append(timeout)
            return await stop(timeout, on_step)

        rig.machine.stop = stop_with  # type: ignore[method-assign]
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(DISK_BOOT)
        await rig.log.seen(EventKind.BOOT_DEVICE)
        rig.supervisor.request_stop("winarm down")
        pressed = await rig.log.seen(EventKind.POWERDOWN_REQUESTED)
        assert (pressed["wait"], pressed["phase"]) == (600.0, "boot-disk") and "why" not in pressed
        assert waits == [600.0], "the machine waits the whole timeout for the guest"
        rig.machine.exit(0)
        assert await task == 0
        assert "[t] stopping (winarm down): power button, up to 600 s for the guest" in rig.said()

    run(scenario())


@pytest.mark.parametrize(("channel", "wait"), [(True, 0.05), (False, 600.0)])
def test_the_supervisor_judges_oobe_system_by_the_guest_channel(tmp_path: Path, run_base: Path,
                                                                monkeypatch: pytest.MonkeyPatch, channel: bool,
                                                                wait: float) -> None:
    """The second disk boot of an install is oobeSystem by the boot order; the guest never shuts down itself, so
    the test ends QEMU once the power button's wait is known."""
    monkeypatch.setattr(stop_plan, "PROMPT_WAIT", 0.05)

    async def scenario() -> None:
        medium = tmp_path / "answer.iso"
        medium.write_bytes(b"answer")
        rig = Rig(tmp_path, run_base, answer_medium=medium, timeout=600.0, guest_channel=channel)
        rig.launched.facts.update(disk_booted=True, disk_boots=1)
        task = rig.start()
        await rig.log.seen(EventKind.RUNNING)
        rig.machine.console(DISK_BOOT)
        assert (await rig.log.seen(EventKind.MARKER))["name"] == "oobeSystem"
        rig.supervisor.request_stop("SIGTERM")
        pressed = await rig.log.seen(EventKind.POWERDOWN_REQUESTED)
        assert (pressed["phase"], pressed["wait"], pressed.get("why")) == ("oobeSystem", wait,
                                                                            SETUP if channel else None)
        rig.machine.exit(0)
        assert await task == 0

    run(scenario())
