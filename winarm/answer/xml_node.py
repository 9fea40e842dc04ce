"""What the answer-file rules read of a parsed element, and the walks they share. The validator's own tree
(:mod:`winarm.answer.validate`) satisfies :class:`Node`; the rule modules read nothing else of it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol


class Node(Protocol):
    """One element: its local name, line, text, attributes and children."""

    @property
    def name(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def attrs(self) -> dict[str, str]: ...
    @property
    def children(self) -> Sequence[Node]: ...


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every element below it, in document order."""
    yield node
    for child in node.children:
        yield from walk(child)


def child_text(node: Node, name: str) -> str:
    """The stripped text of ``node``'s first child called ``name`` ("" when there is none)."""
    return next((c.text.strip() for c in node.children if c.name == name), "")


def items(node: Node, container: str, item: str) -> list[Node]:
    """The ``item`` children of each ``container`` child of ``node``."""
    return [i for c in node.children if c.name == container for i in c.children if i.name == item]
