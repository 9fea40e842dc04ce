"""Prometheus metrics of a running VM (``winarm up --metrics-port``): phase durations, state, share health.

Values are read from the daemon when Prometheus scrapes (a custom collector), so nothing has to be kept in
step with the event loop; the HTTP server (:mod:`winarm.services.metrics_http`) runs in threads of its own, on
loopback unless ``--metrics-address`` says otherwise, with a cap on connections and an idle timeout for each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from winarm.errors import RuntimeFailure
from winarm.timeline.events import Event, EventKind
from winarm.timeline.phases import derive_phases
from winarm.vm.state import VmState

if TYPE_CHECKING:
    from winarm.config.vm import Config
    from winarm.vm.report import Reporter

STATES = tuple(state.value for state in VmState)


class DaemonCollector:
    """Turns the daemon's status and phase log into metric families at each scrape."""

    def __init__(self, name: str, status: Callable[[], dict[str, Any]], events: Callable[[], list[Event]]) -> None:
        self.name = name
        self.status = status
        self.events = events

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        status = self.status()
        phases = derive_phases(self.events())
        vm = self.name

        state = GaugeMetricFamily("winarm_vm_state", "1 for the state the VM is in, 0 for the others",
                                  labels=["vm", "state"])
        for name in STATES:
            state.add_metric([vm, name], 1.0 if status.get("state") == name else 0.0)
        yield state

        healthy = GaugeMetricFamily("winarm_vm_healthy", "1 when the VM runs and is healthy", labels=["vm"])
        healthy.add_metric([vm], 1.0 if status.get("healthy") else 0.0)
        yield healthy

        durations = GaugeMetricFamily(
            "winarm_phase_duration_seconds", "Duration of each completed boot phase of this run",
            labels=["vm", "boot", "index", "phase", "source"],
        )
        for index, phase in enumerate(phases, 1):
            if phase.duration is not None:
                durations.add_metric([vm, str(phase.boot), str(index), phase.name, phase.source or "winarm"],
                                     phase.duration)
        yield durations

        current = GaugeMetricFamily("winarm_phase_current", "1 for the phase under way, with the seconds it has "
                                    "run in winarm_phase_current_seconds", labels=["vm", "boot", "phase"])
        running = GaugeMetricFamily("winarm_phase_current_seconds", "Seconds the phase under way has run",
                                    labels=["vm", "boot", "phase"])
        if phases and phases[-1].end is None:
            last = phases[-1]
            current.add_metric([vm, str(last.boot), last.name], 1.0)
            running.add_metric([vm, str(last.boot), last.name], max(0.0, float(status.get("uptime") or 0) - last.start))
        yield current
        yield running

        boots = GaugeMetricFamily("winarm_boots", "Boots of the VM in this run (resets included)", labels=["vm"])
        boots.add_metric([vm], float(max((p.boot for p in phases), default=0)))
        yield boots

        uptime = GaugeMetricFamily("winarm_uptime_seconds", "Seconds since winarm up started", labels=["vm"])
        uptime.add_metric([vm], float(status.get("uptime") or 0.0))
        yield uptime

        yield from activity_families(vm, status)
        share = status.get("share")
        if isinstance(share, dict):
            share_healthy = GaugeMetricFamily("winarm_share_healthy", "1 when an SMB session reaches the share",
                                              labels=["vm"])
            share_healthy.add_metric([vm], 1.0 if share.get("healthy") else 0.0)
            yield share_healthy
            restarts = GaugeMetricFamily("winarm_smbd_restarts", "Times smbd was restarted in this run",
                                         labels=["vm"])
            restarts.add_metric([vm], float(share.get("restarts") or 0))
            yield restarts


def activity_families(vm: str, status: dict[str, Any]) -> Iterator[Any]:
    """The answers to "is it hung?": progress, the last minute's activity, the guest channel, a stall."""
    from prometheus_client.core import GaugeMetricFamily

    def gauge(name: str, text: str, value: Any, **labels: str) -> Any:
        family = GaugeMetricFamily(name, text, labels=["vm", *labels])
        family.add_metric([vm, *labels.values()], float(value or 0))
        return family

    progress = status.get("progress") or {}
    if progress.get("percent") is not None:
        yield gauge("winarm_progress_ratio", "Progress of the phase under way where it is known (0 to 1)",
                    float(progress["percent"]) / 100, what=str(progress.get("what", "apply")))
    stall = status.get("stall")
    if isinstance(stall, dict):
        yield gauge("winarm_stalled", "1 while the VM shows no disk I/O, screen change or report for the stall "
                    "timeout", 1 if stall.get("stalled") else 0)
    activity = status.get("activity") or {}
    for key in ("disk_written", "disk_read", "iso_read"):
        if key in activity:
            yield gauge(f"winarm_{key}_bytes_last_minute", f"Bytes ({key.replace('_', ' ')}) in the last minute",
                        activity[key])
    if activity.get("cpu_percent") is not None:
        yield gauge("winarm_cpu_percent_last_minute", "QEMU's CPU use in the last minute, percent of one core",
                    activity["cpu_percent"])
    if "nic_up" in activity:
        yield gauge("winarm_network_driver_up", "1 once the guest's network driver programmed the NIC in this boot",
                    1 if activity["nic_up"] else 0)
    reports = status.get("reports")
    if isinstance(reports, dict):
        family = GaugeMetricFamily("winarm_guest_reports", "Reports over the guest channel in this run",
                                   labels=["vm", "result"])
        for result in ("accepted", "refused"):
            family.add_metric([vm, result], float(reports.get(result) or 0))
        yield family


CONNECTION_TIMEOUT = 10.0
"""Seconds a scrape connection may sit idle (reading the request, or between reads) before it is closed: a
scrape is one short request, so an idle client must not pin a thread."""
MAX_CONNECTIONS = 16
"""Scrapes served at once; a connection beyond them is closed at once (Prometheus scrapes one at a time)."""


class MetricsServer:
    """The HTTP endpoint, in threads of its own: at most ``max_connections`` at once (more are closed at once),
    each closed after ``timeout`` seconds idle. :meth:`start` raises :class:`RuntimeFailure` when the port
    cannot be bound or prometheus-client is missing."""

    def __init__(self, collector: DaemonCollector, address: str, port: int, *, timeout: float = CONNECTION_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.collector = collector
        self.address = address
        self.port = port
        self.timeout = timeout
        self.max_connections = max_connections
        self._server: Any = None

    def start(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, make_wsgi_app
        except ImportError:
            raise RuntimeFailure("prometheus-client is not installed: pip install prometheus-client") from None
        from winarm.services.metrics_http import serve

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        try:
            self._server = serve(make_wsgi_app(registry), self.address, self.port, self.timeout,
                                 self.max_connections)
        except OSError as error:
            raise RuntimeFailure(
                f"metrics port {self.port} on {self.address} cannot be used ({error.strerror}): choose another "
                "--metrics-port"
            ) from None

    @property
    def bound_port(self) -> int:
        """The port listened on (the one asked for, or the one the system gave for port 0)."""
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve_metrics(cfg: Config, status: Callable[[], dict[str, Any]], events: Callable[[], list[Event]],
                  reporter: Reporter) -> Callable[[], None]:
    """Start the endpoint ``cfg`` asks for (``metrics_port`` set), record and say where; returns its stop.
    Raises :class:`RuntimeFailure` when the port cannot be used."""
    assert cfg.metrics_port is not None
    server = MetricsServer(DaemonCollector(cfg.name, status, events), cfg.metrics_address, cfg.metrics_port)
    server.start()
    reporter.record(EventKind.METRICS_STARTED, address=cfg.metrics_address, port=cfg.metrics_port)
    reporter.say(f"metrics: http://{cfg.metrics_address}:{cfg.metrics_port}/metrics")
    return server.stop
