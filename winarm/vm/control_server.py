"""The daemon's side of the control socket: ``status``, ``down`` and ``screenshot`` for ``winarm status``,
``winarm down`` and ``winarm screenshot``.

Protocol (see :mod:`winarm.vm.control`): one JSON object on one line in, one JSON object on one line back, then
the connection is closed. The socket is created 0600 in the VM's run directory.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from winarm.vm.private_socket import serve_private
from winarm.vm.status import VmStatus

REQUEST_TIMEOUT = 5.0
"""Seconds a client has to send its request line."""
REQUEST_LIMIT = 4096
"""Bytes a request line may have: the longest real one (``{"command": "screenshot"}``) is 25."""


class ControlServer:
    """Serves the control socket while entered (an async context manager); closing removes nothing but the
    listener (the run directory goes with the run).

    ``status`` answers the current :class:`VmStatus`; ``down`` calls ``on_down`` and answers what it returns;
    ``screenshot`` awaits ``on_screenshot`` with a new PNG path in the socket's folder (the run directory, which
    only winarm's user can enter) and answers what it returns: the client copies the file from there and deletes
    it. Without ``on_screenshot`` the answer is an error.
    """

    def __init__(self, path: Path, status: Callable[[], VmStatus], on_down: Callable[[], dict[str, Any]],
                 on_screenshot: Callable[[Path], Awaitable[dict[str, Any]]] | None = None) -> None:
        self.path = path
        self.status = status
        self.on_down = on_down
        self.on_screenshot = on_screenshot
        self._screenshots = 0
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> ControlServer:
        """Listen on :attr:`path` (mode 0600). Raises OSError when the socket cannot be created."""
        self._server = await serve_private(self._serve, self.path, limit=REQUEST_LIMIT)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        """Stop listening; a reply under way is not waited for."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def answer(self, request: object) -> dict[str, Any]:
        """The reply to one decoded request."""
        command = request.get("command") if isinstance(request, dict) else None
        if command == "status":
            return self.status().as_json()
        if command == "down":
            return self.on_down()
        return {"error": f"unknown command {command!r}"}

    async def answer_async(self, request: object) -> dict[str, Any]:
        """The reply to one decoded request, the ones that wait (``screenshot``) included."""
        if not (isinstance(request, dict) and request.get("command") == "screenshot"):
            return self.answer(request)
        if self.on_screenshot is None:
            return {"error": "this daemon takes no screenshots"}
        self._screenshots += 1
        return await self.on_screenshot(self.path.parent / f"screenshot-{os.getpid()}-{self._screenshots}.png")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: a request line in, a reply line out. A client that is slow, sends a line over
        :data:`REQUEST_LIMIT`, no JSON or JSON nested past the parser's depth, or hangs up gets nothing; nothing a
        client does reaches the supervisor as an error."""
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            reply = await self.answer_async(json.loads(line or b"{}"))
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ValueError, RecursionError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
