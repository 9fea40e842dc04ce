"""The shared folder with real parts: winarm's smbd with its rendered smb.conf, and smbprotocol as the client,
used the way Windows uses a share (nested folders, rename, overwrite, delete). Owners and modes are checked on
the host with os.stat. These tests need root (smbd's forced owner), as the container runs winarm."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import smbclient
from smbprotocol.exceptions import LogonFailure, SMBException, SMBOSError

from tests.vmtools import REPO_ROOT
from winarm.config.share import Share, ShareSettings
from winarm.errors import RuntimeFailure
from winarm.services.smbd import Smbd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: smbd gives files another owner only as root")


def unc(port: int, *parts: str, share: str = "Data") -> str:
    del port
    return "\\".join([f"\\\\127.0.0.1\\{share}", *parts])


@contextmanager
def running(settings: ShareSettings, base: Path, port: int | None = None) -> Iterator[Smbd]:
    smbd = Smbd(settings, base / "samba", port)
    smbd.write_files()
    smbd.start()
    try:
        asyncio.run(smbd.wait_ready())
        yield smbd
    finally:
        smbclient.reset_connection_cache()
        asyncio.run(smbd.stop())


def login(port: int, user: str = "guest", password: str = "") -> None:
    smbclient.ClientConfig(require_secure_negotiate=False)
    smbclient.register_session("127.0.0.1", port=port, username=user, password=password, auth_protocol="ntlm",
                               require_signing=user != "guest")  # guests cannot sign; users must



def owner_and_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


@pytest.mark.parametrize(("file_mode", "dir_mode"), [(0o664, 0o775), (0o640, 0o750)])
def test_what_the_guest_creates_lands_with_the_mapped_owner_and_modes(
        run_base: Path, folder: Path, file_mode: int, dir_mode: int) -> None:
    existing = folder / "kept.txt"
    existing.write_text("the host's file")
    os.chown(existing, 1234, 1234)
    os.chmod(existing, 0o666)
    settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322, file_mode=file_mode,
                             dir_mode=dir_mode)
    with running(settings, run_base) as smbd:
        port = smbd.port
        login(port)
        smbclient.makedirs(unc(port, "a", "b", "c"), port=port)
        with smbclient.open_file(unc(port, "a", "b", "c", "new.txt"), "w", port=port) as handle:
            handle.write("first")
        smbclient.rename(unc(port, "a", "b", "c", "new.txt"), unc(port, "a", "b", "c", "renamed.txt"), port=port)
        with smbclient.open_file(unc(port, "a", "b", "c", "renamed.txt"), "w", port=port) as handle:
            handle.write("second, longer")
        with smbclient.open_file(unc(port, "scratch.tmp"), "w", port=port) as handle:
            handle.write("x")
        smbclient.remove(unc(port, "scratch.tmp"), port=port)
        with smbclient.open_file(unc(port, "kept.txt"), "w", port=port) as handle:
            handle.write("overwritten by the guest")

    for directory in (folder / "a", folder / "a" / "b", folder / "a" / "b" / "c"):
        assert owner_and_mode(directory) == (4321, 4322, dir_mode), directory
    renamed = folder / "a" / "b" / "c" / "renamed.txt"
    assert renamed.read_text() == "second, longer"
    assert owner_and_mode(renamed) == (4321, 4322, file_mode)
    assert not (folder / "a" / "b" / "c" / "new.txt").exists()
    assert not (folder / "scratch.tmp").exists()
    assert existing.read_text() == "overwritten by the guest"
    assert existing.stat().st_uid == 1234 and existing.stat().st_gid == 1234, "an existing file keeps its owner"


def test_read_only_share_refuses_writes(run_base: Path, folder: Path) -> None:
    (folder / "readme.txt").write_text("read me")
    settings = ShareSettings(shares=(Share("Data", folder, readonly=True),), uid=4321, gid=4322)
    with running(settings, run_base) as smbd:
        login(smbd.port)
        with smbclient.open_file(unc(smbd.port, "readme.txt"), "r", port=smbd.port) as handle:
            assert handle.read() == "read me"
        with pytest.raises(SMBOSError), smbclient.open_file(unc(smbd.port, "new.txt"), "w", port=smbd.port) as handle:
            handle.write("no")
        with pytest.raises(SMBOSError):
            smbclient.mkdir(unc(smbd.port, "dir"), port=smbd.port)
    assert sorted(p.name for p in folder.iterdir()) == ["readme.txt"]


def test_user_login_refuses_a_wrong_password_and_guests(run_base: Path, folder: Path) -> None:
    settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322, user="alice",
                             password="s3cret&<x>")
    with running(settings, run_base) as smbd:
        port = smbd.port
        with pytest.raises(LogonFailure):
            login(port, "alice", "wrong")
        smbclient.reset_connection_cache()
        with pytest.raises(SMBException):
            login(port)
            smbclient.listdir(unc(port), port=port)
        smbclient.reset_connection_cache()
        smbd.settings = ShareSettings(shares=settings.shares, uid=4321, gid=4322, user="alice", password="wrong")
        assert asyncio.run(smbd.check_health()) is False, "the health check logs in as the share user"
        smbd.settings = settings
        login(port, "alice", "s3cret&<x>")
        with smbclient.open_file(unc(port, "alice.txt"), "w", port=port, username="alice",
                                 password="s3cret&<x>") as handle:
            handle.write("hi")
        assert asyncio.run(smbd.check_health()) is True
    assert owner_and_mode(folder / "alice.txt") == (4321, 4322, 0o664)


def test_several_shares_each_with_its_folder(run_base: Path, share_root: Path) -> None:
    folders = []
    for name in ("one", "two"):
        path = share_root / name
        path.mkdir()
        os.chown(path, 4321, 4322)
        folders.append(path)
    settings = ShareSettings(shares=(Share("One", folders[0]), Share("Two", folders[1], readonly=True)),
                             uid=4321, gid=4322)
    with running(settings, run_base) as smbd:
        login(smbd.port)
        with smbclient.open_file(unc(smbd.port, "x.txt", share="One"), "w", port=smbd.port) as handle:
            handle.write("one")
        with pytest.raises(SMBOSError), \
                smbclient.open_file(unc(smbd.port, "x.txt", share="Two"), "w", port=smbd.port) as handle:
            handle.write("two")
    assert (folders[0] / "x.txt").read_text() == "one"
    assert not (folders[1] / "x.txt").exists()


def test_listens_on_loopback_only_and_keeps_its_state_in_its_directory(run_base: Path, folder: Path) -> None:
    settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322)
    with running(settings, run_base) as smbd:
        assert smbd.pid is not None
        listening = []
        state = set()
        # smbd forks a child per connection (the readiness probe's among them), which may end while we look
        for process in [psutil.Process(smbd.pid), *psutil.Process(smbd.pid).children(recursive=True)]:
            try:
                listening += [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
                state |= {f.path for f in process.open_files() if f.path.endswith((".tdb", ".dat"))}
            except psutil.NoSuchProcess:
                continue
        assert listening, "smbd listens somewhere"
        assert {(c.laddr.ip, c.laddr.port) for c in listening} == {("127.0.0.1", smbd.port)}
        # every file smbd opened for its state is in the VM's own samba directory
        assert state and all(path.startswith(str(run_base / "samba")) for path in state), state


def test_killed_smbd_is_restarted_and_the_client_reconnects(run_base: Path, folder: Path) -> None:
    settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322)
    smbd = Smbd(settings, run_base / "samba")
    smbd.write_files()
    smbd.start()
    seen: list[tuple[str, dict[str, object]]] = []

    async def scenario() -> None:
        await smbd.wait_ready()
        restarted = asyncio.Event()

        def on_event(kind: str, **details: object) -> None:
            seen.append((kind, details))
            if kind == "smbd-restarted":
                restarted.set()

        supervisor = asyncio.ensure_future(smbd.supervise(on_event, lambda line: None))
        loop = asyncio.get_running_loop()
        port = smbd.port

        def write(name: str) -> None:
            login(port)
            with smbclient.open_file(unc(port, name), "w", port=port) as handle:
                handle.write(name)

        await loop.run_in_executor(None, write, "before.txt")
        first = smbd.pid
        assert first is not None
        os.kill(first, 9)
        await asyncio.wait_for(restarted.wait(), 10)
        assert smbd.pid != first and smbd.alive
        smbclient.reset_connection_cache()  # the old TCP connection died with smbd; Windows reconnects too
        await loop.run_in_executor(None, write, "after.txt")
        assert await smbd.check_health()
        smbclient.reset_connection_cache()  # while smbd still answers: a closed socket makes the reset raise
        await smbd.stop()
        await supervisor

    try:
        asyncio.run(scenario())
    finally:
        smbclient.reset_connection_cache()
        asyncio.run(smbd.stop())
    kinds = [kind for kind, _ in seen]
    assert "smbd-exited" in kinds and "smbd-restarted" in kinds
    restarted = dict(seen)["smbd-restarted"]
    assert isinstance(restarted["ready_after"], float) and restarted["ready_after"] < 1.0
    assert (folder / "before.txt").read_text() == "before.txt"
    assert (folder / "after.txt").read_text() == "after.txt"
    assert not smbd.alive


def test_a_port_in_use_is_named_in_the_failure(run_base: Path, folder: Path) -> None:
    settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        smbd = Smbd(settings, run_base / "samba", port)
        smbd.write_files()
        smbd.start()
        try:
            # something else accepts on the port: that is not smbd being ready, and smbd exits saying why
            with pytest.raises(RuntimeFailure, match=f"port {port} on 127.0.0.1 is in use"):
                asyncio.run(smbd.wait_ready(timeout=10))
        finally:
            asyncio.run(smbd.stop())


def test_health_check_fails_when_smbd_is_gone(run_base: Path, folder: Path) -> None:
    settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322)
    with running(settings, run_base) as smbd:
        assert asyncio.run(smbd.check_health()) is True
        assert smbd.status()["healthy"] is True
        asyncio.run(smbd.stop())
        assert asyncio.run(smbd.check_health(timeout=5)) is False
        assert smbd.status()["healthy"] is False and smbd.status()["error"]


def test_works_when_winarm_is_not_root(tmp_path: Path) -> None:
    """winarm as an ordinary user (here uid 4444, which has no account name on this host): smbd runs as that
    user and the files are theirs."""
    base = Path(f"/tmp/wa-nr-{os.getpid()}")
    base.mkdir(mode=0o700)
    shared = base / "shared"
    shared.mkdir()
    for path in (base, shared):
        os.chown(path, 4444, 4444)
    script = f"""
import asyncio, os, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
import smbclient
from winarm.services.smbd import Smbd
from winarm.config.share import load_share_settings
settings = load_share_settings({{"shared": ({str(shared)!r},)}}, {{}})
smbd = Smbd(settings, __import__("pathlib").Path({str(base / "samba")!r}))
smbd.write_files(); smbd.start()
try:
    asyncio.run(smbd.wait_ready())
    smbclient.ClientConfig(require_secure_negotiate=False)
    smbclient.register_session("127.0.0.1", port=smbd.port, username="guest", password="", auth_protocol="ntlm",
                               require_signing=False)
    smbclient.makedirs(r"\\\\127.0.0.1\\Data\\x\\y", port=smbd.port)
    with smbclient.open_file(r"\\\\127.0.0.1\\Data\\x\\y\\f.txt", "w", port=smbd.port) as h:
        h.write("hi")
    print(settings.uid, settings.gid)
finally:
    smbclient.reset_connection_cache()
    asyncio.run(smbd.stop())
"""
    try:
        result = subprocess.run(
            ["setpriv", "--reuid=4444", "--regid=4444", "--clear-groups", sys.executable, "-c", script],
            capture_output=True, text=True, timeout=60, cwd="/", env={**os.environ, "HOME": str(base)}, check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == ["4444", "4444"]
        created = shared / "x" / "y" / "f.txt"
        assert created.read_text() == "hi"
        assert owner_and_mode(created) == (4444, 4444, 0o664)
        assert owner_and_mode(shared / "x") == (4444, 4444, 0o775)
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
