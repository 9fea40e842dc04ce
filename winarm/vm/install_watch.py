"""What the console tells about the install, and what the supervisor does about it.

Each boot: the boot device the firmware starts (the CD, then the disk); during an install, the boot named by
Setup's sequence (from the CD windowsPE, the first disk boot specialize, the second oobeSystem: inferred, since
real Windows says nothing on the console); the guest's markers (phases) and events; the CD's "press any key"
prompt (a key pressed only before the disk has ever booted, again while the loader still waits); and at the
install-done marker the answer medium (it holds the password) unplugged and deleted. What it learns about the VM
(the disk booted, the install complete) is kept in the VM's facts.

What the firmware does (:mod:`winarm.vm.firmware_watch`): a boot option Secure Boot refused is told in one line
with the way out; the firmware giving up (no bootable option, its shell, its menu, a network boot) before the
disk has ever booted, with the install CD attached, is a failed CD boot: the VM is reset and the CD tried again,
at most :data:`CD_BOOT_TRIES` times, then the run fails in one line with the firmware's last lines. Otherwise the
firmware giving up makes the VM unhealthy (:attr:`InstallWatch.problem`), told in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
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
from winarm.vm.firmware_watch import Finding, FirmwareWatch, NoOs, Refused
from winarm.vm.full_storage import ConsoleLog
from winarm.vm.report import Reporter

ANSWER_DEVICE = "media1"
"""The QEMU device id of the answer medium (see :mod:`winarm.qemu.argv`)."""
CD_PROMPT_PRESSES = 5
"""The most keys pressed at the CD's prompt in one boot (its window is about 5 s)."""
CD_PROMPT_INTERVAL = 1.0
"""Seconds at least between two keys at the prompt: another goes only when the loader shows it still waits (it
prints the prompt again, or adds to it: its countdown), as when a key is lost on its way."""
CD_BOOT_TRIES = 3
"""How many boots from the install CD are tried, before the disk has ever booted, when the firmware gives up."""


class Keyboard(Protocol):
    """The part of the machine the install watch uses."""

    async def send_key(self, key: str) -> None: ...

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any: ...


class InstallWatch:
    """Reads the serial console of one run and acts on it (see the module docstring)."""

    def __init__(self, reporter: Reporter, machine: Keyboard, facts: Facts, *, answer_medium: Path | None,
                 on_marker: Callable[[str], None], install_cd: bool = False,
                 on_fail: Callable[[str], None] = lambda reason: None, firmware_only: bool = False) -> None:
        self.reporter = reporter
        self.machine = machine
        self.facts = facts
        self.answer_medium = answer_medium
        self.on_marker = on_marker
        """Hears the name of each new marker (the supervisor stops at ``--stop-at``)."""
        self.install_cd = install_cd
        """Whether an install ISO is attached this run (the CD the firmware should boot before the disk has)."""
        self.on_fail = on_fail
        """Hears why the run cannot go on (the install CD did not boot, Secure Boot refused it); the line is said."""
        self.firmware_only = firmware_only
        """A test's VM that sits in the firmware on purpose (see
        :data:`~winarm.vm.firmware_watch.FIRMWARE_ONLY_ENV`)."""
        self.heard: Callable[[str], None] = lambda line: None
        """Hears every complete console line (the stall watch counts it as activity)."""
        self.firmware = FirmwareWatch()
        self.problem: str | None = None
        """Why the VM is unhealthy (the firmware gave up, Secure Boot refused a loader), said in one line; None
        while it is not."""
        self.failed = False
        self.cd_tries = 0
        self.prompt_seen = False
        self._output_this_boot = False
        self._markers_this_boot: set[str] = set()
        self._presses = 0
        self._last_press = 0.0
        self._press_later: asyncio.Task[None] | None = None
        self._ignored_this_boot = False

    def new_boot(self) -> None:
        """A RESET: the next boot gets its own prompt, firmware output and markers."""
        self._markers_this_boot = set()
        self._output_this_boot = False
        self._presses = 0
        self._ignored_this_boot = False
        self._cancel_press()
        self.firmware.new_boot()
        if not self.failed:
            self.problem = None

    @property
    def no_os(self) -> bool:
        """True while no OS runs in this boot, as far as the console shows (see
        :attr:`winarm.vm.firmware_watch.FirmwareWatch.no_os`): the firmware ignores the power button then."""
        return self.firmware.no_os

    @property
    def setup_running(self) -> bool:
        """True while a boot of an install runs one of Setup's passes (windowsPE, specialize, oobeSystem), before
        the install is complete: Windows Setup ignores the power button then."""
        current = self.reporter.current
        return self.answer_medium is not None and current is not None and current.name in SETUP_PASSES

    async def read(self, reader: asyncio.StreamReader, log_path: Path, *, echo: bool = False) -> None:
        """Read the console until it ends (QEMU's exit), logging it raw to ``log_path`` (and to stderr with
        ``echo``). Raises OSError when the log cannot be opened."""
        splitter = console.LineSplitter()
        raw_log = ConsoleLog(log_path)
        prompt_pending = ""
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
                    await self.on_line(line, prompt_counted=bool(prompt_pending) and line == prompt_pending.strip())
                    prompt_pending = ""
                pending = splitter.pending()
                if CD_PROMPT in pending and pending != prompt_pending:  # the prompt, or its countdown growing
                    prompt_pending = pending
                    await self.on_prompt()
        finally:
            self._cancel_press()
            raw_log.close()
            if raw_log.capped:
                self.reporter.say(f"console: {raw_log.capped} bytes past the log's {raw_log.limit}-byte cap were not "
                                  "logged")

    async def on_line(self, line: str, *, prompt_counted: bool = False) -> None:
        """One complete console line: what the firmware did, a boot entry, a marker, a guest event, or the CD
        prompt (unless ``prompt_counted``: the same prompt already seen unfinished)."""
        for finding in self.firmware.feed(line):
            self._cancel_press()
            await self._on_finding(finding)
        entry = console.parse_boot_entry(line)
        if entry is not None:
            self._cancel_press()
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
        if CD_PROMPT in line and not prompt_counted:
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
        self._cancel_press()
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
        """The CD's loader shows its prompt, or adds to it (its countdown): on the boots before the disk has ever
        booted, press the key now, or once :data:`CD_PROMPT_INTERVAL` has passed since the last, at most
        :data:`CD_PROMPT_PRESSES` times a boot; a key lost on its way is pressed again while the loader waits.
        Once the disk has booted the prompt is left alone (the CD would install again). A key QEMU can no longer
        take (it is going away) is not pressed; the supervisor reports QEMU's end."""
        self.prompt_seen = True
        if self.facts.values.get("disk_booted"):
            if not self._ignored_this_boot:
                self._ignored_this_boot = True
                self.reporter.record(EventKind.CD_PROMPT_IGNORED)
            return
        if self._presses >= CD_PROMPT_PRESSES or self._press_later is not None or self.failed:
            return
        delay = self._last_press + CD_PROMPT_INTERVAL - time.monotonic() if self._presses else 0.0
        if delay <= 0:
            await self._press()
        else:
            self._press_later = asyncio.get_running_loop().create_task(self._press_after(delay))

    async def _press_after(self, delay: float) -> None:
        await asyncio.sleep(delay)  # the prompt's pace, not a synchronisation: the loader reads keys as it likes
        self._press_later = None
        await self._press()

    async def _press(self) -> None:
        self._presses += 1
        self._last_press = time.monotonic()
        try:
            await self.machine.send_key(KEY_FOR_CD_PROMPT)
        except RuntimeFailure:
            return
        self.reporter.record(EventKind.KEY_PRESSED, key=KEY_FOR_CD_PROMPT, press=self._presses)

    def _cancel_press(self) -> None:
        """The loader went on (a boot entry, a marker, the firmware's next step, a reset): no key is due."""
        if self._press_later is not None:
            self._press_later.cancel()
            self._press_later = None

    # -- what the firmware did ------------------------------------------------------------------------------------
    def _installing_from_cd(self) -> bool:
        return self.install_cd and not self.facts.values.get("disk_booted")

    async def _on_finding(self, finding: Finding) -> None:
        if self.failed:
            return
        if isinstance(finding, Refused):
            self._refused(finding)
        elif self._installing_from_cd():
            await self._cd_failed(finding)
        else:
            self._no_os(finding)

    def _refused(self, refused: Refused) -> None:
        """Secure Boot refused a loader: one line naming it, why, and the way out; the install CD refused ends
        the run (trying again cannot help)."""
        failure = refused.failure
        entry = failure.entry
        role = self._role(entry.device)
        line = (f"Secure Boot refused to {failure.action} {entry.entry} \"{entry.description}\" ({role}): "
                f"{failure.status}: {refused.why}; the way out: start with --no-secure-boot, or use firmware whose "
                "Secure Boot keys trust that loader's signer (media signed only with Microsoft's newer 2023 UEFI CA "
                "need firmware that has it enrolled)")
        self.reporter.record(EventKind.BOOT_REFUSED, entry=entry.entry, description=entry.description,
                             device=entry.device, path=entry.path, action=failure.action, status=failure.status)
        self.reporter.say(line)
        self.problem = line
        if entry.device == "cd" and self._installing_from_cd():
            self._fail("Secure Boot refused the install CD")

    def _role(self, device: str) -> str:
        if device == "cd":
            return "the install CD" if self.install_cd else "a CD"
        return {"disk": "the system disk", "network": "a network boot"}.get(device, device)

    async def _cd_failed(self, no_os: NoOs) -> None:
        """The firmware gave up before the disk has ever booted, the install CD attached: reset and try the CD
        again, or, after :data:`CD_BOOT_TRIES` tries, fail in one line with the firmware's last lines."""
        self.cd_tries += 1
        retry = self.cd_tries < CD_BOOT_TRIES
        self.reporter.record(EventKind.CD_BOOT_FAILED, attempt=self.cd_tries, tries=CD_BOOT_TRIES,
                             what=no_os.gave_up.what, returned=no_os.returned.entry if no_os.returned else None,
                             retry=retry)
        if retry:
            self.reporter.say(f"the install CD did not boot: the firmware {no_os.gave_up.says}; resetting the VM to "
                              f"try again ({self.cd_tries + 1} of {CD_BOOT_TRIES})")
            with contextlib.suppress(RuntimeFailure):  # QEMU going away: the supervisor reports its end
                await self.machine.execute("system_reset")
            return
        prompt = ("a key was pressed at its prompt each time" if self.prompt_seen else
                  "its \"Press any key to boot from CD or DVD\" prompt never showed: is the ISO bootable ARM64 media?")
        line = (f"the install CD did not boot in {CD_BOOT_TRIES} tries (each time the firmware "
                f"{no_os.gave_up.says}; {prompt}); the firmware's last lines: {self.firmware.last_lines()}")
        self.reporter.say(line)
        self.problem = line
        self._fail("the install CD did not boot")

    def _no_os(self, no_os: NoOs) -> None:
        """The firmware gave up with no install CD to try again: the VM is unhealthy, told in one line."""
        if self.firmware_only:  # a test's VM meant to sit in the firmware
            self.reporter.record(EventKind.NO_BOOT, what=no_os.gave_up.what, expected=True)
            return
        back = no_os.returned
        returned = f"; {back.entry} \"{back.description}\" came back to it" if back is not None else ""
        if self.facts.values.get("disk_booted"):
            line = (f"no OS booted: the firmware {no_os.gave_up.says}{returned}; the disk has booted before, so its "
                    f"boot loader is missing or damaged; the firmware's last lines: {self.firmware.last_lines()}")
        else:
            line = (f"nothing to boot: the firmware {no_os.gave_up.says}{returned}; the disk has never booted an OS "
                    "and no install CD is attached: stop the VM ('winarm down') and start it with --iso")
        self.reporter.record(EventKind.NO_BOOT, what=no_os.gave_up.what,
                             returned=no_os.returned.entry if no_os.returned else None,
                             disk_booted=bool(self.facts.values.get("disk_booted")))
        self.reporter.say(line)
        self.problem = line

    def _fail(self, reason: str) -> None:
        self.failed = True
        self._cancel_press()
        self.on_fail(reason)

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
