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
(smbd must be able to act as the share's owner). ``--smoke`` is one short run of each part (2 starts, 16 MiB
once, 2 sessions), which checks that every median is a positive number. Usage:
    sudo .venv/bin/python bench/share_bench.py [--runs 5] [--size-mib 256] [--starts 9] [--json FILE] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import MiB, load_line, machine_line, med, sane, workspace
from _share_smb import HOST, SHARE, Throughput, session_setup, start_once, stop

from winarm.config.share import Share, ShareSettings
from winarm.services.smbd import Smbd, check_available, free_port

START_TARGET = 0.2


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


def measure_starts(settings: ShareSettings, samba_dir: Path, port: int, count: int) -> tuple[float, list[Any]]:
    """(1): one first start (cold caches, not counted), then ``count`` timed starts, each stopped after; the
    first's total seconds and each start's (spawn, wait_ready, total). No SMB client exists yet, so spawning
    happens in a single-threaded process."""
    first, first_times = start_once(settings, samba_dir, port)
    stop(first)
    starts = []
    for _ in range(count):
        smbd, times = start_once(settings, samba_dir, port)
        starts.append(times)
        stop(smbd)
    return first_times[2], starts


def print_starts(starts: list[tuple[float, float, float]], first_cold: float) -> None:
    totals = [t[2] for t in starts]
    print()
    print(f"(1) smbd start to accepting (spawn + wait_ready), {len(starts)} starts, ms"
          f"{'median':>12}{'min':>9}{'max':>9}")
    for label, pick in (("total: before spawn to wait_ready returning", 2), ("  spawn (Smbd.start)", 0),
                        ("  wait_ready (accepting, listener is smbd's)", 1)):
        values = [t[pick] * 1000 for t in starts]
        print(f"    {label:<59}{med(values):>12.1f}{min(values):>9.1f}{max(values):>9.1f}")
    print(f"    first start before them (cold caches), not counted: {first_cold * 1000:.1f} ms")
    print(f"    target <= {START_TARGET * 1000:.0f} ms: median {med(totals) * 1000:.1f} ms, max "
          f"{max(totals) * 1000:.1f} ms: {'met' if max(totals) <= START_TARGET else 'MISSED'}"
          f"{'' if max(totals) <= START_TARGET or med(totals) > START_TARGET else ' (median met)'}")


def print_throughput(way: Throughput, args: argparse.Namespace) -> None:
    mib, secs, warm = args.size_mib, way.secs, way.warm
    print()
    print(f"(2) {mib} MiB, {args.chunk_mib} MiB calls, medians of {args.runs}, MiB/s"
          f"{'SMB':>18}{'local':>10}{'SMB/local':>11}{'SMB min-max':>16}")
    for label, key in (("write (open, write, close; no fsync)", "write"), ("read (page cache)", "read")):
        smb, local = mib / med(secs[f"smb-{key}"]), mib / med(secs[f"local-{key}"])
        lo, hi = mib / max(secs[f"smb-{key}"]), mib / min(secs[f"smb-{key}"])
        print(f"    {label:<52}{smb:>10.0f}{local:>10.0f}{smb / local:>10.2f}x{f'{lo:.0f}-{hi:.0f}':>16}")
    print(f"    warm-up run, not counted, MiB/s: SMB write {mib / warm['smb-write']:.0f}, read "
          f"{mib / warm['smb-read']:.0f}; local write {mib / warm['local-write']:.0f}, read "
          f"{mib / warm['local-read']:.0f}")
    print(f"    seconds per run, SMB write {', '.join(f'{s:.2f}' for s in secs['smb-write'])}; "
          f"SMB read {', '.join(f'{s:.2f}' for s in secs['smb-read'])}")
    print(f"    seconds per run, local write {', '.join(f'{s:.3f}' for s in secs['local-write'])}; "
          f"local read {', '.join(f'{s:.3f}' for s in secs['local-read'])}")
    print(f"    negotiated max write {way.limits['max_write'] / MiB:g} MiB, max read {way.limits['max_read'] / MiB:g} "
          f"MiB; largest request sent: write {way.writes.largest / MiB:g} MiB, read {way.reads.largest / MiB:g} MiB "
          f"({way.writes.requests} writes, {way.reads.requests} reads over {args.runs + 1} runs with the warm-up)")
    for note in way.notes:
        print(f"    {note}; sha256 checked once per path, bytes compared every run")


def session_parts(sessions: list[dict[str, float]]) -> dict[str, float]:
    return {k: med([s[k] for s in sessions]) * 1000 for k in ("total", "negotiate", "session", "tree")}


def print_sessions(sessions: list[dict[str, float]]) -> None:
    parts = session_parts(sessions)
    print()
    print(f"(3) guest session setup, median of {len(sessions)}: {parts['total']:.1f} ms (TCP + negotiate "
          f"{parts['negotiate']:.1f}, NTLM guest session {parts['session']:.1f}, tree connect {parts['tree']:.1f})")


def json_doc(args: argparse.Namespace, smbd_version: str, starts: tuple[float, list[Any]], way: Throughput,
             sessions: list[dict[str, float]]) -> dict[str, Any]:
    """Every number of the run, for ``--json``."""
    first_cold, times = starts
    totals = [t[2] for t in times]
    mib, secs = args.size_mib, way.secs
    return {
        "size_mib": mib, "chunk_mib": args.chunk_mib, "runs": args.runs, "fsync": False,
        "smbd": smbd_version, "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()[:2],
        "start": {
            "target_s": START_TARGET, "first_cold_s": first_cold,
            "total_s": totals, "spawn_s": [t[0] for t in times], "wait_ready_s": [t[1] for t in times],
            "median_s": med(totals), "min_s": min(totals), "max_s": max(totals), "met": max(totals) <= START_TARGET,
        },
        "throughput": {
            "seconds": secs, "warmup_seconds": way.warm,
            "median_mib_s": {k: mib / med(v) for k, v in secs.items()},
            "ratio_smb_local": {k: med(secs[f"local-{k}"]) / med(secs[f"smb-{k}"]) for k in ("write", "read")},
            "max_write_size": way.limits["max_write"], "max_read_size": way.limits["max_read"],
            "largest_write": way.writes.largest, "largest_read": way.reads.largest,
        },
        "session_setup": {"seconds": sessions, "median_ms": session_parts(sessions)},
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="throughput runs [5]")
    parser.add_argument("--size-mib", type=int, default=256, help="bytes written and read per run, MiB [256]")
    parser.add_argument("--chunk-mib", type=int, default=8, help="bytes per write/readinto call, MiB [8]")
    parser.add_argument("--starts", type=int, default=9, help="timed smbd starts [9]")
    parser.add_argument("--sessions", type=int, default=9, help="timed guest session setups [9]")
    parser.add_argument("--uid", type=int, help="the share's owner uid [SUDO_UID, else 1000 as root]")
    parser.add_argument("--gid", type=int, help="the share's owner gid [SUDO_GID, else the uid's group]")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--smoke", action="store_true", help="2 starts, 16 MiB once, 2 sessions; figures checked")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.size_mib, args.chunk_mib, args.starts, args.sessions = 1, 16, 4, 2, 2
    if min(args.runs, args.size_mib, args.chunk_mib, args.starts, args.sessions) < 1:
        parser.error("--runs, --size-mib, --chunk-mib, --starts and --sessions must be at least 1")
    return args


def check_sane(starts: list[Any], way: Throughput, sessions: list[dict[str, float]]) -> None:
    """Every median printed is a positive number (``--smoke``). Raises BenchError."""
    sane("smbd start", med([t[2] for t in starts]))
    for key, values in way.secs.items():
        sane(key, med(values))
    sane("session setup", session_parts(sessions)["total"])


def main() -> int:
    args = parse_args()
    check_available()
    uid, gid = owner_ids(args.uid, args.gid)
    smbd_version = "smbd " + (subprocess.run(["smbd", "--version"], capture_output=True, text=True,
                                             check=False).stdout.strip().removeprefix("Version ") or "?")
    from importlib.metadata import version

    client_version = f"smbprotocol {version('smbprotocol')}"
    print(f"{machine_line(smbd_version, client_version)}; {load_line()} at start", flush=True)
    with workspace(f"wsb-{os.getpid()}-") as work:
        os.chmod(work, 0o755)
        folder = work / "share"
        folder.mkdir(mode=0o755)
        os.chown(folder, uid, gid)
        (work / "local").mkdir(mode=0o755)
        settings = ShareSettings(shares=(Share(SHARE, folder),), uid=uid, gid=gid)
        port = free_port()
        fs = subprocess.run(["findmnt", "-no", "FSTYPE", "-T", str(work)], capture_output=True, text=True,
                            check=False).stdout.strip() or "?"
        print(f"share {folder} ({fs}) owned by {uid}:{gid}, guest login, smbd on {HOST}:{port}", flush=True)
        starts = measure_starts(settings, work / "samba", port, args.starts)
        smbd: Smbd | None = None
        way = Throughput(port, folder, work / "local", size=args.size_mib * MiB, chunk=args.chunk_mib * MiB,
                         owner=(uid, gid))
        try:
            smbd, _ = start_once(settings, work / "samba", port)
            way.smbclient.ClientConfig(require_secure_negotiate=False)
            way.smbclient.register_session(HOST, port=port, username="guest", password="", auth_protocol="ntlm",
                                           require_signing=False)
            way.run(args.runs)
            sessions = [session_setup(port) for _ in range(args.sessions)]
        finally:
            with contextlib.suppress(Exception):
                way.smbclient.reset_connection_cache(fail_on_error=False)
            stop(smbd)
        print_starts(starts[1], starts[0])
        print_throughput(way, args)
        print_sessions(sessions)
        print(f"{load_line()} at the end ({os.cpu_count()} CPUs; other work may share them)")
        if args.json:
            args.json.write_text(json.dumps(json_doc(args, smbd_version, starts, way, sessions), indent=2) + "\n")
            print(f"numbers written to {args.json}")
        if args.smoke:
            check_sane(starts[1], way, sessions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
