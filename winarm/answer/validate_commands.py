"""The validator's rule on what a command line of the answer file gives away: Setup keeps a copy of the answer
file in ``C:\\Windows\\Panther`` where only ``Password`` elements are masked, so a share login on a command line
(``net use ... PASSWORD /user:NAME``, ``cmdkey ... /pass:``) stays readable on the installed disk.

Called by :func:`winarm.answer.validate.validate`; it works on the validator's parsed tree and only adds findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from winarm.answer.xml_node import Node
from winarm.answer.xml_node import walk as _walk

__all__ = ["check_command_secrets", "command_secret"]

COMMAND_ELEMENTS = {"Path", "CommandLine"}
"""The elements that hold a command line (RunSynchronousCommand/Path, SynchronousCommand/CommandLine...)."""
_NET_USE = re.compile(r"(?:^|[\s\"&|(\\/])net(?:\.exe)?\"?\s+use(?=\s|$)", re.IGNORECASE)
_CMDKEY_PASS = re.compile(r"(?:^|[\s\"&|(\\/])cmdkey(?:\.exe)?\"?\s[^&|]*?/pass(?::|\s|$)", re.IGNORECASE)
_DEVICE = re.compile(r"^(?:[A-Za-z]:|\*|LPT\d:?|COM\d:?)$", re.IGNORECASE)


def _net_use_secret(arguments: str) -> str | None:
    """What the arguments after ``net use`` give away: ``/user:`` or a password word; None when nothing."""
    words = [w.strip('"') for w in re.split(r"[\s&|()<>]+", arguments) if w]
    position = 0
    for word in words:
        lower = word.lower()
        if lower.startswith("/user:") or lower.startswith("/u:"):
            return "a user (/user:)"
        if lower.startswith("/"):
            continue
        position += 1
        if position == 1 and (_DEVICE.match(word) or word.startswith("\\\\")):
            continue
        if position == 2 and word.startswith("\\\\"):
            continue
        return "a password"
    return None


def command_secret(line: str) -> str | None:
    """What the command line ``line`` gives away of a login (``"a password"``, ``"a user (/user:)"``), None when
    nothing: a ``net use`` with a password or ``/user:``, a ``cmdkey`` with ``/pass``."""
    for match in _NET_USE.finditer(line):
        found = _net_use_secret(re.split(r"[&|]", line[match.end():], maxsplit=1)[0])
        if found is not None:
            return f"'net use' with {found}"
    if _CMDKEY_PASS.search(line):
        return "'cmdkey' with a password (/pass)"
    return None


def check_command_secrets(root: Node, add: Callable[[int, str, str], None]) -> None:
    """Add a ``secret-command-line`` finding through ``add(line, rule, message)`` for each command line (``Path``,
    ``CommandLine``) that carries a share login. Raises nothing."""
    for node in _walk(root):
        if node.name not in COMMAND_ELEMENTS:
            continue
        found = command_secret(node.text.strip())
        if found is not None:
            add(node.line, "secret-command-line",
                f"{node.name} runs {found}: Setup keeps this file in C:\\Windows\\Panther, readable with it; "
                "store the login with a script that reads it from the answer medium")
