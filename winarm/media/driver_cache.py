"""Driver folders extracted from a virtio-win ISO, kept once per ISO under the storage directory (issue 14: each
``--drivers`` ISO was extracted into a new temporary folder that was never removed).

The folder is ``STORAGE/.drivers/virtio-<key>``, the key a hash of the ISO's real path, size and modification
time (a new or changed ISO gets a new folder; hashing 700 MB at each start would cost seconds). It is extracted
into a hidden temporary folder beside it and renamed into place, so a crash never leaves a half tree under the
final name. Folders not used for :data:`KEEP_DAYS` days, and extractions a crash left, are removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from winarm.media.drivers import extract_iso_tree

CACHE_FOLDER = ".drivers"
KEEP_DAYS = 30
"""Days an extracted tree is kept after its last use."""
STALE_EXTRACTION = 24 * 3600
"""Seconds after which a hidden extraction folder is a crash's leftover (an extraction takes seconds)."""


def tree_key(iso: Path) -> str:
    """The cache key of ``iso``: its real path, size and modification time, hashed."""
    info = iso.stat()
    identity = f"{iso.resolve()}\0{info.st_size}\0{info.st_mtime_ns}".encode()
    return hashlib.sha256(identity).hexdigest()[:20]


def cached_tree(iso: Path, storage: Path) -> Path:
    """The driver folders of the virtio-win ``iso``, extracted under ``storage`` once and reused; old trees are
    pruned (see the module). Raises :class:`~winarm.errors.UserError` for a file that is not a readable ISO."""
    root = storage / CACHE_FOLDER
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = root / f"virtio-{tree_key(iso)}"
    if not final.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix=".extracting-", dir=root))
        try:
            extract_iso_tree(iso, scratch)
            os.rename(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    os.utime(final)  # its last use, for pruning
    prune(root, keep=final)
    return final


def prune(root: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Remove the trees under ``root`` unused for :data:`KEEP_DAYS` days and stale extractions, never ``keep``;
    returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    for entry in root.iterdir():
        if entry == keep or not entry.is_dir() or entry.is_symlink():
            continue
        age = now - entry.stat().st_mtime
        stale = (entry.name.startswith(".extracting-") and age > STALE_EXTRACTION
                 or entry.name.startswith("virtio-") and age > KEEP_DAYS * 86400)
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
