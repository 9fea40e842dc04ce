"""A stand-in for an extracted virtio-win tree, for tests and the testbed.

The real virtio-win drivers cannot be downloaded on the machines winarm is built and tested on, so this
writes the same layout (``<Driver>/<w10|w11>/ARM64/``) with small placeholder INF, SYS and CAT files. The
INF is a syntactically plausible [Version] section; nothing here is a working driver, and Windows would
reject it: only the paths, names and sizes matter to what winarm does with them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from winarm.media.drivers import ARCH_FOLDER, load_catalog, version_key

PLACEHOLDER_CATALOG = b"placeholder catalog\n"
"""What each ``.cat`` holds by default: not a signature at all, so winarm calls these drivers unsigned (Windows
would refuse them; with Secure Boot on winarm refuses the storage driver: run with ``--no-secure-boot``)."""


def make_fake_virtio_tree(dest: Path, *, windows: tuple[str, ...] = ("10", "11"), payload: int = 64 * 1024,
                          skip: tuple[str, ...] = (), version: str | None = None,
                          catalog: Callable[[str], bytes] | None = None) -> Path:
    """Write the catalog's drivers under ``dest`` (except those named in ``skip``); returns ``dest``.

    Each driver gets its INF, a ``.sys`` of ``payload`` bytes and a ``.cat`` (:data:`PLACEHOLDER_CATALOG`, or
    ``catalog(driver name)``), for each Windows version. With ``version`` (a virtio-win release) the drivers
    whose ARM64 build came later (the catalog's ``arm64_since``) are left out, as in that release.
    """
    for driver in load_catalog():
        if driver.name in skip:
            continue
        if version and driver.arm64_since and version_key(version) < version_key(driver.arm64_since):
            continue
        for release in windows:
            if release not in driver.windows:
                continue
            folder = dest / driver.folder / f"w{release}" / ARCH_FOLDER
            folder.mkdir(parents=True, exist_ok=True)
            stem = driver.inf.removesuffix(".inf")
            (folder / driver.inf).write_text(
                "; placeholder written by winarm's test tree, not a real driver\r\n"
                "[Version]\r\nSignature=\"$WINDOWS NT$\"\r\nClass=System\r\n"
                f"CatalogFile={stem}.cat\r\nDriverVer=01/01/2026,100.0.0.0\r\n"
            )
            (folder / f"{stem}.sys").write_bytes(bytes(range(256)) * (payload // 256))
            (folder / f"{stem}.cat").write_bytes(catalog(driver.name) if catalog else PLACEHOLDER_CATALOG)
    return dest
