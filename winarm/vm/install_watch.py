"""What the console tells about the install, and what the supervisor does about it.

Each boot: the boot device the firmware starts (the CD, then the disk); during an install, the boot named by
Setup's sequence (from the CD windowsPE, the first disk boot specialize, the second oobeSystem: inferred, since
real Windows says nothing on the console); the guest's markers (phases) and events; the CD's "press any key"
prompt (a key pressed only before the disk has ever booted); and at the install-done marker the answer medium
(it holds the password) unplugged and deleted. What it learns about the VM (the disk booted, the install
complete) is kept in the VM's facts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from winarm.errors import RuntimeFailure
from winarm.guest import (
    CD_PROMPT,
    INSTALL_DONE_AFTER_DISK_BOOTS,
    INSTALL_DONE_MARKERS,
    KEY_FOR_CD_PROMPT,
    SETUP_PASSES,
)
from winarm.qemu import console
from winarm.timeline.events import EventKind
from winarm.vm.facts import Facts
from winarm.vm.full_storage import ConsoleLog
from winarm.vm.report import Reporter

ANSWER_DEVICE = "media1"
"""The QEMU device id of the answer medium (see :mod:`winarm.qemu.argv`)."""


class Keyboard(Protocol):
    """The part of the machine the install watch uses."""

    async def send_key(self, key: str) -> None: ...

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...


class InstallWatch:
    """Reads the serial console of one run and acts on it (see the module docstring)."""

    def __init__(self, reporter: Reporter, machine: Keyboard, facts: Facts, *, answer_medium: Path | None,
                 on_marker: Callable[[str], None]) -> None:
        self.reporter = reporter
        self.machine = machine
        self.facts = facts
        self.answer_medium = answer_medium
        self.on_marker = on_marker
        """Hears the name of each new marker (the supervisor stops at ``--stop-at``)."""
        self.heard: Callable[[str], None] = lambda line: None
        """Hears every complete console line (the stall watch counts it as activity)."""
        self._key_pressed_this_boot = False
        self._output_this_boot = False
        self._markers_this_boot: set[str] = set()

    def new_boot(self) -> None:
        """A RESET: the next boot gets its own prompt, firmware output and markers."""
        self._markers_this_boot = set()
        self._key_pressed_this_boot = False
        self._output_this_boot = False

    async def read(self, reader: asyncio.StreamReader, log_path: Path, *, echo: bool = False) -> None:
        """Read the console until it ends (QEMU's exit), logging it raw to ``log_path`` (and to stderr with
        ``echo``). Raises OSError when the log cannot be opened."""
        splitter = console.LineSplitter()
        raw_log = ConsoleLog(log_path)
        try:
            while data := await reader.read(4096):
                raw_log.write(data)
                if echo:
                    os.write(2, data)
                if not self._output_this_boot:
                    self._output_this_boot = True
                    self.reporter.record(EventKind.FIRMWARE_OUTPUT)
                for line in splitter.feed(data):
                    self.heard(line)
                    await self.on_line(line)
                if CD_PROMPT in splitter.pending():
                    await self.on_prompt()
        finally:
            raw_log.close()

    async def on_line(self, line: str) -> None:
        """One complete console line: a boot entry, a marker, a guest event, or the CD prompt."""
        entry = console.parse_boot_entry(line)
        if entry is not None:
            self.reporter.record(EventKind.BOOT_DEVICE, device=entry.device, entry=entry.entry,
                                 description=entry.description, path=entry.path)
            if entry.device == "disk":
                self._disk_booted()
            await self._name_boot(entry.device)
            return
        marker = console.parse_marker(line)
        if marker is not None:
            await self.on_guest_marker(*marker, source="serial")
            return
        guest_event = console.parse_guest_event(line)
        if guest_event is not None:
            name, rest = guest_event
            self.reporter.record(EventKind.GUEST_EVENT, name=name, detail=rest)
            return
        if CD_PROMPT in line:
            await self.on_prompt()

    def _disk_booted(self) -> None:
        values = self.facts.values
        values["disk_booted"] = True
        values["disk_boots"] = int(values.get("disk_boots", 0)) + 1
        if values["disk_boots"] >= INSTALL_DONE_AFTER_DISK_BOOTS and self.answer_medium is not None:
            values["install_complete"] = True
        self.facts.save()

    def setup_pass(self, device: str) -> str | None:
        """The Setup pass a boot from ``device`` runs while an install is under way (the answer medium still
        attached), or None: the CD before the disk ever booted is windowsPE; the first and second disk boots are
        specialize and oobeSystem. A CD boot after that is the prompt timing out before the disk boots."""
        if self.answer_medium is None:
            return None
        values = self.facts.values
        if device == "cd":
            return None if values.get("disk_booted") else SETUP_PASSES[0]
        boots = int(values.get("disk_boots", 0))
        if device == "disk" and 1 <= boots < len(SETUP_PASSES):
            return SETUP_PASSES[boots]
        return None

    async def _name_boot(self, device: str) -> None:
        """Start this boot's Setup pass as an inferred phase (``source: boot-order``) during an install."""
        name = self.setup_pass(device)
        if name is not None:  # from the boot entry's own instant: the pass is the whole boot from the device
            await self.on_guest_marker(name, "", source="boot-order", at=self.reporter.events.events[-1]["t"])

    async def on_guest_marker(self, name: str, rest: str, *, source: str, at: float | None = None) -> None:
        """A guest marker: the first of its name in a boot starts a phase; a repeat (the same signal through
        another channel, like desktop-ready on the serial port and on the share) is only noted."""
        if name in self._markers_this_boot:
            self.reporter.record(EventKind.MARKER_AGAIN, name=name, source=source)
            return
        self._markers_this_boot.add(name)
        details: dict[str, Any] = {"name": name}
        if rest:
            details["detail"] = rest
        if source != "serial":
            details["source"] = source
        self.reporter.record(EventKind.MARKER, at=at, **details)
        if name in INSTALL_DONE_MARKERS and self.answer_medium is not None:
            await self.detach_answer_medium()
        self.on_marker(name)

    async def on_prompt(self) -> None:
        """Press a key at the CD's prompt, on the boots before the disk has ever booted, once a boot. A key
        QEMU can no longer take (it is going away) is not pressed; the supervisor reports QEMU's end."""
        if self._key_pressed_this_boot:
            return
        self._key_pressed_this_boot = True
        if self.facts.values.get("disk_booted"):
            self.reporter.record(EventKind.CD_PROMPT_IGNORED)
            return
        try:
            await self.machine.send_key(KEY_FOR_CD_PROMPT)
        except RuntimeFailure:
            return
        self.reporter.record(EventKind.KEY_PRESSED, key=KEY_FOR_CD_PROMPT)

    async def detach_answer_medium(self) -> None:
        """The install is complete: unplug the answer medium (it holds the password) and delete it."""
        medium = self.answer_medium
        if medium is None:
            return
        self.answer_medium = None
        self.facts.values["install_complete"] = True
        self.facts.save()
        try:
            await self.machine.execute("device_del", {"id": ANSWER_DEVICE})
            detached = True
        except RuntimeFailure:  # an unplug refused by the guest still ends with the file gone
            detached = False
        medium.unlink(missing_ok=True)
        self.reporter.record(EventKind.ANSWER_MEDIUM_REMOVED, detached=detached)
        self.reporter.say("installation complete: answer medium detached and deleted")
