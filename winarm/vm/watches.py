"""What the supervisor watches beyond the console, for "is it hung?": the parts and how they feed each other.

- :class:`~winarm.vm.traffic.TrafficWatch`: disk and install-medium traffic every second, the image-apply progress
  during windowsPE, the network driver coming up;
- :class:`~winarm.vm.stall.StallWatch`: the screen a few times a minute, and a stall when nothing moved (disk,
  screen, console, guest report) for the stall timeout; armed while a boot has not reached its desktop and the
  VM is neither paused nor stopping;
- :class:`~winarm.vm.cpu_window.CpuWindow`: QEMU's CPU use over the last minute;
- :class:`~winarm.vm.guest_reports.GuestReports`: what arrives over the guest channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from winarm.guest import INSTALL_DONE_MARKERS
from winarm.qemu.screen import Screen
from winarm.timeline.events import EventKind
from winarm.vm.cpu_window import CpuWindow, process_cpu_seconds
from winarm.vm.guest_reports import GuestReports
from winarm.vm.progress import progress_line
from winarm.vm.stall import StallWatch
from winarm.vm.traffic import TrafficWatch

if TYPE_CHECKING:
    from winarm.timeline.phases import Phase
    from winarm.vm.install_watch import InstallWatch
    from winarm.vm.launch import Launched
    from winarm.vm.report import Reporter
    from winarm.vm.supervisor import MachineLike

ACTIVITY_NAMES = {"disk": "disk I/O", "iso": "install medium read"}
"""The traffic watch's activity kinds as the stall line names them."""
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class Watches:
    """The watches of one run, wired to each other; :meth:`start` runs their loops in the supervisor's tasks."""

    def __init__(self, launched: Launched, machine: MachineLike, reporter: Reporter, install: InstallWatch,
                 spawn: Spawn) -> None:
        paths = launched.paths
        self.stall = StallWatch(Screen(machine.execute, paths.run_dir), timeout=launched.cfg.stall_timeout,
                                folder=paths.state_dir, record=reporter.record, say=reporter.say,
                                clock=launched.events.now)
        install.heard = lambda line: self.stall.note("console line", line)
        self.traffic = TrafficWatch(machine.execute, record=self._record_traffic, image=launched.install_image,
                                    on_activity=lambda kind: self.stall.note(ACTIVITY_NAMES.get(kind, kind)))
        self.cpu = CpuWindow(process_cpu_seconds(machine.pid))
        self.reports = GuestReports(reporter, install, spawn)
        self.reports.listeners.append(lambda name: self.stall.note("guest report", name))
        self.reporter = reporter
        reporter.phase_listeners.append(self._on_phase)
        self.channel = launched.cfg.guest_channel
        self._desktop = False
        self._held = False

    def _record_traffic(self, kind: EventKind, **details: Any) -> None:
        """The traffic watch's events, and the apply progress said as it goes (a 5 % step at most)."""
        self.reporter.record(kind, **details)
        if kind == EventKind.APPLY_PROGRESS:
            self.reporter.say(progress_line(int(details["written"]), int(details["total"])))

    def _on_phase(self, phase: Phase | None) -> None:
        """A new phase: the traffic watch follows it; the desktop (``desktop-ready``, the test guest's ``ready``)
        disarms the stall watch until the next boot."""
        self.traffic.set_phase(phase.name if phase else "")
        if phase is not None and phase.name in INSTALL_DONE_MARKERS:
            self._desktop = True
            self.stall.disarm()

    def on_qmp_event(self, name: str, data: dict[str, Any]) -> None:
        """A new boot re-arms what watches a boot; a pause (a full storage) is no stall."""
        self.traffic.on_qmp_event(name, data)
        if name == "RESET":
            self.traffic.new_boot()
            self._desktop = False
            self._arm()
        elif name == "STOP":
            self.stall.disarm()
        elif name == "RESUME":
            self._arm()

    def _arm(self) -> None:
        if not self._desktop and not self._held:
            self.stall.arm()

    def start(self, spawn: Spawn) -> list[asyncio.Task[None]]:
        """Arm the stall watch (the VM runs) and start every loop; the tasks end when cancelled."""
        self._arm()
        return [spawn(self.traffic.run()), spawn(self.stall.run()), spawn(self.cpu.run())]

    def hold(self) -> None:
        """The VM is stopping: no stall from now on."""
        self._held = True
        self.stall.disarm()

    def status(self) -> dict[str, Any]:
        """The status fields: ``progress``, ``activity``, ``reports`` and ``stall``."""
        traffic = self.traffic.snapshot()
        stall = self.stall.snapshot()
        activity = {
            "disk_written": traffic.get("disk_written_window"), "disk_read": traffic.get("disk_read_window"),
            "iso_read": traffic.get("iso_read_window"), "nic_up": traffic.get("nic_up"),
            "screen_changes": stall.get("screen_changes_last_minute"), "cpu_percent": self.cpu.percent(),
            "last": stall.get("last_activity"), "last_at": stall.get("last_activity_at"),
        }
        apply = traffic.get("apply")
        applying = isinstance(apply, dict) and apply.get("applying") and self.traffic.phase == "windowsPE"
        progress = {"what": "apply", **apply} if applying and isinstance(apply, dict) else None
        reports = self.reports.snapshot() if self.channel else None
        return {"progress": progress, "activity": activity, "reports": reports, "stall": stall}
