"""The validator's rules about what the answer file says, not how it is written: facts that stall or spoil a real
install, each checkable from the file alone (the Windows version also from the install ISO when it is given).

- ``windows11-bypasses``: a Windows 11 file (InstallFrom's ``/IMAGE/NAME`` says Windows 11, or with the ISO the
  image its ``/IMAGE/INDEX`` names is build 22000 or later, or winarm's own comment says Windows 11) sets every
  ``LabConfig`` bypass of the rules file's ``windows11_bypasses`` in windowsPE, as a ``RunSynchronous``
  ``reg add`` of Microsoft-Windows-Setup: without one, Setup's "This PC can't run Windows 11"
  check stops a VM below its minimums (4 GB RAM, 2 cores, 64 GB disk, TPM 2.0, Secure Boot).
- ``product-key``: ``UserData/ProductKey/Key`` holds a key. One that does not match the edition ``InstallFrom``
  picks stops Setup, and with ``WillShowUI Never`` there is no way out.
- ``dynamic-update``: windowsPE's Microsoft-Windows-Setup has no ``DynamicUpdate`` with ``Enable`` false (Setup
  would fetch updates mid-install as soon as it has a network).
- ``timezone``: a ``TimeZone`` that is not a Windows time zone ID (Setup ignores it and picks one by region).

Called by :func:`winarm.answer.validate.validate` on its parsed tree; it only adds findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from winarm.answer.xml_node import Node
from winarm.answer.xml_node import walk as _walk
from winarm.config.timezone import EXAMPLE, is_windows_zone

__all__ = ["check_facts"]

Add = Callable[[int, str, str], None]
LABCONFIG_RE = re.compile(
    r'^\s*(?:reg|reg\.exe)\s+add\s+"?HKLM\\SYSTEM\\Setup\\LabConfig"?\s+/v\s+"?([A-Za-z]+)"?\s+/t\s+REG_DWORD'
    r"\s+/d\s+1(?:\s+/f)?\s*$",
    re.IGNORECASE,
)
WINDOWS_11_RE = re.compile(r"\bWindows\s+11\b", re.IGNORECASE)
WINDOWS_11_FIRST_BUILD = 22000


def _child(node: Node, name: str) -> Node | None:
    return next((c for c in node.children if c.name == name), None)


def _setup_components(root: Node) -> list[Node]:
    """Every Microsoft-Windows-Setup component of the windowsPE pass."""
    return [component for settings in root.children
            if settings.name == "settings" and settings.attrs.get("pass") == "windowsPE"
            for component in settings.children
            if component.name == "component" and component.attrs.get("name") == "Microsoft-Windows-Setup"]


def is_windows_11(root: Node, comments: Sequence[str], builds: Mapping[int, int | None] | None = None) -> bool:
    """Whether the file installs Windows 11: InstallFrom's ``/IMAGE/NAME`` says so, or (given the ISO's
    ``builds`` by image index) its ``/IMAGE/INDEX`` names an image of build 22000 or later, or a comment says so
    (winarm writes ``Windows 11 for arm64, written by winarm``)."""
    for node in _walk(root):
        if node.name == "MetaData":
            key, value = _child(node, "Key"), _child(node, "Value")
            named = key.text.strip().upper() if key is not None else ""
            if value is not None and named == "/IMAGE/NAME":
                return WINDOWS_11_RE.search(value.text) is not None
            build = (builds or {}).get(int(value.text)) if value is not None and value.text.strip().isdigit() else None
            if named == "/IMAGE/INDEX" and build is not None:
                return build >= WINDOWS_11_FIRST_BUILD
    return any(WINDOWS_11_RE.search(comment) and "winarm" in comment for comment in comments)


def _check_bypasses(root: Node, bypasses: Sequence[str], add: Add) -> None:
    setups = _setup_components(root)
    found: set[str] = set()
    for component in setups:
        run = _child(component, "RunSynchronous")
        for command in run.children if run is not None else ():
            path = _child(command, "Path")
            match = LABCONFIG_RE.match(path.text) if path is not None else None
            if match:
                found.add(match.group(1).lower())
    missing = [name for name in bypasses if name.lower() not in found]
    if missing:
        line = setups[0].line if setups else root.line
        add(line, "windows11-bypasses", f"a Windows 11 answer file lacks the LabConfig bypass(es) "
            f"{', '.join(missing)} in windowsPE: Setup's hardware check stops a VM below Windows 11's minimums; add "
            r"'reg add HKLM\SYSTEM\Setup\LabConfig /v NAME /t REG_DWORD /d 1 /f' commands")


def _check_product_key(root: Node, add: Add) -> None:
    for node in _walk(root):
        if node.name != "UserData":
            continue
        product_key = _child(node, "ProductKey")
        key = _child(product_key, "Key") if product_key is not None else None
        if key is not None and key.text.strip():
            add(key.line, "product-key", "UserData/ProductKey holds a key: one that does not match the edition "
                "stops Setup with no way out (WillShowUI Never); leave it out and install the key after Setup "
                "(winarm's --product-key does, at the first logon)")


def _check_dynamic_update(root: Node, add: Add) -> None:
    for component in _setup_components(root):
        update = _child(component, "DynamicUpdate")
        enable = _child(update, "Enable") if update is not None else None
        if enable is None or enable.text.strip().lower() != "false":
            line = (enable or update or component).line
            add(line, "dynamic-update", "Dynamic Update is not turned off in windowsPE: Setup would fetch updates "
                "mid-install once it has a network; add DynamicUpdate with Enable false and WillShowUI Never")


def _check_timezones(root: Node, add: Add) -> None:
    for node in _walk(root):
        if node.name == "TimeZone" and not is_windows_zone(node.text.strip()):
            add(node.line, "timezone", f"TimeZone {node.text.strip()!r} is not a Windows time zone ID (Setup would "
                f"pick one by region): use one 'tzutil /l' lists, for example {EXAMPLE.split(' or ')[0]}")


def check_facts(root: Node, comments: Sequence[str], bypasses: Sequence[str], add: Add,
                builds: Mapping[int, int | None] | None = None) -> None:
    """Add ``windows11-bypasses``, ``product-key``, ``dynamic-update`` and ``timezone`` findings through
    ``add(line, rule, message)``. ``comments`` are the file's comments, ``bypasses`` the LabConfig values a
    Windows 11 file must set, ``builds`` the install ISO's builds by image index when it was given. Raises
    nothing."""
    if is_windows_11(root, comments, builds):
        _check_bypasses(root, bypasses, add)
    _check_product_key(root, add)
    _check_dynamic_update(root, add)
    _check_timezones(root, add)
