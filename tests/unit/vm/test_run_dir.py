"""Run directories no other local user can squat (issue 14, finding 4): a planted base, a link in place of the
run directory or a planted control socket must be refused or distrusted, with the victim's files untouched.

"Another user" is uid 65534: the tests chown to it, so they need root (as the CI runs)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from winarm.config.paths import VmPaths
from winarm.errors import UserError
from winarm.vm.control import ask
from winarm.vm.launch import _prepare_run_dir
from winarm.vm.run_dir import make_run_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it plays another user by chown and setuid")

OTHER = 65534


def victim_files(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("notes.pid", "data.sock", "thesis.txt"):
        (victim / name).write_text(name)
    return victim


def test_a_link_in_place_of_the_run_directory_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = victim_files(tmp_path)
    base = tmp_path / "run"
    base.mkdir(mode=0o700)
    (base / "vm").symlink_to(victim)
    paths = VmPaths(tmp_path / "state", base / "vm")
    with pytest.raises(UserError, match="is a link or not a directory"):
        _prepare_run_dir(paths)
    assert sorted(p.name for p in victim.iterdir()) == ["data.sock", "notes.pid", "thesis.txt"]


def test_a_base_another_user_made_first_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "winarm-1000"
    base.mkdir(mode=0o777)
    os.chown(base, OTHER, OTHER)
    with pytest.raises(UserError, match=f"belongs to uid {OTHER}"):
        make_run_dir(base / "vm")
    assert not (base / "vm").exists()


def test_a_base_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "run").symlink_to(real)
    with pytest.raises(UserError, match="is a link"):
        make_run_dir(tmp_path / "run" / "vm")
    assert list(real.iterdir()) == []


def test_a_world_writable_base_needs_the_sticky_bit(tmp_path: Path) -> None:
    base = tmp_path / "open"
    base.mkdir()
    base.chmod(0o777)
    with pytest.raises(UserError, match="without the sticky bit"):
        make_run_dir(base / "vm")
    base.chmod(0o1777)  # like /tmp: others cannot rename or remove what is ours
    make_run_dir(base / "vm")
    assert (base / "vm").stat().st_mode & 0o777 == 0o700


def test_a_run_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vm").mkdir(mode=0o700)
    os.chown(tmp_path / "vm", OTHER, OTHER)
    with pytest.raises(UserError, match=f"belongs to uid {OTHER}"):
        make_run_dir(tmp_path / "vm")


def test_a_run_directory_of_ours_with_wider_bits_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm").chmod(0o755)
    make_run_dir(tmp_path / "vm")
    assert (tmp_path / "vm").stat().st_mode & 0o777 == 0o700


def test_a_fresh_base_and_run_directory_are_private(tmp_path: Path) -> None:
    make_run_dir(tmp_path / "base" / "vm")
    assert (tmp_path / "base").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "base" / "vm").stat().st_mode & 0o777 == 0o700


FAKE_DAEMON = """
import os, socket, sys
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)  # as root: the socket file is ours
os.setgid({uid}); os.setuid({uid})
server.listen(1)  # the peer credentials are the listener's at listen()
print("ready", flush=True)
conn, _ = server.accept()
conn.recv(4096)
conn.sendall(b'{{"name": "ghost", "state": "running", "healthy": true}}\\n')
conn.close()
"""


def test_a_daemon_of_another_uid_behind_our_socket_is_not_trusted(tmp_path: Path) -> None:
    """The socket file is ours (bound as root), but the process answering runs as another uid: SO_PEERCRED."""
    run_dir = tmp_path / "vm"
    run_dir.mkdir(mode=0o700)
    sock = run_dir / "control.sock"
    child = subprocess.Popen([sys.executable, "-c", FAKE_DAEMON.format(uid=OTHER), str(sock)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert ask(sock, "status") is None
    finally:
        child.kill()
        child.wait()


def test_a_socket_another_user_planted_is_never_dialled(tmp_path: Path) -> None:
    run_dir = tmp_path / "vm"
    run_dir.mkdir(mode=0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(run_dir / "control.sock"))
    server.listen(1)
    server.setblocking(False)
    os.chown(run_dir / "control.sock", OTHER, OTHER)
    try:
        assert ask(run_dir / "control.sock", "status") is None
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    finally:
        server.close()


USER_DAEMON = """
import os, socket, sys
os.setgid({uid}); os.setuid({uid})
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
conn.recv(4096)
conn.sendall(b'{{"name": "users-vm", "state": "running", "healthy": true}}\\n')
conn.close()
"""


def test_root_may_ask_a_users_daemon_when_everything_is_that_users() -> None:
    """Root asking a VM a user runs (its run directory, socket and daemon all that user's) gets the answer."""
    top = Path(tempfile.mkdtemp(prefix="wa-rd-", dir="/tmp"))  # pytest's folders are 0700: the user could not enter
    try:
        os.chmod(top, 0o755)
        run_dir = top / "vm"
        run_dir.mkdir(mode=0o700)
        os.chown(run_dir, OTHER, OTHER)
        sock = run_dir / "control.sock"
        child = subprocess.Popen([sys.executable, "-c", USER_DAEMON.format(uid=OTHER), str(sock)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            reply = ask(sock, "status")
            assert reply is not None and reply["name"] == "users-vm"
        finally:
            child.kill()
            child.wait()
    finally:
        shutil.rmtree(top, ignore_errors=True)
