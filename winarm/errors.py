"""The two kinds of failure winarm reports, and the exit status each maps to.

A :class:`UserError` is a mistake the user can fix (a bad size, a missing ISO, a VM already running): the CLI
prints its one-line message and exits with status 2, before anything is created or changed on disk.
A :class:`RuntimeFailure` is something that went wrong while doing the job (QEMU died, a helper would not
start): one line, exit status 1.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class WinarmError(Exception):
    """Base of every error winarm reports to a person as one line."""

    exit_code = EXIT_FAILURE


class UserError(WinarmError):
    """A value the user gave is wrong; the message names it and says what would be accepted."""

    exit_code = EXIT_USAGE


class RuntimeFailure(WinarmError):
    """The job could not be done for a reason that is not a bad value (QEMU crashed, a helper failed)."""

    exit_code = EXIT_FAILURE
