"""Fetching an install ISO given as an http(s) URL: into the storage directory, resumable, checked.

The file is written as ``<name>.partial`` and renamed only when complete (and, with ``sha256``, verified),
so an interrupted or corrupt download is never used; the next run resumes it with an HTTP Range request.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from winarm.errors import RuntimeFailure, UserError

CHUNK = 1024 * 1024
Progress = Callable[[int, int | None], None]


def is_url(value: str) -> bool:
    """True for an http:// or https:// address."""
    return value.lower().startswith(("http://", "https://"))


def file_name(url: str) -> str:
    """A safe local name for what ``url`` points at (its last path segment, else ``download.iso``)."""
    segment = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", segment).lstrip(".")
    return cleaned[:120] or "download.iso"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def text_progress() -> Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line every 10 % otherwise."""
    out = sys.stderr
    last = {"shown": -1, "time": 0.0}

    def show(done: int, total: int | None) -> None:
        if total:
            percent = done * 100 // total
            if out.isatty():
                if time.monotonic() - last["time"] < 0.1 and done < total:
                    return
                last["time"] = time.monotonic()
                bar = "#" * (percent // 4)
                out.write(f"\rdownloading [{bar:<25}] {percent:3d}% {done / 2**20:,.0f}/{total / 2**20:,.0f} MiB")
                if done >= total:
                    out.write("\n")
            elif percent // 10 != last["shown"]:
                last["shown"] = percent // 10
                out.write(f"downloading: {percent}% ({done / 2**20:,.0f} of {total / 2**20:,.0f} MiB)\n")
            out.flush()

    return show


def fetch(url: str, directory: Path, *, sha256: str | None = None, progress: Progress | None = None,
          timeout: float = 30.0) -> Path:
    """Download ``url`` into ``directory`` (resuming a ``.partial`` left by an earlier try); return the path.

    A complete earlier download is reused (checked again when ``sha256`` is given). Raises
    :class:`UserError` for an address the server refuses (404...) or a checksum mismatch (the bad file is
    deleted), :class:`RuntimeFailure` for a network failure or a download cut short (the partial file is kept
    for the next try).
    """
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise UserError(f"--iso-sha256 {sha256!r} is not a SHA-256 checksum: give 64 hexadecimal digits")
    target = directory / file_name(url)
    partial = target.with_name(target.name + ".partial")
    if not target.exists():
        _download(url, partial, progress or (lambda done, total: None), timeout)
        if sha256 is None:
            os.replace(partial, target)
    if sha256 is not None:
        candidate = target if target.exists() else partial
        actual = _sha256_of(candidate)
        if actual.lower() != sha256.lower():
            candidate.unlink(missing_ok=True)
            raise UserError(
                f"ISO from {url} has SHA-256 {actual}, not {sha256.lower()}: the download was deleted; "
                "check the address and the checksum"
            )
        if candidate == partial:
            os.replace(partial, target)
    return target


def _download(url: str, partial: Path, progress: Progress, timeout: float) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "winarm"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) checked by is_url
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the partial file is complete
            return
        raise UserError(f"ISO URL {url} answered {exc.code} {exc.reason}: check the address") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeFailure(f"cannot download {url}: {reason}") from None
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length and length.isdigit() else None
        done = have if resumed else 0
        partial.parent.mkdir(parents=True, exist_ok=True)  # only once the server has said yes
        with partial.open("ab" if resumed else "wb") as out:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    progress(done, total)
            except (OSError, urllib.error.URLError) as exc:
                raise RuntimeFailure(
                    f"download of {url} was cut off at {done} bytes ({exc}): run again to resume it"
                ) from None
    if total is not None and done < total:
        raise RuntimeFailure(f"download of {url} was cut off at {done} of {total} bytes: run again to resume it")
