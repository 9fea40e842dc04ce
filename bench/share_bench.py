#!/usr/bin/env python3
"""Benchmark of the shared folder (issue 4, performance): SMB throughput on loopback against a plain local copy of
the same data, smbd's start to accepting, and a guest's SMB session setup, side by side in one run.

winarm's smbd is started exactly as ``winarm up`` starts it (``Smbd.write_files``, ``Smbd.start``,
``Smbd.wait_ready``: the config, nss_wrapper identity files and guest login of :mod:`winarm.services.smbd`), sharing a
folder owned by ``--uid``:``--gid`` (default: the invoking user behind sudo, else 1000) under a 0755 directory in
/tmp. The client is smbprotocol's ``smbclient`` as a guest (NTLM, unsigned, no encryption), on 127.0.0.1 at smbd's
own port: no QEMU, no socat relay, no guest network, so this is the ceiling the share itself allows.

(1) start to accepting, over ``--starts``: from just before ``Smbd.start()`` (the spawn) to ``wait_ready``
    returning (smbd accepted a TCP connection and the listener is smbd's own), so both spawn and readiness count;
    median, min and max, against the target of at most 0.2 s. The files are rewritten (not timed) before each
    start, as at a VM's launch; smbd is stopped (SIGTERM, reaped) after each. One first start (cold caches for
    smbd's libraries) comes before and is printed on its own, not counted. ``wait_ready`` retries its connect
    every 5 ms, so the readiness figure has about 5 ms granularity.
(2) throughput, medians over ``--runs`` of ``--size-mib`` (256 MiB) of random bytes generated once in memory:
    (a) SMB write: ``open_file(..., "wb", buffering=0)``, writes of ``--chunk-mib`` (8 MiB) slices, close;
    (b) SMB read of that file: ``open_file(..., "rb", buffering=0)``, ``readinto`` slices of a preallocated buffer;
    (c) local write of the same bytes to a file in the same filesystem as the share (``open(..., "wb",
        buffering=0)``, the same chunks, close);
    (d) local read of it into the same kind of preallocated buffer.
    Every timing runs from before the open to after the close. Nothing is fsynced in either path: the client
    sends no SMB2 FLUSH (so Samba's ``strict sync`` never fsyncs) and a close fsyncs in neither Samba nor Linux;
    both writes end with the data in the page cache (dirty). Both reads therefore come from the page cache too
    (the file was just written): this compares the protocol and process overhead, not the disk. Each write is
    preceded (untimed) by deleting that path's own previous file, so every write allocates a new file and gets the
    page-cache pages its predecessor just freed: on a VM that hands free memory back to its host (free page
    reporting), a write that must take never-touched pages instead runs several times slower, whichever path it
    is, so neither path may inherit the other's freed pages. One warm-up run of each path comes first (printed,
    not counted: it has no predecessor to recycle); the counted runs alternate the order (SMB first, then local
    first) so drift hits both alike. The bytes read back are compared with the source on every run, and their
    sha256, the SMB file's owner and size are checked in the warm-up run. smbprotocol does one request at a time
    (no pipelining); the negotiated max read/write sizes and the largest request actually sent are printed.
(3) guest session setup, over ``--sessions``: TCP connect + negotiate, NTLM guest session setup, tree connect to
    the share (as winarm's health check opens one), median; the disconnect is not timed.

Everything made lives in one directory under /tmp, removed at the end, on failure and on SIGTERM; smbd is
stopped on every path (and dies with this process anyway: winarm spawns it with PR_SET_PDEATHSIG). Run as root
(smbd must be able to act as the share's owner). Usage:
    sudo .venv/bin/python bench/share_bench.py [--runs 5] [--size-mib 256] [--starts 9] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from winarm.config.share import Share, ShareSettings  # noqa: E402
from winarm.services.smbd import Smbd, check_available, free_port  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
START_TARGET = 0.2
SHARE = "Data"
HOST = "127.0.0.1"


def med(values: list[float]) -> float:
    return statistics.median(values)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def owner_ids(uid_arg: int | None, gid_arg: int | None) -> tuple[int, int]:
    """The share's owner: --uid/--gid, else the user behind sudo, else 1000 (as root) or oneself."""
    if uid_arg is not None:
        uid = uid_arg
    elif os.environ.get("SUDO_UID", "").isdigit():
        uid = int(os.environ["SUDO_UID"])
    else:
        uid = 1000 if os.geteuid() == 0 else os.geteuid()
    if gid_arg is not None:
        return uid, gid_arg
    if uid_arg is None and os.environ.get("SUDO_GID", "").isdigit():
        return uid, int(os.environ["SUDO_GID"])
    try:
        return uid, pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid, uid


# ------------------------------------------------------------------------------------------------------- smbd


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


# ----------------------------------------------------------------------------------------------------- copies


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


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


# ----------------------------------------------------------------------------------------------------- session


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


# ------------------------------------------------------------------------------------------------------- main


def main() -> int:  # noqa: C901, PLR0915
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="throughput runs [5]")
    parser.add_argument("--size-mib", type=int, default=256, help="bytes written and read per run, MiB [256]")
    parser.add_argument("--chunk-mib", type=int, default=8, help="bytes per write/readinto call, MiB [8]")
    parser.add_argument("--starts", type=int, default=9, help="timed smbd starts [9]")
    parser.add_argument("--sessions", type=int, default=9, help="timed guest session setups [9]")
    parser.add_argument("--uid", type=int, help="the share's owner uid [SUDO_UID, else 1000 as root]")
    parser.add_argument("--gid", type=int, help="the share's owner gid [SUDO_GID, else the uid's group]")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    if min(args.runs, args.size_mib, args.chunk_mib, args.starts, args.sessions) < 1:
        parser.error("--runs, --size-mib, --chunk-mib, --starts and --sessions must be at least 1")
    check_available()
    import smbclient

    def on_term(signum: int, _frame: Any) -> NoReturn:
        raise SystemExit(128 + signum)  # so the finally below stops smbd and removes the directory

    signal.signal(signal.SIGTERM, on_term)

    uid, gid = owner_ids(args.uid, args.gid)
    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    smbd_version = "smbd " + (subprocess.run(["smbd", "--version"], capture_output=True, text=True,
                                             check=False).stdout.strip().removeprefix("Version ") or "?")
    from importlib.metadata import version

    print(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / GiB:.0f} GiB, {os.uname().machine}, "
          f"Python {sys.version.split()[0]}, {smbd_version}, smbprotocol {version('smbprotocol')}; "
          f"{load_line()} at start", flush=True)

    work = Path(tempfile.mkdtemp(prefix=f"wsb-{os.getpid()}-", dir="/tmp"))
    smbd: Smbd | None = None
    registered = False
    try:
        os.chmod(work, 0o755)
        folder = work / "share"
        folder.mkdir(mode=0o755)
        os.chown(folder, uid, gid)
        local_dir = work / "local"
        local_dir.mkdir(mode=0o755)
        samba_dir = work / "samba"
        settings = ShareSettings(shares=(Share(SHARE, folder),), uid=uid, gid=gid)
        port = free_port()
        fs = subprocess.run(["findmnt", "-no", "FSTYPE", "-T", str(work)], capture_output=True, text=True,
                            check=False).stdout.strip() or "?"
        print(f"share {folder} ({fs}) owned by {uid}:{gid}, guest login, smbd on {HOST}:{port}", flush=True)

        # --- (1) start to accepting; no SMB client exists yet, so spawning happens in a single-threaded process
        first, first_times = start_once(settings, samba_dir, port)
        stop(first)
        starts: list[tuple[float, float, float]] = []
        for _ in range(args.starts):
            smbd, times = start_once(settings, samba_dir, port)
            starts.append(times)
            stop(smbd)
            smbd = None
        totals = [t[2] for t in starts]

        # --- the smbd the client uses
        smbd, _ = start_once(settings, samba_dir, port)
        smbclient.ClientConfig(require_secure_negotiate=False)
        smbclient.register_session(HOST, port=port, username="guest", password="", auth_protocol="ntlm",
                                   require_signing=False)
        registered = True

        data = os.urandom(size)
        source = memoryview(data)
        digest = hashlib.sha256(data).hexdigest()
        buffer = bytearray(size)
        target = memoryview(buffer)
        zero_view = (ctypes.c_char * size).from_buffer(buffer)
        smb_path = rf"\\{HOST}\{SHARE}\bench.bin"
        host_path = folder / "bench.bin"
        local_path = local_dir / "bench.bin"
        writes, reads = Counter(), Counter()
        limits: dict[str, int] = {}

        def smb_write() -> None:
            with smbclient.open_file(smb_path, "wb", buffering=0, port=port) as handle:
                if not limits:
                    limits.update(max_write=handle.fd.connection.max_write_size,
                                  max_read=handle.fd.connection.max_read_size)
                write_all(handle, source, chunk, writes)

        def smb_read() -> int:
            with smbclient.open_file(smb_path, "rb", buffering=0, port=port) as handle:
                return read_all(handle, target, chunk, reads)

        def local_write() -> None:
            with open(local_path, "wb", buffering=0) as handle:
                write_all(handle, source, chunk)

        def local_read() -> int:
            with open(local_path, "rb", buffering=0) as handle:
                return read_all(handle, target, chunk)

        # --- (2) throughput: one warm-up run (printed, not counted), then runs alternating which path goes first
        secs: dict[str, list[float]] = {"smb-write": [], "smb-read": [], "local-write": [], "local-read": []}
        warm: dict[str, float] = {}
        notes: list[str] = []

        def measure(way: str, first: bool, into: Callable[[str, float], None]) -> None:
            (host_path if way == "smb" else local_path).unlink(missing_ok=True)  # its pages go to this write
            seconds, _ = timed(smb_write if way == "smb" else local_write)
            into(f"{way}-write", seconds)
            seconds, got = timed(smb_read if way == "smb" else local_read)
            into(f"{way}-read", seconds)
            if got != size or buffer != data:
                raise RuntimeError(f"{way} read back {got} bytes that differ from what was written")
            if first:
                if hashlib.sha256(buffer).hexdigest() != digest:
                    raise RuntimeError(f"{way} read back bytes whose sha256 differs")
                if way == "smb":
                    st = host_path.stat()
                    remote = smbclient.stat(smb_path, port=port)
                    notes.append(f"the SMB file on the host: {st.st_size} bytes, owner {st.st_uid}:{st.st_gid}, "
                                 f"mode {st.st_mode & 0o7777:04o}; smbclient.stat size {remote.st_size}")
                    if (st.st_uid, st.st_gid, st.st_size) != (uid, gid, size):
                        raise RuntimeError(f"the file written over SMB is {st.st_uid}:{st.st_gid}, "
                                           f"{st.st_size} bytes; expected {uid}:{gid}, {size}")
            ctypes.memset(ctypes.addressof(zero_view), 0, size)  # a short read cannot pass on these bytes

        for way in ("smb", "local"):
            measure(way, True, warm.__setitem__)
        for index in range(args.runs):
            for way in ("smb", "local") if index % 2 == 0 else ("local", "smb"):
                measure(way, False, lambda key, seconds: secs[key].append(seconds))

        # --- (3) guest session setup
        sessions = [session_setup(port) for _ in range(args.sessions)]

        # --- the table
        mib = args.size_mib

        def rate(key: str) -> float:
            return float(mib / med(secs[key]))

        print()
        print(f"(1) smbd start to accepting (spawn + wait_ready), {args.starts} starts, ms"
              f"{'median':>12}{'min':>9}{'max':>9}")
        for label, pick in (("total: before spawn to wait_ready returning", 2), ("  spawn (Smbd.start)", 0),
                            ("  wait_ready (accepting, listener is smbd's)", 1)):
            values = [t[pick] * 1000 for t in starts]
            print(f"    {label:<59}{med(values):>12.1f}{min(values):>9.1f}{max(values):>9.1f}")
        print(f"    first start before them (cold caches), not counted: {first_times[2] * 1000:.1f} ms")
        print(f"    target <= {START_TARGET * 1000:.0f} ms: median {med(totals) * 1000:.1f} ms, max "
              f"{max(totals) * 1000:.1f} ms: {'met' if max(totals) <= START_TARGET else 'MISSED'}"
              f"{'' if max(totals) <= START_TARGET or med(totals) > START_TARGET else ' (median met)'}")
        print()
        print(f"(2) {mib} MiB, {args.chunk_mib} MiB calls, medians of {args.runs}, MiB/s"
              f"{'SMB':>18}{'local':>10}{'SMB/local':>11}{'SMB min-max':>16}")
        for label, key in (("write (open, write, close; no fsync)", "write"), ("read (page cache)", "read")):
            smb, local = rate(f"smb-{key}"), rate(f"local-{key}")
            lo, hi = mib / max(secs[f"smb-{key}"]), mib / min(secs[f"smb-{key}"])
            print(f"    {label:<52}{smb:>10.0f}{local:>10.0f}{smb / local:>10.2f}x{f'{lo:.0f}-{hi:.0f}':>16}")
        print(f"    warm-up run, not counted, MiB/s: SMB write {mib / warm['smb-write']:.0f}, read "
              f"{mib / warm['smb-read']:.0f}; local write {mib / warm['local-write']:.0f}, read "
              f"{mib / warm['local-read']:.0f}")
        print(f"    seconds per run, SMB write {', '.join(f'{s:.2f}' for s in secs['smb-write'])}; "
              f"SMB read {', '.join(f'{s:.2f}' for s in secs['smb-read'])}")
        print(f"    seconds per run, local write {', '.join(f'{s:.3f}' for s in secs['local-write'])}; "
              f"local read {', '.join(f'{s:.3f}' for s in secs['local-read'])}")
        print(f"    negotiated max write {limits['max_write'] / MiB:g} MiB, max read {limits['max_read'] / MiB:g} MiB; "
              f"largest request sent: write {writes.largest / MiB:g} MiB, read {reads.largest / MiB:g} MiB "
              f"({writes.requests} writes, {reads.requests} reads over {args.runs + 1} runs with the warm-up)")
        for note in notes:
            print(f"    {note}; sha256 checked once per path, bytes compared every run")
        print()
        parts = {k: med([s[k] for s in sessions]) * 1000 for k in ("total", "negotiate", "session", "tree")}
        print(f"(3) guest session setup, median of {args.sessions}: {parts['total']:.1f} ms (TCP + negotiate "
              f"{parts['negotiate']:.1f}, NTLM guest session {parts['session']:.1f}, tree connect {parts['tree']:.1f})")
        print(f"{load_line()} at the end ({os.cpu_count()} CPUs; other work may share them)")

        if args.json:
            doc = {
                "size_mib": mib, "chunk_mib": args.chunk_mib, "runs": args.runs, "fsync": False,
                "smbd": smbd_version, "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()[:2],
                "start": {
                    "target_s": START_TARGET, "first_cold_s": first_times[2],
                    "total_s": totals, "spawn_s": [t[0] for t in starts], "wait_ready_s": [t[1] for t in starts],
                    "median_s": med(totals), "min_s": min(totals), "max_s": max(totals),
                    "met": max(totals) <= START_TARGET,
                },
                "throughput": {
                    "seconds": secs, "warmup_seconds": warm,
                    "median_mib_s": {k: mib / med(v) for k, v in secs.items()},
                    "ratio_smb_local": {k: rate(f"smb-{k}") / rate(f"local-{k}") for k in ("write", "read")},
                    "max_write_size": limits["max_write"], "max_read_size": limits["max_read"],
                    "largest_write": writes.largest, "largest_read": reads.largest,
                },
                "session_setup": {"seconds": sessions, "median_ms": parts},
            }
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
            print(f"numbers written to {args.json}")
    finally:
        if registered:
            with contextlib.suppress(Exception):
                smbclient.reset_connection_cache(fail_on_error=False)
        stop(smbd)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
