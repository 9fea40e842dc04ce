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
MAX_ISO_BYTES = 16 * 2**30
"""The largest download taken: Windows for ARM64 ISOs are 5 to 7 GiB; a server sending more is not one."""
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


def _check_request(url: str, sha256: str | None) -> None:
    """Raise :class:`UserError` for a malformed checksum, or a plain ``http://`` address without one (anyone on
    the path could hand over another image)."""
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise UserError(f"--iso-sha256 {sha256!r} is not a SHA-256 checksum: give 64 hexadecimal digits")
    if sha256 is None and url.lower().startswith("http://"):
        raise UserError(f"ISO URL {url} is plain http, which anyone on the way can alter: use https, or give "
                        "--iso-sha256 to check what arrives")


def fetch(url: str, directory: Path, *, sha256: str | None = None, progress: Progress | None = None,
          timeout: float = 30.0, max_bytes: int = MAX_ISO_BYTES) -> Path:
    """Download ``url`` into ``directory`` (resuming a ``.partial`` left by an earlier try); return the path.

    A complete earlier download is reused (checked again when ``sha256`` is given). A plain ``http://`` address
    (or an https one redirected to http) needs ``sha256``; more than ``max_bytes`` is never written. Raises
    :class:`UserError` for those, an address the server refuses (404...) or a checksum mismatch (the bad file is
    deleted), :class:`RuntimeFailure` for a network failure or a download cut short (the partial file is kept
    for the next try).
    """
    _check_request(url, sha256)
    target = directory / file_name(url)
    partial = target.with_name(target.name + ".partial")
    if not target.exists():
        _download(url, partial, progress or (lambda done, total: None), timeout, (sha256, max_bytes))
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


def _check_size(url: str, size: int, most: int, partial: Path | None = None) -> None:
    """Raise :class:`UserError` (deleting ``partial``) when ``size`` bytes is more than ``most``."""
    if size > most:
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise UserError(f"ISO from {url} is larger than {most / 2**30:g} GiB, more than any Windows ISO: "
                        "check the address")


def _download(url: str, partial: Path, progress: Progress, timeout: float,
              limits: tuple[str | None, int]) -> None:
    """Fetch ``url`` into ``partial`` (appending when the server resumes). ``limits``: the checksum (None: an
    https download may not be redirected to http) and the most bytes the file may have. Raises as :func:`fetch`."""
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
        _check_request(response.geturl(), limits[0])  # after redirects
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length and length.isdigit() else None
        done = have if resumed else 0
        _check_size(url, total or done, limits[1])
        partial.parent.mkdir(parents=True, exist_ok=True)  # only once the server has said yes
        with partial.open("ab" if resumed else "wb") as out:
            try:
                while chunk := response.read(CHUNK):
                    _check_size(url, done + len(chunk), limits[1], partial)
                    out.write(chunk)
                    done += len(chunk)
                    progress(done, total)
            except (OSError, urllib.error.URLError) as exc:
                raise RuntimeFailure(
                    f"download of {url} was cut off at {done} bytes ({exc}): run again to resume it"
                ) from None
    if total is not None and done < total:
        raise RuntimeFailure(f"download of {url} was cut off at {done} of {total} bytes: run again to resume it")
