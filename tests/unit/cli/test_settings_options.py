"""The commands' options and ``winarm env`` come from the settings table: each default, env name and help once."""

from __future__ import annotations

import click
from click.testing import CliRunner

from winarm.cli.main import main
from winarm.config.table import BY_NAME, PREPARE, RENDER, SETTINGS, UP, VM


def command(*path: str) -> click.Command:
    group: click.Command = main
    for name in path:
        assert isinstance(group, click.Group)
        found = group.get_command(click.Context(group), name)
        assert found is not None, name
        group = found
    return group


def options_of(cmd: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in cmd.params if isinstance(p, click.Option) and p.name is not None}


def test_the_help_of_ram_names_its_env_and_default_from_the_table() -> None:
    ram = options_of(command("up"))["ram"]
    assert ram.help == BY_NAME["ram"].help_text
    assert "RAM_SIZE" in (ram.help or "") and f"default {BY_NAME['ram'].default}" in (ram.help or "")
    assert BY_NAME["ram"].default == "4G"
    helps = CliRunner().invoke(main, ["up", "--help"], terminal_width=400).stdout
    assert "[env RAM_SIZE; default 4G]" in helps


def test_every_settings_option_of_every_command_is_the_tables() -> None:
    for path, names in ((("up",), UP), (("prepare",), PREPARE), (("unattend", "render"), RENDER), (("down",), VM),
                        (("status",), VM), (("phases",), VM), (("bench",), ("iso", "drivers"))):
        opts = options_of(command(*path))
        for name in names:
            setting = BY_NAME[name]
            option = opts[name]
            assert option.help == setting.help_text, (path, name)
            assert option.default is None, f"{path} {name}: not given must stay None so env and table apply"
            assert setting.flag is not None and setting.flag.split("/")[0] in option.opts, (path, name)
            for env in setting.env:
                assert env in setting.help_text, (name, env)


def test_a_choice_shows_the_tables_choices() -> None:
    helps = CliRunner().invoke(main, ["up", "--help"], terminal_width=400).stdout
    assert "--drivers-pass [windowsPE|specialize|firstlogon]" in helps
    assert "--disk-bus [virtio-blk|virtio-scsi|nvme]" in helps


def test_env_lists_every_setting_once_with_its_env_names() -> None:
    result = CliRunner().invoke(main, ["env"], env={"WINARM_DEBUG": None})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    listed = [s for s in SETTINGS if s.env]
    assert len(lines) == len(listed)
    for setting in listed:
        names = ", ".join(setting.env)
        rows = [line for line in lines if line.split("  ")[0] == names]
        assert len(rows) == 1, (setting.name, rows)
        assert (setting.flag or setting.help) in rows[0]
        shown = setting.shown_default
        if shown is not None:
            assert f"default {shown}" in rows[0], rows[0]
    assert any(line.startswith("WINARM_DEBUG ") for line in lines)
    assert any(line.startswith("KVM ") for line in lines)
