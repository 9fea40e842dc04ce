"""A guest channel on a real unix socket in a test's directory, with a clock the test moves, and a client that
speaks to it the way the guest's curl (through socat) does: bytes in, the whole answer out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winarm.vm.guest_channel import GuestChannel
from winarm.vm.report_body import Report

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


@dataclass
class Rig:
    """What the channel told the daemon, and the time its clock reads."""

    path: Path
    now: float = 1000.0
    reports: list[Report] = field(default_factory=list)
    refusals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    channel: GuestChannel | None = None

    def clock(self) -> float:
        return self.now

    def refused(self, reason: str, details: dict[str, Any]) -> None:
        self.refusals.append((reason, details))

    async def send(self, data: bytes, *, eof: bool = False) -> bytes:
        """Send ``data`` (then end the writing side when ``eof``) and read the answer up to the channel's close."""
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        try:
            writer.write(data)
            if eof:
                writer.write_eof()
            return await reader.read()
        finally:
            writer.close()

    async def status(self, data: bytes, *, eof: bool = False) -> int:
        """The status code of the answer to ``data``."""
        return status_of(await self.send(data, eof=eof))

    async def good(self, name: str = "desktop-ready") -> None:
        """A good report still goes through: answered 204 and handed to the daemon."""
        before = len(self.reports)
        assert await self.send(post(name, b"user Docker\n")) == NO_CONTENT
        assert len(self.reports) == before + 1 and self.reports[-1] == Report(name, (("user", "Docker"),))


def status_of(answer: bytes) -> int:
    """The status code of a whole answer, checked to be one status line, ``Connection: close`` and no body."""
    line, _, rest = answer.partition(b"\r\n")
    assert rest == b"Connection: close\r\n\r\n", answer
    version, code, _ = line.decode("ascii").split(" ", 2)
    assert version == "HTTP/1.1"
    return int(code)


def post(name: str, body: bytes = b"", *, version: str = "1.1", headers: str = "", newline: str = "\r\n") -> bytes:
    """A report as curl sends one (``--data-binary``): request line, Host, Content-Length, the body."""
    head = [f"POST /report/{name} HTTP/{version}", "Host: 10.0.2.5", f"Content-Length: {len(body)}"]
    head += [line for line in headers.split("\n") if line]
    return (newline.join(head) + newline + newline).encode() + body


def run(tmp_path: Path, scenario: Callable[[Rig], Awaitable[None]], **options: Any) -> Rig:
    """Serve a channel at ``tmp_path/report.sock`` while ``scenario`` runs (bounded at 30 s, which only a hung
    channel reaches); returns the rig to look at afterwards."""
    rig = Rig(tmp_path / "report.sock")

    async def main() -> None:
        async with GuestChannel(rig.path, rig.reports.append, rig.refused, clock=rig.clock, **options) as channel:
            rig.channel = channel
            await scenario(rig)

    asyncio.run(asyncio.wait_for(main(), 30))
    return rig


def reasons(rig: Rig) -> list[str]:
    return [reason for reason, _ in rig.refusals]
