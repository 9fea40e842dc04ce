"""The metrics endpoint's HTTP server: the standard library's WSGI server in threads, closed to what an idle
or greedy client could do to it (issue 14: 300 idle connections pinned 300 threads forever).

Each connection gets a socket timeout, so a client that sends nothing, or stops half-way, is dropped after it;
at most ``max_connections`` are served at once and the next one is closed at once, so a flood costs no threads.
"""

from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _QuietHandler(WSGIRequestHandler):
    """A request handler that logs nothing (scrapes are not news)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        del format, args


class _BoundedServer(ThreadingMixIn, WSGIServer):
    """A threading WSGI server with a cap on the connections served at once."""

    daemon_threads = True
    request_queue_size = 64  # a burst of connections waits in the kernel's queue, not in SYN retries
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops or stalls mid-request is no news: nothing is printed (the base class prints a
        traceback to stderr)."""
        del request, client_address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def _family(address: str) -> socket.AddressFamily:
    infos = socket.getaddrinfo(address, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    return infos[0][0]


def serve(app: Any, address: str, port: int, timeout: float, max_connections: int) -> WSGIServer:
    """Serve the WSGI ``app`` on ``address`` (a numeric IPv4 or IPv6 address) and ``port`` in a daemon thread;
    returns the server (``shutdown()`` then ``server_close()`` to stop). Raises OSError when the port cannot be
    bound or the address is not numeric."""
    handler = type("_Handler", (_QuietHandler,), {"timeout": timeout})
    server_class = type("_Server", (_BoundedServer,), {"address_family": _family(address),
                                                        "slots": threading.BoundedSemaphore(max_connections)})
    try:
        server: WSGIServer = make_server(address, port, app, server_class, handler_class=handler)
    except socket.gaierror as error:
        raise OSError(error.errno, f"{address!r} is not a numeric address") from error
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
