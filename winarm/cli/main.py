"""The ``winarm`` command's entry point (the console script and ``python -m winarm``).

It takes the phase clock's start, :data:`T0`, before anything else is imported, then builds the root group
(:mod:`winarm.cli.app`), whose commands are imported only when they run.

Exit status: 0 done, 1 a runtime failure, 2 a user's mistake (one line, no traceback), 3 from ``status`` when
the VM is not running.
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # the phase clock counts from here: as close to "winarm up" as Python allows
TYPE_CHECKING = False  # typing.TYPE_CHECKING without an import: nothing but time is imported before T0
if TYPE_CHECKING:
    from winarm.cli.app import WinarmGroup


def _root() -> WinarmGroup:
    from winarm.cli.app import root

    return root()


main = _root()

if __name__ == "__main__":  # pragma: no cover
    main()
