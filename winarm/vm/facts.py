"""What winarm remembers about a VM between runs (``vm.json`` in its state directory): whether its disk
has booted, how often, whether the install is complete, which Windows build it installed."""

from __future__ import annotations

import json
from typing import Any

from winarm.config.paths import VmPaths
from winarm.errors import WinarmError
from winarm.files import write_atomic
from winarm.timeline.events import EventKind
from winarm.vm.report import Reporter

BUILD_FACT = "windows_build"
"""The major build of the Windows image installed on this disk, kept so later starts (with no ISO read) still
know it: the GIC's ITS depends on it (:func:`winarm.qemu.argv.machine_option`)."""


def read_facts(paths: VmPaths) -> dict[str, Any]:
    """What winarm remembered about this VM (empty when new or unreadable)."""
    try:
        data = json.loads(paths.facts.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def known_build(paths: VmPaths) -> int | None:
    """The Windows build remembered from this disk's install (:data:`BUILD_FACT`), None when there is no disk,
    no such fact, or a value that is not a build number."""
    if not paths.disk.exists():
        return None
    build = read_facts(paths).get(BUILD_FACT)
    return build if isinstance(build, int) and not isinstance(build, bool) and build > 0 else None


def remember_build(facts: dict[str, Any], build: int | None) -> bool:
    """Put the build being installed into ``facts`` (in memory); True when that changed them (the caller
    writes them). A None build changes nothing."""
    if build is None or facts.get(BUILD_FACT) == build:
        return False
    facts[BUILD_FACT] = build
    return True


def write_facts(paths: VmPaths, facts: dict[str, Any]) -> None:
    """Replace the remembered facts atomically (temp file, fsync, rename; nothing left behind on failure).
    Raises :class:`UserError` when the storage cannot be written."""
    write_atomic(paths.facts, json.dumps(facts, indent=2, sort_keys=True).encode(), what="VM facts")


class Facts:
    """The VM's remembered facts, saved as they change. When the storage refuses (full), they are kept, noted
    once, and saved at the next :meth:`save` that works."""

    def __init__(self, paths: VmPaths, values: dict[str, Any], reporter: Reporter) -> None:
        self.paths = paths
        self.values = values
        self.reporter = reporter
        self.unsaved = False

    def save(self) -> None:
        """Write the facts atomically; never raises (a failure is recorded as ``facts-unsaved`` once)."""
        try:
            write_facts(self.paths, self.values)
            self.unsaved = False
        except WinarmError as error:
            if not self.unsaved:
                self.reporter.record(EventKind.FACTS_UNSAVED, error=str(error))
            self.unsaved = True

    def save_if_unsaved(self) -> None:
        """Try again to write facts that changed while the storage was full."""
        if self.unsaved:
            self.save()
