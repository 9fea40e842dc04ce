"""Where the data winarm ships beside its code lives: the answer-file templates and the driver catalog."""

from __future__ import annotations

import sys
from pathlib import Path


def data_dir(name: str) -> Path:
    """A data folder shipped with winarm (``drivers``, ``unattend``): beside the package in a source checkout,
    else under ``<prefix>/share/winarm`` (where setup.cfg's data_files put it)."""
    beside = Path(__file__).resolve().parent.parent / name
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "winarm" / name
