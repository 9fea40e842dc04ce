"""The metrics endpoint against idle and greedy clients (issue 14, finding 7: 300 idle connections pinned 300
threads forever). Real sockets on loopback, a real collector; the timeout is shortened to keep the test quick."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from winarm.services.metrics import DaemonCollector, MetricsServer

IDLE = 100


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    collector = DaemonCollector("vm", lambda: {"state": "running", "healthy": True}, list)
    metrics = MetricsServer(collector, "127.0.0.1", 0, timeout=0.5, max_connections=4)
    metrics.start()
    try:
        yield metrics
    finally:
        metrics.stop()


def scrape(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within 10 s; a socket still open then is not."""
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_are_closed_and_cost_no_lasting_threads(server: MetricsServer) -> None:
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.bound_port), timeout=10) for _ in range(IDLE)]
    try:
        assert all(closed_by_server(sock) for sock in idle)
        # at most max_connections handler threads ever ran beside ours, and a scrape is served again
        assert threading.active_count() <= threads_before + 4
        assert b"winarm_" in scrape(server.bound_port)
    finally:
        for sock in idle:
            sock.close()


def test_a_scrape_is_served_while_the_cap_is_not_reached(server: MetricsServer) -> None:
    reply = scrape(server.bound_port)
    assert reply.startswith(b"HTTP/1.0 200") and b"winarm_" in reply


def test_a_client_that_stops_half_way_is_dropped(server: MetricsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.bound_port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost")
        assert closed_by_server(sock)
