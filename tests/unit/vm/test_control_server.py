"""The daemon's control socket against hostile clients (issue 14: a request nested deeply enough raised an
uncaught RecursionError; a request had no size limit). Real unix sockets, the real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from winarm.vm.control_server import REQUEST_LIMIT, ControlServer
from winarm.vm.status import VmStatus


async def exchange(path: Path, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def test_hostile_requests_get_nothing_and_break_nothing(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[bytes], bytes, list[dict[str, Any]]]:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
        path = tmp_path / "control.sock"
        server = ControlServer(path, lambda: VmStatus(name="vm", state="running"), lambda: {"ok": True})
        async with server:
            hostile = [
                b"[" * 3000 + b"\n",                    # nested past the JSON parser's depth
                b'{"command": "' + b"x" * 100_000 + b'"}\n',  # far over the size limit
                b"\xff\xfe not json\n",
            ]
            replies = [await exchange(path, payload) for payload in hostile]
            after = await exchange(path, b'{"command": "status"}\n')
        return replies, after, loop_errors

    replies, after, loop_errors = asyncio.run(scenario())
    assert replies == [b"", b"", b""]
    assert json.loads(after)["state"] == "running"
    assert loop_errors == [], loop_errors


def test_the_limit_leaves_room_for_every_real_request() -> None:
    longest = json.dumps({"command": "screenshot"}).encode() + b"\n"
    assert len(longest) * 10 < REQUEST_LIMIT
