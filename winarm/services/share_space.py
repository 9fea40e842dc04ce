"""The share's free-space watermark: the guest must not fill the host's disk through the share (issue 14).

Every health check (5 s) looks at the free space of each writable shared folder's file system. Below
``min_free`` the shares turn read-only: smb.conf is rewritten with ``read only = yes``, smbd is told to reload
it (``smbcontrol reload-config``) and to close the shares' connections (``close-share``), since a tree
connection keeps the mode it was made with; Windows reconnects by itself and then reads but cannot write. What
was already written stays. Once twice ``min_free`` is free again the shares are writable the same way.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from winarm.files import write_atomic
from winarm.services.smb_conf import render_conf

if TYPE_CHECKING:
    from winarm.services.smbd import Smbd

ROOM_FACTOR = 2
"""Writable again once this many times the watermark is free: no flapping at the line."""


@dataclass(frozen=True)
class Space:
    """The tightest writable shared folder: its free bytes, and where."""

    free: int
    path: Path


def tightest(smbd: Smbd) -> Space | None:
    """The writable shared folder with the least free space (None: all read-only, or none can be measured)."""
    spaces = []
    for share in smbd.settings.shares:
        if share.readonly:
            continue
        try:
            spaces.append(Space(shutil.disk_usage(share.path).free, share.path))
        except OSError:
            continue
    return min(spaces, key=lambda s: s.free) if spaces else None


def should_be_full(full: bool, free: int, min_free: int) -> bool:
    """Whether the shares should be read-only for want of space, given whether they are (``full``)."""
    return free < min_free * (ROOM_FACTOR if full else 1)


def switch(smbd: Smbd, readonly: bool) -> str | None:
    """Make every share of ``smbd`` read-only (or as configured again) and have smbd apply it to its
    connections; returns None, or why smbd could not be told (the files are written either way)."""
    settings = smbd.settings
    if readonly:
        settings = replace(settings, shares=tuple(replace(s, readonly=True) for s in settings.shares))
    write_atomic(smbd.conf, render_conf(settings, smbd.dir, smbd.port).encode())
    control = shutil.which("smbcontrol") or "smbcontrol"
    commands = [["reload-config"], *(["close-share", share.name] for share in settings.shares)]
    for command in commands:
        try:
            done = subprocess.run([control, "-s", str(smbd.conf), "all", *command], env=smbd.env,
                                  capture_output=True, check=False, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"smbcontrol {command[0]}: {error}"
        if done.returncode != 0:
            return f"smbcontrol {command[0]} failed: {done.stderr.decode(errors='replace').strip()[-200:]}"
    return None
