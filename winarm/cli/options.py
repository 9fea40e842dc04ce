"""The commands' settings options, made from the settings table, and the VM a command names.

Every option of a setting takes its flag, help, metavar and kind from :mod:`winarm.config.table`; its click
default is None ("not given"), so the environment and the table's default apply when the command resolves it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from winarm.config.paths import VmPaths
from winarm.config.table import BY_NAME, Setting
from winarm.config.values import Values
from winarm.config.vm import check_name

F = TypeVar("F", bound=Callable[..., Any])


def option(setting: Setting) -> Callable[[F], F]:
    """The click option of one setting. Raises ValueError for a row without a flag (environment only)."""
    if setting.flag is None:
        raise ValueError(f"setting {setting.name} has no flag")
    kwargs: dict[str, Any] = {"default": None, "help": setting.help_text, "multiple": setting.multiple}
    if setting.metavar is not None:
        kwargs["metavar"] = setting.metavar
    elif setting.choices:
        kwargs["metavar"] = f"[{'|'.join(setting.choices)}]"
    if setting.yes_no and "/" not in setting.flag:
        kwargs["is_flag"] = True
    return click.option(setting.flag, setting.name, **kwargs)


def options(*names: str) -> Callable[[F], F]:
    """The options of the settings ``names``, listed by help in this order."""

    def decorate(func: F) -> F:
        for name in reversed(names):
            func = option(BY_NAME[name])(func)
        return func

    return decorate


def vm_paths(name: str | None, storage: str | None) -> tuple[str, VmPaths]:
    """The VM a command names (``--name``, ``--storage``, their environment names or defaults) and its paths.
    Raises :class:`~winarm.errors.UserError` for a bad name."""
    values = Values({"name": name, "storage": storage}, os.environ)
    vm = check_name(str(values["name"]))
    base = Path(str(values["storage"])).expanduser().absolute()
    return vm, VmPaths(base / vm, Path(str(values["run_base"])) / vm)
