"""The bench scripts import each other as top-level modules (``python bench/x.py`` puts bench/ on sys.path); the
tests here import them the same way."""

from __future__ import annotations

import sys

from tests.vmtools import REPO_ROOT

if str(REPO_ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
