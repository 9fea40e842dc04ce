"""The SMB side of ``share_bench.py``: winarm's smbd started and timed as ``winarm up`` starts it, the byte copies
through an unbuffered handle (SMB or local), one guest session as winarm's health check opens it, and the paths
a throughput run writes and reads. Failures raise what smbd, smbprotocol or the OS raise."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import BenchError, timed

from winarm.config.share import ShareSettings
from winarm.services.smbd import Smbd

SHARE = "Data"
HOST = "127.0.0.1"


async def timed_start(smbd: Smbd) -> tuple[float, float, float]:
    """Start smbd and wait until it accepts: (spawn seconds, wait_ready's own seconds, total from before spawn)."""
    t0 = time.perf_counter()
    smbd.start()
    t1 = time.perf_counter()
    waited = await smbd.wait_ready()
    t2 = time.perf_counter()
    return t1 - t0, waited, t2 - t0


def start_once(settings: ShareSettings, samba_dir: Path, port: int) -> tuple[Smbd, tuple[float, float, float]]:
    """A fresh Smbd (files rewritten, untimed) started and timed; on failure it is stopped before raising."""
    smbd = Smbd(settings, samba_dir, port=port)
    smbd.write_files()
    try:
        return smbd, asyncio.run(timed_start(smbd))
    except BaseException:
        stop(smbd)
        raise


def stop(smbd: Smbd | None) -> None:
    if smbd is not None and smbd.proc is not None:
        asyncio.run(smbd.stop())


class Counter:
    """Requests sent and the largest one, per SMB direction."""

    def __init__(self) -> None:
        self.requests = 0
        self.largest = 0

    def add(self, size: int) -> None:
        self.requests += 1
        self.largest = max(self.largest, size)


def write_all(handle: Any, view: memoryview, chunk: int, counter: Counter | None = None) -> None:
    """Write all of ``view`` through an unbuffered handle, ``chunk`` bytes a call, looping on short writes."""
    offset = 0
    while offset < len(view):
        written = handle.write(view[offset:offset + chunk])
        if not written:
            raise OSError(f"write returned {written} at offset {offset}")
        if counter is not None:
            counter.add(written)
        offset += written


def read_all(handle: Any, view: memoryview, chunk: int, counter: Counter | None = None) -> int:
    """Read into ``view`` through an unbuffered handle, ``chunk`` bytes a call, until it is full or EOF."""
    offset = 0
    while offset < len(view):
        got = handle.readinto(view[offset:offset + chunk])
        if not got:
            break
        if counter is not None:
            counter.add(got)
        offset += got
    return offset


def session_setup(port: int) -> dict[str, float]:
    """A guest SMB session as winarm's health check opens one; seconds for each step (disconnect not timed)."""
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    t0 = time.perf_counter()
    connection = Connection(uuid.uuid4(), HOST, port, require_signing=False)
    connection.connect(timeout=5)
    try:
        t1 = time.perf_counter()
        session = Session(connection, "guest", "", require_encryption=False, auth_protocol="ntlm")
        session.connect()
        t2 = time.perf_counter()
        tree = TreeConnect(session, f"\\\\{HOST}\\{SHARE}")
        tree.connect(require_secure_negotiate=False)
        t3 = time.perf_counter()
        tree.disconnect()
        session.disconnect()
    finally:
        connection.disconnect(close=True)
    return {"negotiate": t1 - t0, "session": t2 - t1, "tree": t3 - t2, "total": t3 - t0}


class Throughput:
    """The same random bytes (generated once) written and read back through SMB and through a local file in the
    same filesystem, each timing from before the open to after the close; seconds per ``way-direction``."""

    def __init__(self, port: int, folder: Path, local_dir: Path, *, size: int, chunk: int,
                 owner: tuple[int, int]) -> None:
        import smbclient

        self.smbclient: Any = smbclient
        self.port, self.size, self.chunk, self.owner = port, size, chunk, owner
        self.data = os.urandom(size)
        self.source = memoryview(self.data)
        self.digest = hashlib.sha256(self.data).hexdigest()
        self.buffer = bytearray(size)
        self.target = memoryview(self.buffer)
        self.zero_view = (ctypes.c_char * size).from_buffer(self.buffer)
        self.smb_path = rf"\\{HOST}\{SHARE}\bench.bin"
        self.host_path = folder / "bench.bin"
        self.local_path = local_dir / "bench.bin"
        self.writes, self.reads = Counter(), Counter()
        self.limits: dict[str, int] = {}
        self.notes: list[str] = []
        self.secs: dict[str, list[float]] = {"smb-write": [], "smb-read": [], "local-write": [], "local-read": []}
        self.warm: dict[str, float] = {}

    def smb_write(self) -> None:
        with self.smbclient.open_file(self.smb_path, "wb", buffering=0, port=self.port) as handle:
            if not self.limits:
                self.limits.update(max_write=handle.fd.connection.max_write_size,
                                   max_read=handle.fd.connection.max_read_size)
            write_all(handle, self.source, self.chunk, self.writes)

    def smb_read(self) -> int:
        with self.smbclient.open_file(self.smb_path, "rb", buffering=0, port=self.port) as handle:
            return read_all(handle, self.target, self.chunk, self.reads)

    def local_write(self) -> None:
        with open(self.local_path, "wb", buffering=0) as handle:
            write_all(handle, self.source, self.chunk)

    def local_read(self) -> int:
        with open(self.local_path, "rb", buffering=0) as handle:
            return read_all(handle, self.target, self.chunk)

    def measure(self, way: str, first: bool, into: Callable[[str, float], None]) -> None:
        """One write and read back of ``way`` ("smb" or "local"), the bytes compared. Raises BenchError."""
        (self.host_path if way == "smb" else self.local_path).unlink(missing_ok=True)  # its pages go to this write
        seconds, _ = timed(self.smb_write if way == "smb" else self.local_write)
        into(f"{way}-write", seconds)
        seconds, got = timed(self.smb_read if way == "smb" else self.local_read)
        into(f"{way}-read", seconds)
        if got != self.size or self.buffer != self.data:
            raise BenchError(f"{way} read back {got} bytes that differ from what was written")
        if first:
            self._check_first(way)
        ctypes.memset(ctypes.addressof(self.zero_view), 0, self.size)  # a short read cannot pass on these bytes

    def _check_first(self, way: str) -> None:
        """The warm-up run's extra checks: the sha256, and the SMB file's owner and size on the host."""
        if hashlib.sha256(self.buffer).hexdigest() != self.digest:
            raise BenchError(f"{way} read back bytes whose sha256 differs")
        if way != "smb":
            return
        st = self.host_path.stat()
        remote = self.smbclient.stat(self.smb_path, port=self.port)
        self.notes.append(f"the SMB file on the host: {st.st_size} bytes, owner {st.st_uid}:{st.st_gid}, "
                          f"mode {st.st_mode & 0o7777:04o}; smbclient.stat size {remote.st_size}")
        if (st.st_uid, st.st_gid, st.st_size) != (*self.owner, self.size):
            raise BenchError(f"the file written over SMB is {st.st_uid}:{st.st_gid}, {st.st_size} bytes; "
                             f"expected {self.owner[0]}:{self.owner[1]}, {self.size}")

    def run(self, runs: int) -> None:
        """One warm-up run of each path (kept apart, not counted), then ``runs`` alternating which goes first."""
        for way in ("smb", "local"):
            self.measure(way, True, self.warm.__setitem__)
        for index in range(runs):
            for way in ("smb", "local") if index % 2 == 0 else ("local", "smb"):
                self.measure(way, False, lambda key, seconds: self.secs[key].append(seconds))
