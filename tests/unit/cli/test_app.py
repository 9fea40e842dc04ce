"""The root group: one error handler for every command, WINARM_DEBUG, and commands imported only when they run."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from winarm.cli.app import DEBUG_LOGGERS, WinarmGroup
from winarm.cli.main import main
from winarm.errors import RuntimeFailure, UserError


@pytest.fixture(autouse=True)
def quiet_loggers() -> Iterator[None]:
    """Whatever a WINARM_DEBUG run attaches to winarm's and QMP's loggers is taken off again."""
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers)) for name in DEBUG_LOGGERS}
    yield
    for name, (level, handlers) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers


def failing_group() -> WinarmGroup:
    """A group whose commands fail the ways a command can: a user's mistake, a runtime failure, the storage."""

    @click.group(cls=WinarmGroup)
    def group() -> None:
        """Fails."""

    @group.command("mistake")
    def mistake() -> None:
        raise UserError("RAM size '8X' is not a size: use 8G")

    @group.command("broken")
    def broken() -> None:
        try:
            raise ValueError("the cause")
        except ValueError as cause:
            raise RuntimeFailure("QEMU exited early") from cause

    @group.command("full")
    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/storage/windows/disk.qcow2")

    return group


def test_a_users_mistake_is_one_line_and_status_2() -> None:
    result = CliRunner().invoke(failing_group(), ["mistake"], env={"WINARM_DEBUG": None})
    assert result.exit_code == 2
    assert result.stderr == "winarm: RAM size '8X' is not a size: use 8G\n"
    assert "Traceback" not in result.output


def test_a_runtime_failure_is_one_line_and_status_1() -> None:
    result = CliRunner().invoke(failing_group(), ["broken"], env={"WINARM_DEBUG": None})
    assert (result.exit_code, result.stderr) == (1, "winarm: QEMU exited early\n")


def test_a_failing_storage_is_one_line_and_status_1() -> None:
    result = CliRunner().invoke(failing_group(), ["full"], env={"WINARM_DEBUG": None})
    assert result.exit_code == 1
    assert result.stderr == "winarm: cannot go on: /storage/windows/disk.qcow2: No space left on device\n"


def test_winarm_debug_shows_the_cause_chain_and_turns_on_debug_logging() -> None:
    result = CliRunner().invoke(failing_group(), ["broken"], env={"WINARM_DEBUG": "1"})
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "winarm: QEMU exited early"
    assert "Traceback" in result.stderr and "ValueError: the cause" in result.stderr
    assert "direct cause" in result.stderr and lines[-1].endswith("RuntimeFailure: QEMU exited early")
    for name in DEBUG_LOGGERS:
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name


def test_winarm_debug_that_is_not_yes_or_no_is_a_mistake() -> None:
    result = CliRunner().invoke(main, ["env"], env={"WINARM_DEBUG": "loud"})
    assert (result.exit_code, result.stderr) == (2, "winarm: WINARM_DEBUG 'loud' is not yes or no: use Y or N\n")


def test_a_real_commands_mistake_goes_through_the_handler(tmp_path: object) -> None:
    result = CliRunner().invoke(main, ["phases", "--name", "a/b"], env={"WINARM_DEBUG": None, "NAME": None})
    assert result.exit_code == 2
    assert result.stderr.startswith("winarm: VM name 'a/b' is not allowed") and result.stderr.count("\n") == 1


def test_every_registered_command_loads_and_lists() -> None:
    ctx = click.Context(main)
    assert isinstance(main, WinarmGroup)
    names = main.list_commands(ctx)
    assert {"up", "down", "status", "phases", "prepare", "bench", "env", "inspect", "unattend", "testbed"} <= set(names)
    for name in names:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.help, name


def test_winarm_up_imports_no_other_commands_module() -> None:
    probe = (
        "import sys\n"
        "from winarm.cli.main import main\n"
        "main(['up', '--help'], standalone_mode=False)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('winarm.cli'))), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    loaded = set(done.stderr.split())
    assert "winarm.cli.up" in loaded, "the probe ran up"
    others = {"winarm.cli.lifecycle", "winarm.cli.phases", "winarm.cli.prepare", "winarm.cli.bench",
              "winarm.cli.env", "winarm.cli.inspect", "winarm.cli.unattend", "winarm.cli.testbed"}
    assert not loaded & others, sorted(loaded & others)


def test_a_reader_that_goes_away_is_not_an_error_line() -> None:
    """``winarm env | head -1`` once head has gone: winarm's output meets a closed pipe (a real one, its read
    end closed before winarm writes) and winarm stops without a 'cannot go on' line or a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "winarm", "env"], stdout=write_end, stderr=subprocess.PIPE,
                              timeout=30, check=False)
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == 1
