"""How long a graceful stop waits for the guest, judged from where its boot is.

The power button (QMP ``system_powerdown``) is an ACPI event: only an operating system with its ACPI driver
running acts on it. The firmware ignores it (EDK2/AAVMF, its UEFI shell and its network boot: QEMU reports a
POWERDOWN and never a SHUTDOWN), and so does Windows Setup (windowsPE, and an install's specialize and
oobeSystem passes before the first logon). Waiting the whole ``TIMEOUT`` there only delays the same end, a
``quit``. So the stop waits :data:`PROMPT_WAIT` seconds when the phase under way says that no OS runs or that
Setup runs, and the whole timeout otherwise (an OS is up, or may be: its loader was started and nothing said
otherwise).

The judgement uses only the events the run already records (:func:`winarm.timeline.phases.derive_phases`):
``firmware`` (each boot's start up to the firmware starting a boot entry), ``boot-network`` and
``boot-firmware-app`` (an entry that is no OS loader) mean no OS; ``windowsPE`` and ``specialize`` (named by the
boot order or confirmed by a report) mean Setup; ``oobeSystem`` means Setup only when the guest channel is on:
that boot goes on into the first logon and the desktop, and without the channel nothing would end the phase, so a
desktop in use for weeks would still read ``oobeSystem``; anything else (``boot-cd``, ``boot-disk``, a guest's
own marker, ``first-logon``, ``desktop-ready``) means an OS. Quitting during Setup loses the install's progress:
that is what a stop asks for, and the lines say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from winarm.guest import SETUP_PASSES
from winarm.timeline.events import Event, EventKind
from winarm.timeline.phases import derive_phases

PROMPT_WAIT = 5.0
"""Seconds given to the power button when no OS or Setup runs, before ``quit``. The button gets no answer to
wait for, so this only covers the lag between a guest's phase changing and winarm hearing of it (a console line
or a report in flight, an OS starting as the stop is asked); 5 s is far under the default ``TIMEOUT`` (105 s)."""

NO_OS_PHASES: dict[str, str] = {
    "launch": "QEMU not yet running",
    "firmware": "firmware",
    "boot-network": "firmware network boot",
    "boot-firmware-app": "a firmware application: the UEFI shell or the setup menu",
}
"""Phases in which no OS runs, with the words that say where the boot is."""

NO_OS = "no-os"
SETUP = "setup"


@dataclass(frozen=True)
class StopPlan:
    """How one stop goes: ``wait`` seconds for the power button, then ``quit``. ``why`` is :data:`NO_OS`,
    :data:`SETUP` or None (an OS may run: the whole timeout); ``phase`` the phase under way when it was judged."""

    wait: float
    phase: str
    why: str | None = None

    @property
    def reason(self) -> str | None:
        """Why the stop is prompt, in words (None when it is not): ``no OS running (firmware)`` or ``Windows
        Setup (windowsPE) ignores the power button``."""
        if self.why == NO_OS:
            return f"no OS running ({NO_OS_PHASES.get(self.phase, self.phase)})"
        if self.why == SETUP:
            return f"Windows Setup ({self.phase}) ignores the power button"
        return None

    @property
    def loss(self) -> str:
        """What quitting costs, for the lines: the install's progress during Setup, else nothing."""
        return "; the install's progress is lost" if self.why == SETUP else ""

    def stopping_line(self, asked: str) -> str:
        """The line said when the stop starts; ``asked`` is who asked (``winarm down``, ``SIGTERM``)."""
        if self.reason is None:
            return f"stopping ({asked}): power button, up to {self.wait:g} s for the guest"
        return f"stopping ({asked}): power button, then quit after {self.wait:g} s: {self.reason}{self.loss}"

    def stopped_line(self) -> str:
        """The line said when the stop ended in ``quit``: why it was prompt, or that the guest took too long."""
        if self.reason is None:
            return f"the guest did not shut down within {self.wait:g} s: QEMU was told to quit"
        return f"stopped: {self.reason}, quit after {self.wait:g} s{self.loss}"

    def details(self) -> dict[str, Any]:
        """What the ``powerdown-requested`` event records: ``wait``, ``phase``, and ``why`` and ``because`` (the
        reason in words) for a prompt stop."""
        out: dict[str, Any] = {"wait": self.wait, "phase": self.phase}
        if self.why is not None:
            out.update(why=self.why, because=self.reason)
        return out

    def recorder(self, record: Callable[..., object]) -> Callable[[EventKind], None]:
        """An ``on_step`` for :meth:`winarm.qemu.machine.Machine.stop` that records each step with ``record``,
        the power button with :meth:`details`."""

        def on_step(step: EventKind) -> None:
            if step == EventKind.POWERDOWN_REQUESTED:
                record(step, **self.details())
            else:
                record(step)

        return on_step


def phase_under_way(events: Iterable[Event]) -> str:
    """The phase the boot is in, the shutdown left out (a stop already asked for does not hide where the boot
    was): ``launch`` when nothing else is known."""
    phases = [p for p in derive_phases(events) if p.name != "shutdown"]
    return phases[-1].name if phases else "launch"


def plan_stop(events: Iterable[Event], timeout: float, *, reports: bool = True) -> StopPlan:
    """How a stop asked for now goes, from the run's events so far and the configured ``timeout`` (seconds):
    :data:`PROMPT_WAIT` (or the timeout, when shorter) in a phase with no OS or with Setup, else the timeout.
    ``reports``: whether the guest channel is on (the first logon's report ends ``oobeSystem``; see the module
    docstring). Raises nothing."""
    phase = phase_under_way(events)
    if phase in NO_OS_PHASES:
        return StopPlan(min(PROMPT_WAIT, timeout), phase, NO_OS)
    if phase in SETUP_PASSES and (reports or phase != SETUP_PASSES[-1]):
        return StopPlan(min(PROMPT_WAIT, timeout), phase, SETUP)
    return StopPlan(timeout, phase)
