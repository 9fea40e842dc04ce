"""The stall watch's logic on a fake clock and a fake QEMU (QEMU cannot run in the unit tier: the fake's
screendump writes a PPM of the colour the test paints): stalled after the timeout with no activity, not
stalled while disk I/O, reports or the screen move, never while disarmed, and ended when activity returns."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from winarm.errors import RuntimeFailure
from winarm.qemu.screen import Screen
from winarm.timeline.events import EventKind
from winarm.vm.stall import StallWatch


class Clock:
    """Seconds on the phase log's clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Guest:
    """The fake QEMU: its screen is one colour; screendump writes it as QEMU's PPM (or fails when told)."""

    def __init__(self) -> None:
        self.colour = b"\x00\x00\x80"
        self.failure: str | None = None
        self.dumps = 0
        self.dumped = asyncio.Event()

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        assert command == "screendump" and arguments is not None
        self.dumps += 1
        self.dumped.set()
        if self.failure is not None:
            raise RuntimeFailure(self.failure)
        Path(arguments["filename"]).write_bytes(b"P6\n32 24\n255\n" + self.colour * 32 * 24)
        return {}


class Rig:
    def __init__(self, tmp_path: Path, timeout: float = 600) -> None:
        self.clock = Clock()
        self.guest = Guest()
        self.events: list[tuple[EventKind, dict[str, Any]]] = []
        self.lines: list[str] = []
        (tmp_path / "run").mkdir()
        self.folder = tmp_path / "state"
        self.folder.mkdir()
        self.watch = StallWatch(Screen(self.guest.execute, tmp_path / "run"), timeout=timeout, folder=self.folder,
                                record=self.record, say=self.lines.append, clock=self.clock)

    def record(self, kind: EventKind, **details: Any) -> None:
        self.events.append((kind, details))

    def kinds(self) -> list[EventKind]:
        return [kind for kind, _ in self.events]

    def at(self, t: float) -> None:
        """Move the clock to ``t`` and let the watch look once."""
        self.clock.t = t
        asyncio.run(self.watch.check())


def test_an_armed_vm_quiet_for_the_timeout_is_stalled_once_with_a_screenshot(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.arm()
    rig.at(400)
    rig.at(699.9)
    assert rig.events == [] and rig.lines == [], "quiet, but not for the timeout yet"
    rig.at(700)
    assert rig.kinds() == [EventKind.STALLED, EventKind.SCREENSHOT]
    stalled, shot = rig.events[0][1], rig.events[1][1]
    assert stalled == {"quiet": 600.0, "last": "the VM started running", "last_at": 100.0, "timeout": 600}
    png = rig.folder / "stall-1.png"
    assert shot == {"path": str(png), "reason": "stalled", "width": 32, "height": 24}
    assert rig.lines == [f"stalled: no disk I/O, screen change or guest report for 600 s (last: the VM started "
                         f"running at 100.0 s); screenshot {png}"]
    with Image.open(png) as image:
        assert image.size == (32, 24) and image.getpixel((5, 5)) == (0, 0, 128)
    rig.at(2000)
    assert rig.kinds() == [EventKind.STALLED, EventKind.SCREENSHOT], "told once, not at every look"
    assert rig.watch.snapshot()["stalled"] is True and rig.watch.snapshot()["stalled_since"] == 700


@pytest.mark.parametrize("kind, detail, told", [
    ("disk I/O", "", "disk I/O"),
    ("guest report", "windowsPE", "guest report 'windowsPE'"),
    ("console line", "WINARM-EVENT \x1b[31mhang\x07" + "x" * 100,
     "console line 'WINARM-EVENT [31mhang" + "x" * 39 + "'"),  # printable ASCII only, 60 characters
])
def test_activity_puts_the_stall_off_and_is_named_when_it_comes(tmp_path: Path, kind: str, detail: str,
                                                               told: str) -> None:
    rig = Rig(tmp_path)
    rig.watch.arm()
    rig.clock.t = 650
    rig.watch.note(kind, detail)
    rig.at(700)
    rig.at(1249)
    assert rig.events == [], "600 s from the last activity, not from the start"
    rig.at(1250)
    assert rig.events[0] == (EventKind.STALLED, {"quiet": 600.0, "last": told, "last_at": 650.0, "timeout": 600})
    assert f"(last: {told} at 650.0 s)" in rig.lines[0]


def test_a_screen_change_is_activity(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.arm()
    rig.at(200)
    rig.guest.colour = b"\xff\xff\xff"
    rig.at(650)
    rig.at(700)
    assert rig.events == [], "the screen changed at 650"
    assert rig.watch.last == ("screen change", 650)
    rig.at(1250)
    assert rig.events[0][1]["last"] == "screen change" and rig.events[0][1]["last_at"] == 650


def test_disarmed_it_never_stalls_and_time_disarmed_is_not_quiet(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.at(5000)
    assert rig.events == [] and rig.guest.dumps == 0, "never armed: no look at the screen"
    rig.watch.arm()
    rig.at(5100)
    rig.watch.disarm()
    rig.at(9000)
    assert rig.events == [] and rig.guest.dumps == 1
    rig.watch.arm()
    rig.at(9599)
    assert rig.events == [], "armed again at 9000: 599 s quiet"
    rig.at(9600)
    assert rig.kinds()[0] == EventKind.STALLED and rig.events[0][1]["quiet"] == 600


def test_activity_after_a_stall_ends_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.arm()
    rig.at(700)
    rig.clock.t = 745.5
    rig.watch.note("disk I/O")
    assert rig.events[-1] == (EventKind.STALL_ENDED, {"by": "disk I/O", "stalled_for": 45.5})
    assert rig.lines[-1] == "stall ended: disk I/O after 46 s stalled"
    assert rig.watch.snapshot()["stalled"] is False
    rig.at(1345.5)
    assert rig.kinds().count(EventKind.STALLED) == 2, "a second stall is told again"
    assert (rig.folder / "stall-2.png").is_file()


def test_a_stall_whose_screen_cannot_be_taken_is_still_told(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.arm()
    rig.guest.failure = "QEMU refused screendump: no surface"
    rig.at(700)
    assert rig.kinds() == [EventKind.STALLED]
    assert rig.lines[0].endswith("; no screenshot: QEMU refused screendump: no surface")


def test_a_timeout_of_zero_never_stalls_but_still_counts_screen_changes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, timeout=0)
    rig.watch.arm()
    rig.at(10)
    rig.guest.colour = b"\x01\x02\x03"
    rig.at(10**6)
    assert rig.events == [] and rig.watch.snapshot()["screen_changes_last_minute"] == 1


def test_earlier_runs_screenshots_are_kept(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.folder / "stall-1.png").write_bytes(b"an earlier run's")
    rig.watch.arm()
    rig.at(700)
    assert rig.events[1][1]["path"] == str(rig.folder / "stall-2.png")
    assert (rig.folder / "stall-1.png").read_bytes() == b"an earlier run's"


def test_the_snapshot_is_json_and_counts_the_last_minute(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.watch.arm()
    for t, colour in [(110, b"a"), (120, b"b"), (150, b"c"), (170, b"d")]:
        rig.guest.colour = colour * 3
        rig.at(t)
    rig.clock.t = 185
    rig.watch.note("disk I/O")
    rig.clock.t = 200.25
    snapshot = json.loads(json.dumps(rig.watch.snapshot()))
    assert snapshot == {
        "armed": True, "timeout": 600, "stalled": False, "stalled_since": None, "stalls": 0,
        "last_activity": "disk I/O", "last_activity_at": 185.0, "seconds_since_activity": 15.2,
        "screen_changes_last_minute": 2,
    }, "changes at 150 and 170 (110 was the first look, 120 is past the minute)"


def test_a_requested_screenshot_is_recorded_or_answers_why_not(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    out = tmp_path / "asked.png"
    answer = asyncio.run(rig.watch.screenshot(out))
    assert answer == {"ok": True, "path": str(out), "width": 32, "height": 24}
    assert rig.events == [(EventKind.SCREENSHOT, {"path": str(out), "reason": "requested", "width": 32,
                                                  "height": 24})]
    assert asyncio.run(rig.watch.screenshot(tmp_path / "no" / "x.png"))["error"].endswith("does not exist")
    rig.guest.failure = "QEMU's monitor is gone (screendump): EOFError"
    assert asyncio.run(rig.watch.screenshot(out)) == {"error": "QEMU's monitor is gone (screendump): EOFError"}
    assert len(rig.events) == 1


def test_the_loop_looks_only_once_armed(tmp_path: Path) -> None:
    """The loop waits for arm() (no look at the screen before), then looks after its interval (1 s here)."""
    rig = Rig(tmp_path, timeout=4)
    assert rig.watch.interval == 1.0

    async def scenario() -> None:
        task = asyncio.create_task(rig.watch.run())
        for _ in range(5):
            await asyncio.sleep(0)  # turns of the loop, no time passes: the disarmed loop must not look
        assert rig.guest.dumps == 0
        rig.watch.arm()
        await asyncio.wait_for(rig.guest.dumped.wait(), 10)  # a bound for a broken loop, not a synchronisation
        task.cancel()

    asyncio.run(scenario())
    assert rig.guest.dumps == 1
