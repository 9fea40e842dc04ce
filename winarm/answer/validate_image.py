"""The validator's rules that need the install image: the edition ``InstallFrom`` names is on it, and every
``UILanguage`` is one of that edition's languages (Setup and OOBE stop at their language pages otherwise).

Called by :func:`winarm.answer.validate.validate` with the ISO's editions (from
:func:`winarm.media.iso.inspect_iso`); it works on the validator's parsed tree and only adds findings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from winarm.answer.xml_node import Node
from winarm.answer.xml_node import child_text as _text
from winarm.answer.xml_node import walk as _walk

if TYPE_CHECKING:
    from winarm.media.iso import Edition

__all__ = ["check_image"]


def _install_from(root: Node) -> tuple[str, str, int] | None:
    """``(key, value, line)`` of the first ``InstallFrom/MetaData``, or None when the file names no image."""
    for node in _walk(root):
        if node.name == "MetaData":
            return _text(node, "Key").upper(), _text(node, "Value"), node.line
    return None


def _edition(root: Node, editions: Sequence[Edition], add: Callable[[int, str, str], None]) -> Edition | None:
    """The edition the file installs, or None when it names none or one the ISO lacks (then a finding)."""
    named = _install_from(root)
    if named is None:
        return None
    key, value, line = named
    if key == "/IMAGE/INDEX":
        found = [e for e in editions if value.isdigit() and e.index == int(value)]
    elif key == "/IMAGE/NAME":
        found = [e for e in editions if e.name.lower() == value.lower()]
    else:
        return None
    if not found:
        offered = ", ".join(f"{e.index} ({e.name})" for e in editions)
        add(line, "image-edition", f"InstallFrom names {key} {value!r}, which is not on the ISO: it has {offered}")
        return None
    return found[0]


def check_image(root: Node, editions: Sequence[Edition], add: Callable[[int, str, str], None]) -> None:
    """Add ``image-edition`` and ``ui-language`` findings through ``add(line, rule, message)``.

    The languages checked against are those of the edition ``InstallFrom`` names, else (no edition named, or one
    not on the ISO) those of every edition together. An image that names no languages is not checked (unknown).
    Raises nothing.
    """
    edition = _edition(root, editions, add)
    pool = [edition] if edition is not None else list(editions)
    have: dict[str, str] = {}
    for each in pool:
        have.update({tag.lower(): tag for tag in each.languages})
    if not have:
        return
    where = f"edition {edition.index} ({edition.name})" if edition is not None else "the ISO"
    for node in _walk(root):
        value = node.text.strip()
        if node.name == "UILanguage" and value.lower() not in have:
            add(node.line, "ui-language", f"UILanguage {value!r} is not in {where}, which has "
                f"{', '.join(have.values())}: Setup would stop at its language page; use one of those")
