"""The shape the code keeps: small modules, short functions, packages that import nothing eagerly.

A module past 400 lines or a function past 60 is a room that holds too much; an ``__init__.py`` that imports
makes every ``winarm`` command pay for what it does not use (``winarm up``'s start-up time is measured).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.vmtools import REPO_ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
TREES = ("winarm", "winarm_testbed", "bench", "tests")
DATA_TABLES: set[str] = set()
"""Modules that are data tables, exempt from the module size (none today)."""


def sources() -> list[Path]:
    return sorted(p for tree in TREES for p in (REPO_ROOT / tree).rglob("*.py")) + [REPO_ROOT / "entrypoint.py"]


def offences() -> set[str]:
    found = set()
    for path in sources():
        name = str(path.relative_to(REPO_ROOT))
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES and name not in DATA_TABLES:
            found.add(f"module {name}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    found.add(f"function {name}:{node.name}")
    return found


def test_no_module_past_400_lines_and_no_function_past_60() -> None:
    assert not offences(), f"too long: {sorted(offences())}"


def test_package_inits_import_nothing() -> None:
    for init in sorted((REPO_ROOT / "winarm").rglob("__init__.py")):
        tree = ast.parse(init.read_text())
        imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        assert not imports, f"{init.relative_to(REPO_ROOT)} imports eagerly: {[ast.unparse(n) for n in imports]}"
