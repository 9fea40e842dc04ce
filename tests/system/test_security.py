"""What a running VM exposes, with real QEMU, smbd and the metrics endpoint: every listener on loopback, the
run directory and its sockets private, and VNC behind a password that never reaches a command line."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

import psutil
import pytest

from tests.vmtools import FIRMWARE_ONLY, Up, family

pytestmark = pytest.mark.qemu
VNC_SECRET = "Vq7#xZ2!"
WINDOWS_SECRET = "Wz9-never-in-a-child"




def rfb_security_types(where: int | str) -> tuple[list[int], socket.socket]:
    """Do the RFB 3.8 version handshake with VNC on loopback port ``where`` (or the unix socket at that path);
    the security types the server offers."""
    if isinstance(where, str):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(where)
    else:
        conn = socket.create_connection(("127.0.0.1", where), timeout=10)
    version = conn.recv(12)
    assert version.startswith(b"RFB 003."), version
    conn.sendall(b"RFB 003.008\n")
    count = conn.recv(1)[0]
    return list(conn.recv(count)), conn


def test_vnc_password_is_set_through_qmp_and_enforced(tmp_path: Path, run_base: Path) -> None:
    """The RFB handshake shows QEMU asks for VNC authentication (type 2) and refuses a wrong answer to its
    challenge. (Answering with the right one needs DES, which nothing installed here provides.)"""
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--vnc", "127.0.0.1",
            env={"VNC_PASSWORD": VNC_SECRET, "PASSWORD": WINDOWS_SECRET})
    try:
        vm.wait_line("running (tcg)", 60)
        vm.wait_line("display: VNC on", 30)
        report = vm.status()
        assert report["vnc_password"] is True and VNC_SECRET not in str(report)
        children = [p for p in family(vm.proc.pid) if p.pid != vm.proc.pid]
        assert any(p.pid == report["qemu_pid"] for p in children)
        for process in family(vm.proc.pid):
            assert VNC_SECRET not in " ".join(process.cmdline()), process.name()
        for process in children:  # issue 14: the children inherited winarm's secrets
            environ = Path(f"/proc/{process.pid}/environ").read_bytes()
            assert VNC_SECRET.encode() not in environ and WINDOWS_SECRET.encode() not in environ, process.name()
        qemu = psutil.Process(report["qemu_pid"])
        vnc_arg = qemu.cmdline()[qemu.cmdline().index("-vnc") + 1]
        assert vnc_arg.endswith(",password=on"), vnc_arg
        port = int(report["vnc"].rsplit(":", 1)[1])
        types, conn = rfb_security_types(port)
        with conn:
            assert types == [2], f"only VNC authentication is offered, not {types}"
            conn.sendall(b"\x02")
            challenge = conn.recv(16)
            assert len(challenge) == 16
            conn.sendall(bytes(16))
            assert conn.recv(4) == b"\x00\x00\x00\x01", "a wrong response is refused"
        assert any(e["kind"] == "vnc-password-set" for e in vm.events())
        vm.proc.terminate()
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    assert VNC_SECRET not in "\n".join(vm.lines)
    for path in (tmp_path / "t").rglob("*"):
        if path.is_file():
            assert VNC_SECRET.encode() not in path.read_bytes(), path


def test_every_listener_is_on_loopback_and_the_run_dir_is_private(tmp_path: Path, run_base: Path,
                                                                   share_root: Path) -> None:
    shared = share_root / "shared"
    shared.mkdir()
    os.chown(shared, 4321, 4322)  # not root's: root as the share's default owner is refused
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--shared", str(shared), "--metrics-port", str(metrics_port),
            "--tpm")
    try:
        vm.wait_line("share: healthy", 60)
        report = vm.status()
        assert report["vnc"] == f"unix:{report['run_dir']}/vnc.sock", "VNC on its socket by default (issue 14)"
        types, conn = rfb_security_types(report["vnc"].removeprefix("unix:"))
        conn.close()
        assert 1 in types, "on its socket VNC needs no password: only winarm's user can enter the run directory"
        listeners = []
        for process in family(vm.proc.pid):
            with contextlib.suppress(psutil.NoSuchProcess):  # smbd's per-connection children come and go
                listeners += [(process.name(), c.laddr) for c in process.net_connections(kind="inet")
                              if c.status == psutil.CONN_LISTEN]
        ports = {addr.port for _, addr in listeners}
        assert ports == {metrics_port, report["share"]["host_port"]}, f"no TCP VNC by default: {listeners}"
        for name, addr in listeners:
            assert addr.ip in ("127.0.0.1", "::1"), f"{name} listens on {addr.ip}:{addr.port}"
        run_dir = Path(report["run_dir"])
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        own = [p for p in run_dir.iterdir() if p.is_socket()]
        assert {p.name for p in own} >= {"qmp.sock", "serial.sock", "control.sock", "swtpm.sock", "vnc.sock"}, own
        for sock in own:
            if sock.name != "vnc.sock":  # QEMU makes that one with its umask: the 0700 run directory guards it
                assert stat.S_IMODE(sock.stat().st_mode) == 0o600, f"{sock} is open to others"
        for sock in run_dir.rglob("*"):  # smbd's own message sockets are 0777, in folders only root can enter
            if sock.is_socket() and sock.parent != run_dir:
                assert stat.S_IMODE(sock.parent.stat().st_mode) & 0o007 == 0, f"{sock.parent} is open to others"
        vm.proc.terminate()
        assert vm.wait(30) == 0
    finally:
        vm.kill()


def test_vnc_beyond_loopback_gets_a_password_made_at_the_first_start(tmp_path: Path, run_base: Path) -> None:
    """Issue 14, finding 8: VNC on all addresses had no password while Windows logs on by itself. Now winarm makes
    one, keeps it 0600 with the VM, says where (never what), and QEMU asks for it."""
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--vnc", "0.0.0.0")
    try:
        line = vm.wait_line("display: VNC on", 60)
        kept = tmp_path / "t" / "vnc-password"
        assert f"(password in {kept})" in line, line
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        secret = kept.read_text().strip()
        report = vm.status()
        assert report["vnc_password"] is True and report["vnc"].startswith("0.0.0.0:")
        types, conn = rfb_security_types(int(report["vnc"].rsplit(":", 1)[1]))
        conn.close()
        assert types == [2], f"only VNC authentication is offered, not {types}"
        vm.proc.terminate()
        assert vm.wait(30) == 0
    finally:
        vm.kill()
    assert secret not in "\n".join(vm.lines)
