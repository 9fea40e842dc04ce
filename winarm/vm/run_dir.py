"""A VM's run directory (its sockets and pid file), made so that no other local user can squat it.

The base of the run directories may be shared ground: ``/tmp/winarm-<uid>`` when there is no
``XDG_RUNTIME_DIR`` (``sudo -u``, cron, services), or whatever ``WINARM_RUN_DIR`` names. Another user who
creates that path first, or plants a link or a socket in it, must not make winarm delete files elsewhere or
trust a daemon that is not its own. So before anything in a run directory is removed or trusted, the base and
the run directory are checked with ``lstat`` (links are never followed):

- the base: a directory, not a link, owned by us or by root, and, when others may write to it, sticky (``/tmp``);
- the run directory: a directory, not a link, owned by us, with no group or other permission bits (one of ours
  with wider bits, left by an older winarm or a tool, is set to 0700 first).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from winarm.errors import UserError


def _refuse(path: Path, why: str) -> UserError:
    return UserError(f"run directory {str(path)!r} {why}: remove it, or set WINARM_RUN_DIR to a directory of yours")


def check_base(base: Path) -> None:
    """Raise :class:`UserError` when ``base`` exists and is not safe to hold run directories (see the module);
    a missing base is fine (it is made 0700 by :func:`make_run_dir`)."""
    try:
        info = base.lstat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise _refuse(base, f"cannot be read ({error.strerror})") from error
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(base, "is a link or not a directory")
    if info.st_uid not in (os.geteuid(), 0):
        raise _refuse(base, f"belongs to uid {info.st_uid}, not to you")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise _refuse(base, f"is writable by others (mode {stat.S_IMODE(info.st_mode):o}) without the sticky bit")


def check_own(run_dir: Path) -> None:
    """Raise :class:`UserError` unless ``run_dir`` is a directory (not a link) of ours with mode 0700 or less."""
    try:
        info = run_dir.lstat()
    except OSError as error:
        raise _refuse(run_dir, f"cannot be read ({error.strerror})") from error
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(run_dir, "is a link or not a directory")
    if info.st_uid != os.geteuid():
        raise _refuse(run_dir, f"belongs to uid {info.st_uid}, not to you")
    if info.st_mode & 0o077:
        raise _refuse(run_dir, f"is open to others (mode {stat.S_IMODE(info.st_mode):o})")


def _make_private(run_dir: Path) -> None:
    """Set mode 0700 on ``run_dir`` when it is a directory of ours (opened without following a link, so the
    mode lands on what was checked); anything else is left for :func:`check_own` to refuse."""
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (0700; its base 0700 when missing) or accept one of ours, and check both: see the
    module. Raises :class:`UserError` when either is not safe; nothing in them has been touched then."""
    base = run_dir.parent
    check_base(base)
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o700, parents=True)
    check_base(base)
    with contextlib.suppress(FileExistsError):
        run_dir.mkdir(mode=0o700)
    _make_private(run_dir)
    check_own(run_dir)


def clear_stale(run_dir: Path) -> None:
    """Remove the sockets and pid files a dead daemon left in ``run_dir`` (checked by :func:`make_run_dir`)."""
    for stale in run_dir.iterdir():
        if stale.is_socket() or stale.suffix in (".pid", ".sock"):
            stale.unlink(missing_ok=True)
