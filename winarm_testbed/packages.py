"""The arm64 Debian packages the test guest is made of: pinned to what apt would download now, and downloaded.

The kernel (the versioned dependency of ``linux-image-arm64``), ``busybox-static``, ``grub-efi-arm64-bin``,
``dosfstools`` and ``libc6``, resolved with ``apt-cache`` (memoised against a fingerprint of the apt lists) and
fetched with ``apt-get download`` into a cache folder, each checked against the SHA-256 of the apt lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from winarm.files import write_atomic
from winarm_testbed.tools import GuestBuildError, run, tool

__all__ = ["ARCH", "BUSYBOX", "Package", "download", "resolve_packages"]

ARCH = "arm64"
KERNEL_META = "linux-image-arm64"
BUSYBOX = "busybox-static"
GRUB_BIN = "grub-efi-arm64-bin"
DOSFSTOOLS = "dosfstools"
LIBC = "libc6"

_APT_LISTS = Path("/var/lib/apt/lists")
_RESOLUTION_FILE = "apt-resolution-2.json"  # another name than before dosfstools: older builders share the cache
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Package:
    """One arm64 Debian package pinned to the version apt would download now."""

    name: str
    version: str
    sha256: str

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` gives this package (epoch colon escaped as %3a)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{ARCH}.deb"


def _apt_stamp() -> list[list[str | int]]:
    """Fingerprint of the apt package lists (name, size, mtime); empty when they cannot be read."""
    try:
        entries = sorted(p for p in _APT_LISTS.iterdir() if "_Packages" in p.name)
        return [[p.name, st.st_size, st.st_mtime_ns] for p in entries for st in [p.stat()]]
    except OSError:
        return []


def _apt_show(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Return the candidate stanza of each arm64 package in NAMES, by package name.

    Raises GuestBuildError when apt does not know one of them (no arm64 lists).
    """
    argv = ["apt-cache", "show", "--no-all-versions", *(f"{n}:{ARCH}" for n in names)]
    tool("apt-cache")
    try:
        out = run(argv)
    except GuestBuildError as exc:
        raise GuestBuildError(f"arm64 packages not in apt lists: run make deps ({exc})") from exc
    stanzas: dict[str, dict[str, str]] = {}
    for block in out.split("\n\n"):
        fields = {m[1]: m[2] for m in re.finditer(r"^([A-Za-z0-9-]+): ?(.*)$", block, re.M)}
        if fields.get("Architecture") == ARCH and "Package" in fields:
            stanzas.setdefault(fields["Package"], fields)
    missing = [n for n in names if n not in stanzas]
    if missing:
        raise GuestBuildError(f"arm64 packages not in apt lists: run make deps (no {', '.join(missing)})")
    return stanzas


def resolve_packages(cache_dir: Path) -> list[Package]:
    """Pin the kernel image (the versioned dependency of linux-image-arm64), busybox-static,
    grub-efi-arm64-bin, dosfstools and libc6 to their current candidate versions.

    apt-cache takes about two seconds here (no pkgcache), so the answer is memoised in cache_dir
    against a fingerprint of the apt lists and the names asked for. Raises GuestBuildError when apt
    cannot answer, UserError when the memo cannot be written.
    """
    memo = cache_dir / _RESOLUTION_FILE
    stamp = _apt_stamp()
    names = [KERNEL_META, BUSYBOX, GRUB_BIN, DOSFSTOOLS, LIBC]
    if stamp:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(memo.read_text())
            if saved["stamp"] == stamp and saved["names"] == names:
                return [Package(**p) for p in saved["packages"]]
    first = _apt_show(names)
    depends = first[KERNEL_META].get("Depends", "")
    match = re.search(r"(linux-image-\d[^\s,(]*)", depends)
    if match is None:
        raise GuestBuildError(f"cannot resolve {KERNEL_META}:{ARCH} to a kernel (Depends: {depends!r})")
    kernel = match.group(1)
    second = _apt_show([kernel])
    stanzas = {kernel: second[kernel], **{n: first[n] for n in names if n != KERNEL_META}}
    packages = [Package(n, s["Version"], s.get("SHA256", "")) for n, s in stanzas.items()]
    if stamp:
        record = {"stamp": stamp, "names": names, "packages": [vars(p) for p in packages]}
        write_atomic(memo, json.dumps(record, indent=1).encode(), mode=0o644, what="the package memo")
    return packages


def download(debs_dir: Path, packages: Sequence[Package], log: Callable[[str], None]) -> list[Path]:
    """Return the .deb of each package in debs_dir, downloading with apt-get the ones not there yet.

    A cached .deb whose SHA256 differs from the apt lists is downloaded again. Raises GuestBuildError
    when apt-get fails or a download does not match, OSError from the file system.
    """
    debs_dir.mkdir(parents=True, exist_ok=True)
    result = []
    for pkg in packages:
        deb = debs_dir / pkg.deb_name
        if deb.is_file() and _sha256_ok(deb, pkg.sha256):
            result.append(deb)
            continue
        log(f"testguest: apt-get download {pkg.name}:{ARCH}={pkg.version}")
        with tempfile.TemporaryDirectory(prefix=".download-", dir=debs_dir) as tmp:
            run(["apt-get", "download", "-q", f"{pkg.name}:{ARCH}={pkg.version}"], cwd=Path(tmp))
            got = Path(tmp) / pkg.deb_name
            if not got.is_file():
                raise GuestBuildError(f"apt-get download gave no {pkg.deb_name}")
            if not _sha256_ok(got, pkg.sha256):
                raise GuestBuildError(f"{pkg.deb_name}: SHA256 does not match the apt lists")
            os.replace(got, deb)
        result.append(deb)
    return result


def _sha256_ok(path: Path, expected: str) -> bool:
    """True when PATH hashes to EXPECTED (or when no hash is known)."""
    if not expected:
        return True
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_MIB), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected.lower()
