"""The life of a supervised VM as a small state machine: the states, and the moves allowed between them."""

from __future__ import annotations

from enum import StrEnum


class VmState(StrEnum):
    """What ``winarm status`` reports as ``state`` (the value is the reported string)."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"


MOVES: dict[VmState, frozenset[VmState]] = {
    VmState.STARTING: frozenset({VmState.RUNNING, VmState.STOPPING, VmState.STOPPED}),
    VmState.RUNNING: frozenset({VmState.PAUSED, VmState.STOPPING, VmState.STOPPED}),
    VmState.PAUSED: frozenset({VmState.RUNNING, VmState.STOPPING, VmState.STOPPED}),
    VmState.STOPPING: frozenset({VmState.STOPPED}),
    VmState.STOPPED: frozenset(),
}
"""From each state, the states it may move to: a stop is never undone, a stopped VM stays stopped."""


class Lifecycle:
    """The one place a VM's state changes. Starts at ``starting``."""

    def __init__(self) -> None:
        self._state = VmState.STARTING

    @property
    def state(self) -> VmState:
        return self._state

    def move(self, to: VmState) -> bool:
        """Move to ``to`` when :data:`MOVES` allows it; True when it did. A move that is not allowed (the
        storage resuming a VM already stopping) leaves the state as it is and returns False; never raises."""
        if to not in MOVES[self._state]:
            return False
        self._state = to
        return True
