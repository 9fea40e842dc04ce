"""What the UEFI firmware does in each boot, read from its console lines.

Which OS loader it started (from the CD or the disk) and whether that loader came back to it; which boot option
Secure Boot refused (``Access Denied``, ``Security Violation``); and whether it gave up booting an OS in this
boot: no bootable option, its UEFI shell, its own menu, a network boot. Pure: fed the console's lines, it
returns what they mean (:class:`Refused`, :class:`NoOs`); :mod:`winarm.vm.install_watch` acts on them. The lines
themselves are data (``winarm/qemu/firmware_lines.json``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from winarm.qemu import console
from winarm.qemu.console import BootEntry, BootFailure, GaveUp

OS_DEVICES = ("cd", "disk")
"""Where an OS loader comes from: the install CD (Windows' own loader) or the system disk."""
RECENT_LINES = 6
"""How many of the console's last lines are kept for a failure's line."""
FIRMWARE_ONLY_ENV = "WINARM_FIRMWARE_ONLY"
"""For tests only: ``1`` is a VM that sits in the firmware on purpose (to test what winarm does around a running
QEMU): ``winarm up`` starts it although it has nothing to boot, and the firmware's last resorts (its shell) are
recorded but are no problem. The install CD is still tried again when an ISO is attached."""


@dataclass(frozen=True)
class Refused:
    """Secure Boot refused a boot option's loader."""

    failure: BootFailure
    why: str
    """Why, in words (from the status: the keys do not trust its signature, or it is unsigned)."""


@dataclass(frozen=True)
class NoOs:
    """The firmware gave up booting an OS in this boot."""

    gave_up: GaveUp
    returned: BootEntry | None
    """The OS loader that started in this boot and came back to the firmware, if one did."""


Finding = Refused | NoOs


class FirmwareWatch:
    """The firmware's story of the boot under way; :meth:`new_boot` at each RESET."""

    def __init__(self) -> None:
        self.recent: deque[str] = deque(maxlen=RECENT_LINES)
        self.loader: BootEntry | None = None
        """The OS loader running in this boot (started from the CD or the disk, not come back)."""
        self.returned: BootEntry | None = None
        """The last OS loader of this boot that came back to the firmware."""
        self.gave_up: GaveUp | None = None
        """How the firmware gave up booting an OS in this boot, None while it has not."""
        self._refused: set[str] = set()

    def new_boot(self) -> None:
        """A RESET: the next boot starts with no loader and nothing given up (the recent lines stay)."""
        self.loader = self.returned = self.gave_up = None
        self._refused = set()

    @property
    def no_os(self) -> bool:
        """True while no OS runs in this boot, as far as the console shows: before the firmware started a loader
        from the CD or the disk, after that loader came back, or once the firmware gave up (shell, menu, no
        bootable option, network boot). False while a loader it started runs (it may be an OS by now)."""
        return self.loader is None or self.gave_up is not None

    def last_lines(self, count: int = 3) -> str:
        """The console's last ``count`` lines, joined with `` | `` (``nothing`` when there were none)."""
        return " | ".join(list(self.recent)[-count:]) or "nothing"

    def feed(self, line: str) -> list[Finding]:
        """One complete (ANSI-free) console line; returns what it means (usually nothing)."""
        self.recent.append(line if len(line) <= 160 else line[:157] + "...")
        failure = console.parse_boot_failure(line)
        if failure is not None:
            return self._failed(failure)
        entry = console.parse_boot_entry(line)
        if entry is not None:
            return self._started(entry)
        gave_up = console.parse_gave_up(line)
        return self._give_up(gave_up) if gave_up is not None else []

    def _loader_came_back(self) -> None:
        if self.loader is not None:
            self.returned, self.loader = self.loader, None

    def _started(self, entry: BootEntry) -> list[Finding]:
        """The firmware starts ``entry``: any loader before it came back; an OS loader now runs, or the firmware
        runs one of its own applications (it gave up) or boots from the network."""
        self._loader_came_back()
        if entry.device in OS_DEVICES:
            self.loader = entry
            return []
        app = console.firmware_app(entry)
        if app is not None:
            return self._give_up(app)
        if entry.device == "network":
            return self._give_up(GaveUp("network", "fell through to network boot"))
        return []

    def _failed(self, failure: BootFailure) -> list[Finding]:
        """A boot option failed to load or start (a started loader that fails has come back); a Secure Boot
        refusal of an OS loader is a finding, once a boot for each option."""
        if self.loader is not None and failure.entry.entry == self.loader.entry:
            self._loader_came_back()
        why = failure.secure_boot_refusal
        if why is None or failure.entry.device not in (*OS_DEVICES, "network"):
            return []
        if failure.entry.entry in self._refused:
            return []
        self._refused.add(failure.entry.entry)
        return [Refused(failure, why)]

    def _give_up(self, gave_up: GaveUp) -> list[Finding]:
        """The first sign in this boot that the firmware booted no OS."""
        if self.gave_up is not None:
            return []
        self._loader_came_back()
        self.gave_up = gave_up
        return [NoOs(gave_up, self.returned)]
