"""The host tools the test guest is built with, how they are run, and the one error every builder raises.

Every failure of a build (a host tool missing or failing, packages apt does not know, a file that cannot be
written) is a :class:`GuestBuildError`: one line for a person, a :class:`winarm.errors.RuntimeFailure`, so
``winarm testbed`` reports it like any other failure (exit status 1, no traceback).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from winarm.errors import RuntimeFailure

__all__ = ["HOST_TOOLS", "GuestBuildError", "check_tools", "locked", "run", "tool"]

# Host tools, with the Debian package that provides each.
HOST_TOOLS: Mapping[str, str] = {
    "apt-cache": "apt",
    "apt-get": "apt",
    "dpkg": "dpkg",
    "depmod": "kmod",
    "grub-mkstandalone": "grub-common",
    "mkfs.fat": "dosfstools",
    "mmd": "mtools",
    "mcopy": "mtools",
    "sfdisk": "fdisk",
    "xorriso": "xorriso",
}


class GuestBuildError(RuntimeFailure):
    """One-line, user-facing reason (e.g. 'arm64 packages not in apt lists: run make deps')."""


def _search_path() -> str:
    """PATH with the sbin directories added (mkfs.fat, sfdisk and depmod live there)."""
    return os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/sbin"


def tool(name: str) -> str:
    """Return the path of host tool NAME (also looked up in the sbin directories).

    Raises GuestBuildError naming the Debian package to install when it is missing.
    """
    found = shutil.which(name, path=_search_path())
    if found is None:
        raise GuestBuildError(f"host tool {name} not found: apt-get install {HOST_TOOLS.get(name, name)}")
    return found


def check_tools() -> None:
    """Raise GuestBuildError listing every missing host tool and the packages that provide them."""
    missing = [name for name in HOST_TOOLS if shutil.which(name, path=_search_path()) is None]
    if missing:
        pkgs = sorted({HOST_TOOLS[name] for name in missing})
        raise GuestBuildError(f"host tools missing ({', '.join(missing)}): apt-get install {' '.join(pkgs)}")


def run(argv: Sequence[str], *, cwd: Path | None = None, stdin: str | None = None,
        env: Mapping[str, str] | None = None) -> str:
    """Run ARGV (no shell) and return its stdout; the tool is resolved with tool().

    Raises GuestBuildError with the tool's last line of error output when it fails.
    """
    full = [tool(argv[0]), *argv[1:]]
    run_env = None if env is None else {**os.environ, **env}
    proc = subprocess.run(full, cwd=cwd, input=stdin, capture_output=True, text=True, env=run_env,
                          check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise GuestBuildError(f"{argv[0]} failed: {reason}")
    return proc.stdout


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on PATH (created if needed) for the duration of the block.

    Raises OSError when PATH cannot be opened.
    """
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
