"""The ``guest_channel`` setting: on unless ``--no-guest-channel`` or ``GUEST_CHANNEL=N``; a bad yes/no is
refused with one line; its report socket is counted among the run directory's sockets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from winarm.config.host import HostFacts
from winarm.config.paths import SOCKET_PATH_MAX, VmPaths
from winarm.config.table import BY_NAME, UP
from winarm.config.vm import load_config
from winarm.errors import UserError


def config(tmp_path: Path, host: HostFacts, env: dict[str, str], **flags: object) -> bool:
    base: dict[str, object] = {"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}
    return load_config({**base, **flags}, env, host).guest_channel


def test_on_by_default_off_by_flag_or_environment_and_the_flag_wins(tmp_path: Path, host: HostFacts) -> None:
    assert config(tmp_path, host, {}) is True
    assert config(tmp_path, host, {}, guest_channel=False) is False
    assert config(tmp_path, host, {"GUEST_CHANNEL": "n"}) is False
    assert config(tmp_path, host, {"GUEST_CHANNEL": "N"}, guest_channel=True) is True
    with pytest.raises(UserError, match="^GUEST_CHANNEL 'maybe' is not yes or no: use Y or N$"):
        config(tmp_path, host, {"GUEST_CHANNEL": "maybe"})
    row = BY_NAME["guest_channel"]
    assert "guest_channel" in UP and row.flag == "--guest-channel/--no-guest-channel" and row.yes_no
    assert "boot order" in row.help_text, "the help says what is lost when it is off"


def test_the_report_socket_lives_in_the_run_dir_and_its_length_is_checked(tmp_path: Path) -> None:
    paths = VmPaths(tmp_path / "state", tmp_path / "run")
    assert paths.report_socket == tmp_path / "run" / "report.sock"
    paths.check_socket_lengths()
    fits = VmPaths(tmp_path, Path("/" + "r" * (SOCKET_PATH_MAX - len("/control.sock") - 1)))
    fits.check_socket_lengths()
    assert len(os.fsencode(fits.report_socket)) <= SOCKET_PATH_MAX
    too_long = VmPaths(tmp_path, Path("/" + "r" * (SOCKET_PATH_MAX - len("/report.sock"))))
    with pytest.raises(UserError, match="too long for unix sockets: set WINARM_RUN_DIR to a shorter path$"):
        too_long.check_socket_lengths()


def test_dry_run_prints_the_relay_and_the_switch_removes_it(tmp_path: Path) -> None:
    env = {**os.environ, "WINARM_RUN_DIR": str(tmp_path / "run, here")}
    base = [sys.executable, "-m", "winarm", "up", "--storage", str(tmp_path / "s"), "--no-share", "--no-tpm",
            "--disk-size", "1G", "--dry-run"]
    on = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60, check=False)
    off = subprocess.run([*base, "--no-guest-channel"], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    socket = f"{tmp_path}/run\\,,\\ here/windows/report.sock"
    assert f"user,id=net0,guestfwd=tcp:10.0.2.5:80-cmd:socat STDIO 'UNIX-CONNECT:{socket}'" in on.stdout.splitlines()
    assert "user,id=net0" in off.stdout.splitlines() and "10.0.2.5" not in off.stdout
