"""``winarm env``: the environment variables winarm reads, from the settings table."""

from __future__ import annotations

import click

from winarm.config.table import SETTINGS, Setting


def env_line(setting: Setting) -> str:
    """One row: the environment names, then the flag and default, or (environment only) what it does."""
    shown = setting.shown_default
    if shown is None and callable(setting.default):
        shown = str(setting.default())
    names = ", ".join(setting.env)
    if setting.flag is None:
        return f"{names:<20} {setting.help}" + (f"; default {shown}" if shown is not None else "")
    return f"{names:<20} {setting.flag:<32} {f'default {shown}' if shown is not None else ''}".rstrip()


@click.command("env")
def env() -> None:
    """List the environment variables winarm reads, the option each stands for and its default."""
    for setting in SETTINGS:
        if setting.env:
            click.echo(env_line(setting))
