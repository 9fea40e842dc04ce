"""The root ``winarm`` group: its commands by name, imported only when one runs or help lists them, and the
one error handler every command's failures go through.

A :class:`~winarm.errors.WinarmError` ends in one line ``winarm: <message>`` on stderr and its exit status (2 a
user's mistake, 1 a runtime failure); an OSError (the storage failed under a command: full, read-only, gone)
ends in one line and status 1. No traceback, unless ``WINARM_DEBUG`` is set: then the cause chain follows the
line, and winarm's and QMP's debug log goes to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any, NoReturn

import click

from winarm.config.values import Values
from winarm.errors import EXIT_FAILURE, UserError, WinarmError

COMMANDS: dict[str, str] = {
    "up": "winarm.cli.up:up",
    "down": "winarm.cli.lifecycle:down",
    "status": "winarm.cli.lifecycle:status",
    "phases": "winarm.cli.phases:phases",
    "screenshot": "winarm.cli.screenshot:screenshot",
    "prepare": "winarm.cli.prepare:prepare",
    "bench": "winarm.cli.bench:bench",
    "env": "winarm.cli.env:env",
    "inspect": "winarm.cli.inspect:inspect",
    "unattend": "winarm.cli.unattend:unattend",
    "testbed": "winarm.cli.testbed:testbed",
}
"""Command name -> ``module:attribute`` of its click command."""

DEBUG_LOGGERS = ("winarm", "qemu.qmp")


class WinarmGroup(click.Group):
    """A click group with lazily imported commands (``lazy``: name -> ``module:attribute``) that reports every
    error of its commands as one line (see the module's docstring) and exits with the error's status."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, its module imported on first use. Raises ImportError or AttributeError
        when the registry names something that is not there (a bug, not a user's mistake)."""
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            if debugging(os.environ, strict=True):
                debug_logging()
            return super().invoke(ctx)
        except WinarmError as error:
            report(error, str(error), error.exit_code)
        except BrokenPipeError:
            quiet_exit()
        except OSError as error:
            where = f" {error.filename}:" if error.filename else ""
            report(error, f"cannot go on:{where} {error.strerror or error}", EXIT_FAILURE)


def quiet_exit() -> NoReturn:
    """The reader of our output went away (``winarm env | head -1``): nothing is left to tell it, so exit 1
    without a line, and point stdout at /dev/null so Python's last flush does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_FAILURE)


def debugging(env: Mapping[str, str], *, strict: bool = False) -> bool:
    """Whether ``WINARM_DEBUG`` asks for the cause chain and the debug log. A value that is not yes or no raises
    :class:`UserError` when ``strict``, else counts as no."""
    try:
        return bool(Values({}, env)["debug"])
    except UserError:
        if strict:
            raise
        return False


def debug_logging() -> None:
    """Send the DEBUG records of winarm and of qemu.qmp (the QMP conversation) to stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


def report(error: BaseException, message: str, status: int) -> NoReturn:
    """Print ``winarm: message`` (and, when debugging, the traceback of ``error``) to stderr; exit ``status``."""
    click.echo(f"winarm: {message}", err=True)
    if debugging(os.environ):
        click.echo("".join(traceback.format_exception(error)).rstrip(), err=True)
    sys.exit(status)


def root() -> WinarmGroup:
    """The ``winarm`` group with every command of :data:`COMMANDS` registered, none imported yet."""

    @click.group(cls=WinarmGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="winarm")
    def main() -> None:
        """Run Windows 11/10 for ARM64 in QEMU, with a boot-phase clock."""

    assert isinstance(main, WinarmGroup)
    return main
