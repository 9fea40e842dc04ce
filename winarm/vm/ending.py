"""How a run ended, told: the ``exit`` event, a crash report when QEMU died, the boot timeline, the status."""

from __future__ import annotations

import signal
from typing import Protocol

from winarm.config.paths import VmPaths
from winarm.qemu import console
from winarm.qemu.machine import tail
from winarm.timeline.events import EventKind
from winarm.timeline.phases import derive_phases, format_table
from winarm.vm.report import Reporter
from winarm.vm.stop_plan import StopPlan


class Ended(Protocol):
    """What is known of a QEMU that has exited."""

    shutdown_seen: bool

    @property
    def returncode(self) -> int | None: ...


def finish(reporter: Reporter, machine: Ended, paths: VmPaths, *, how: str, paused: bool, tpm_lost: bool,
           at: float, plan: StopPlan | None) -> int:
    """Record the ``exit`` (at ``at``, QEMU's exit) and say how the run ended; return the exit status: 0 after a
    clean stop or a guest power-off, 1 when QEMU died, was killed, or the TPM was lost. ``how`` is what
    :meth:`winarm.qemu.machine.Machine.stop` returned (``exited`` when QEMU ended by itself, ``forced`` when a
    second signal killed it); ``plan`` how the stop was judged (None when winarm did not stop the VM): a stop
    that ended in ``quit`` is said with :meth:`StopPlan.stopped_line`, and a prompt one's ``exit`` event carries
    ``why`` and ``because``."""
    code = machine.returncode
    clean = machine.shutdown_seen or how in ("guest", "quit")
    if not clean and how not in ("killed", "forced"):
        report_crash(reporter, paths, code, at=at)
    quit_plan = plan if how == "quit" and not paused else None
    extra = {"why": quit_plan.why, "because": quit_plan.reason} if quit_plan and quit_plan.why else {}
    reporter.record(EventKind.EXIT, at=at, code=code, stop=how, clean=clean, **extra)
    say_summary(reporter)
    if how == "killed":
        reporter.say("QEMU ignored quit and was killed")
        return 1
    if how == "forced":
        reporter.say("QEMU was killed at the second signal: the guest did not shut down (its disk is checked at "
                     "the next boot)")
        return 1
    if not clean:
        return 1
    if quit_plan is not None:
        reporter.say(quit_plan.stopped_line())
    return 1 if tpm_lost else 0


def report_crash(reporter: Reporter, paths: VmPaths, code: int | None, *, at: float) -> None:
    """QEMU ended without a shutdown: one line with the phase it died in and the last words of QEMU and of
    the guest's console, and a ``crash`` event in the phase log."""
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"status {code}"
    phases = derive_phases(reporter.events.events)
    phase = phases[-1].name if phases else "launch"
    qemu_said = tail(paths.qemu_log, 3) or "nothing"
    guest_said = console.strip_ansi(tail(paths.serial_log, 3).encode()).decode(errors="replace") or "nothing"
    reporter.record(EventKind.CRASH, at=at, code=code, phase=phase)
    reporter.say(f"QEMU died ({how}) during {phase}: QEMU said: {qemu_said}; the console's last lines: {guest_said}")


def say_summary(reporter: Reporter) -> None:
    """The boot timeline, one phase a line."""
    reporter.say("boot timeline:")
    for line in format_table(derive_phases(reporter.events.events)):
        reporter.say("  " + line)
