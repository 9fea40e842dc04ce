"""The guest channel's host side: the daemon's report socket, where the guest's ``POST /report/<name>`` arrives.

The guest POSTs to ``http://10.0.2.5/report/<name>`` (:data:`winarm.guest.REPORT_URL`): Windows with inbox
``curl.exe``, the test guest with busybox ``wget``. QEMU's user network relays each such connection through
``socat`` (:func:`winarm.qemu.argv.report_relay_command`) to :attr:`winarm.config.paths.VmPaths.report_socket`,
which :class:`GuestChannel` serves.

The protocol is a small HTTP/1.x subset written here by hand: the guest is untrusted, and a strict, bounded
parser with hard limits on time, size and concurrency is smaller than making a web framework that strict. (The
front-door web page, which serves people rather than a guest, will use a library.) What is accepted:

- a request line ``POST /report/<name> HTTP/1.0`` or ``HTTP/1.1`` of at most 256 bytes, the name one of
  :data:`~winarm.guest.REPORT_NAMES`;
- at most 32 header lines and 4 KiB of headers; a body needs ``Content-Length`` (at most
  :data:`~winarm.guest.REPORT_MAX_BODY`), ``Transfer-Encoding`` is refused; ``Expect: 100-continue`` is answered;
- a body of ``KEY VALUE`` lines (:func:`winarm.vm.report_body.parse_body`), or none;
- the whole request within 5 s, at most 4 connections at a time, and a token bucket of 20 reports at once then
  2 a second.

Each answer is one status line, ``Connection: close`` and an empty body, then the connection is closed (once the
guest hangs up, or after :data:`LINGER` seconds, so a guest that sent too much still reads its answer): 204
accepted; 400 malformed; 404 an unknown name; 405 not POST; 408 too slow; 411 a body without a length; 413 a
body over the limit; 414 a long request line; 429 over the rate; 431 too many headers; 500 winarm's own error;
501 ``Transfer-Encoding``; 503 too many connections. Every refusal goes to ``on_refused`` through a
:class:`~winarm.vm.channel_limits.RefusalLog`, so a flood cannot flood the phase log.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from winarm.guest import REPORT_MAX_BODY, REPORT_NAMES, REPORT_PATH
from winarm.vm.channel_limits import Clock, RefusalLog, TokenBucket
from winarm.vm.private_socket import serve_private
from winarm.vm.report_body import BodyError, Report, parse_body

REQUEST_TIMEOUT = 5.0
"""Seconds a guest has to send its whole request."""
MAX_CONNECTIONS = 4
RATE_BURST = 20
RATE_PER_SECOND = 2.0
REQUEST_LINE_MAX = 256
HEADER_LINES_MAX = 32
HEADERS_MAX = 4096
CHUNK = 4096
LINGER = 1.0
"""Seconds the channel goes on reading (and dropping) after its answer, for the guest to hang up."""

STATUS = {204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
          408: "Request Timeout", 411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
          429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
          501: "Not Implemented", 503: "Service Unavailable"}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HEAD_END = re.compile(rb"\r?\n\r?\n")
REQUEST_LINE = re.compile(r"([A-Z]{1,16}) ([\x21-\x7e]+) HTTP/1\.[01]")
HEADER = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):[ \t]*([\x20-\x7e\t]*?)[ \t]*")


def answer(status: int) -> bytes:
    """The whole answer for ``status``: its status line, ``Connection: close`` and an empty body."""
    return f"HTTP/1.1 {status} {STATUS[status]}\r\nConnection: close\r\n\r\n".encode()


def shown(text: str, limit: int = 64) -> str:
    """Untrusted text as it may go into the phase log: each character that is not printable ASCII written as its
    Python escape (``\\x00``, ``\\n``, ``\\xe9``), the whole cut to ``limit`` characters."""
    escaped = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return escaped[:limit]


class Refused(Exception):
    """A request refused with HTTP ``status``; ``reason`` and ``details`` are for ``on_refused``."""

    def __init__(self, status: int, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class Head:
    """A request's line and headers, checked: the report's name, the body's length, whether the guest waits
    for ``100 Continue``."""

    name: str
    length: int | None
    expect_continue: bool


def check_partial(buffer: bytes | bytearray) -> None:
    """Refuse a request head still coming that is already over a limit. Raises :class:`Refused`."""
    first = buffer.find(b"\n")
    if (first < 0 and len(buffer) > REQUEST_LINE_MAX + 1) or first > REQUEST_LINE_MAX + 1:
        raise Refused(414, f"request line over {REQUEST_LINE_MAX} bytes")
    if len(buffer) > REQUEST_LINE_MAX + HEADERS_MAX + 4 or buffer.count(b"\n") > HEADER_LINES_MAX + 2:
        raise Refused(431, f"headers over {HEADER_LINES_MAX} lines or {HEADERS_MAX} bytes")


def parse_head(head: bytes) -> Head:
    """The request line and headers (without the blank line that ends them), checked in this order: ASCII, the
    line's length and form, the method, the name, the headers' count, size and form, the length. Raises
    :class:`Refused`."""
    try:
        lines = [line.removesuffix("\r") for line in head.decode("ascii").split("\n")]
    except UnicodeDecodeError:
        raise Refused(400, "request is not ASCII") from None
    if len(lines[0]) > REQUEST_LINE_MAX:
        raise Refused(414, f"request line over {REQUEST_LINE_MAX} bytes")
    request = REQUEST_LINE.fullmatch(lines[0])
    if request is None:
        raise Refused(400, "not an HTTP/1.x request line", line=shown(lines[0]))
    method, target = request.groups()
    if method != "POST":
        raise Refused(405, "method not allowed", method=method)
    name = target.removeprefix(REPORT_PATH) if target.startswith(REPORT_PATH) else None
    if name not in REPORT_NAMES:
        raise Refused(404, "unknown report", target=shown(target))
    if len(lines) - 1 > HEADER_LINES_MAX or len(head) - len(lines[0]) > HEADERS_MAX:
        raise Refused(431, f"headers over {HEADER_LINES_MAX} lines or {HEADERS_MAX} bytes")
    headers = _headers(lines[1:])
    if "transfer-encoding" in headers:
        raise Refused(501, "Transfer-Encoding is not supported", name=name)
    return Head(name, _length(headers.get("content-length")), headers.get("expect", [""])[-1].lower() ==
                "100-continue")


def _headers(lines: list[str]) -> dict[str, list[str]]:
    """Header name (lower case) -> its values. Raises :class:`Refused` for a line that is not ``Name: value``."""
    headers: dict[str, list[str]] = {}
    for line in lines:
        match = HEADER.fullmatch(line)
        if match is None:
            raise Refused(400, "malformed header line", line=shown(line))
        headers.setdefault(match.group(1).lower(), []).append(match.group(2))
    return headers


def _length(values: list[str] | None) -> int | None:
    """The body's length from the ``Content-Length`` values, None without one. Raises :class:`Refused` for
    several, one that is not a number, or one over :data:`~winarm.guest.REPORT_MAX_BODY`."""
    if values is None:
        return None
    if len(values) > 1 or not re.fullmatch(r"[0-9]{1,10}", values[0]):
        raise Refused(400, "bad Content-Length", value=shown(",".join(values)))
    length = int(values[0])
    if length > REPORT_MAX_BODY:
        raise Refused(413, f"body over {REPORT_MAX_BODY} bytes", length=length)
    return length


async def read_head(reader: asyncio.StreamReader) -> tuple[Head, bytearray]:
    """Read up to the blank line that ends the head; returns the checked head and what came after it. Raises
    :class:`Refused` (over a limit, malformed, or the guest hung up)."""
    buffer = bytearray()
    while (end := HEAD_END.search(buffer)) is None:
        check_partial(buffer)
        chunk = await reader.read(CHUNK)
        if not chunk:
            raise Refused(400, "connection closed before the request was whole")
        buffer += chunk
    return parse_head(bytes(buffer[: end.start()])), buffer[end.end() :]


async def read_body(reader: asyncio.StreamReader, start: bytearray, length: int | None) -> bytes:
    """The body: ``start`` (what came with the head) and the rest up to ``length``. Raises :class:`Refused` for
    bytes without a length, a body shorter or longer than its length."""
    if length is None:
        if start:
            raise Refused(411, "a body without Content-Length")
        return b""
    body = start
    while len(body) < length:
        chunk = await reader.read(CHUNK)
        if not chunk:
            raise Refused(400, "body shorter than its Content-Length", length=length, got=len(body))
        body += chunk
    if len(body) > length:
        raise Refused(400, "more bytes than the Content-Length", length=length)
    return bytes(body)


@dataclass(frozen=True)
class Limits:
    """How much the channel takes at once: connections, and the token bucket's burst and rate a second."""

    max_connections: int = MAX_CONNECTIONS
    burst: int = RATE_BURST
    rate: float = RATE_PER_SECOND


class GuestChannel:
    """Serves the report socket at ``path`` (mode 0600) while entered, an async context manager.

    An accepted report is answered 204 and given to ``on_report``; every refusal goes to ``on_refused`` as a
    reason and details (through a :class:`~winarm.vm.channel_limits.RefusalLog`). Nothing a guest sends reaches
    the daemon as an error: an exception while serving a connection (``on_report``'s included) is answered 500
    and counted as a refusal. ``request_timeout``, ``limits`` and ``clock`` (read for the rate and the refusal
    log's summaries) are there for tests. :attr:`accepted` and :attr:`refused` count requests.
    """

    def __init__(self, path: Path, on_report: Callable[[Report], None],
                 on_refused: Callable[[str, dict[str, Any]], None], *, request_timeout: float = REQUEST_TIMEOUT,
                 limits: Limits = Limits(), clock: Clock = time.monotonic) -> None:
        self.path = path
        self.on_report = on_report
        self.refusals = RefusalLog(on_refused, clock)
        self.request_timeout = request_timeout
        self.max_connections = limits.max_connections
        self.bucket = TokenBucket(limits.burst, limits.rate, clock)
        self.accepted = 0
        self._active = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.AbstractServer | None = None

    @property
    def refused(self) -> int:
        """How many requests were refused, told one by one or in a summary."""
        return self.refusals.total

    async def __aenter__(self) -> GuestChannel:
        """Listen on :attr:`path` (mode 0600; a stale socket there is replaced). Raises OSError when the socket
        cannot be created."""
        self._server = await serve_private(self._serve, self.path)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        """Stop listening, end the connections under way and pass on the refusals still counted."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.refusals.flush()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: answer it, then close it, whatever the guest did. Cut off (not refused) when the
        channel closes meanwhile."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._active += 1
        try:
            try:
                status = await self._status(reader, writer)
            except Exception as error:  # noqa: BLE001 - nothing a guest sends may reach the daemon as an error
                status = 500
                self._refuse(Refused(500, "internal error", error=shown(f"{type(error).__name__}: {error}", 200)))
            await self._reply(reader, writer, status)
        except asyncio.CancelledError:
            pass  # the channel is closing; ending quietly keeps asyncio from logging the cancel as an error
        finally:
            writer.close()
            self._active -= 1
            if task is not None:
                self._tasks.discard(task)

    async def _status(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        """Read and judge one request: its answer's status. A report accepted goes to ``on_report``."""
        try:
            if self._active > self.max_connections:
                raise Refused(503, "too many connections", limit=self.max_connections)
            if not self.bucket.take():
                raise Refused(429, "too many reports", burst=self.bucket.burst, per_second=self.bucket.rate)
            try:
                async with asyncio.timeout(self.request_timeout):
                    report = await self._read(reader, writer)
            except TimeoutError:
                raise Refused(408, f"request not whole within {self.request_timeout:g} s") from None
            except (ConnectionError, asyncio.LimitOverrunError) as error:
                raise Refused(400, "connection lost", error=type(error).__name__) from None
        except Refused as refused:
            self._refuse(refused)
            return refused.status
        self.accepted += 1
        self.on_report(report)
        return 204

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Report:
        """The report of one request. Raises :class:`Refused`."""
        head, rest = await read_head(reader)
        if head.expect_continue and head.length and len(rest) < head.length:
            writer.write(CONTINUE)
            await writer.drain()
        body = await read_body(reader, rest, head.length)
        try:
            return Report(head.name, parse_body(body))
        except BodyError as error:
            raise Refused(400, "malformed body", name=head.name, error=str(error)) from None

    def _refuse(self, refused: Refused) -> None:
        self.refusals.refuse(refused.reason, {"status": refused.status, **refused.details})

    async def _reply(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int) -> None:
        """Send the answer and end the writing side, then drop what the guest still sends until it hangs up, for
        at most :data:`LINGER` seconds: closing with unread bytes would reset the connection, and a guest that
        sent more than was read would lose its answer. The caller closes."""
        try:
            writer.write(answer(status))
            writer.write_eof()
            async with asyncio.timeout(min(self.request_timeout, LINGER)):
                await writer.drain()
                while await reader.read(CHUNK):
                    pass
        except (OSError, TimeoutError):
            pass
