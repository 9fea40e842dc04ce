"""The daemon's unix sockets (control, guest channel): created mode 0600 in the VM's 0700 run directory."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve_private(handler: Handler, path: Path, limit: int = 2**16) -> asyncio.AbstractServer:
    """Listen on ``path`` with ``handler``; the socket is created mode 0600 (the umask is set around its creation,
    so it is never more open, not even for an instant). ``limit``: the longest line a reader's ``readline``
    takes (a longer one raises ValueError there). Raises OSError when the socket cannot be created."""
    old = os.umask(0o177)
    try:
        return await asyncio.start_unix_server(handler, path=os.fspath(path), limit=limit)
    finally:
        os.umask(old)
