"""The share through ``winarm up``: smbd starts with the VM, QEMU relays the guest's 10.0.2.4:445 to it,
``winarm status`` reports it, and it ends with the VM however winarm ends. A firmware-only VM is enough here
(the guest's own use of the share is in test_install_share.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
import smbclient

from tests.vmtools import FIRMWARE_ONLY, Up, winarm


def smbd_processes(run_dir: Path) -> list[psutil.Process]:
    conf = str(run_dir / "samba" / "smb.conf")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if conf in (process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.qemu
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the share's files get another owner (uid 4321)")
def test_up_serves_the_share_reports_it_and_stops_it_with_the_vm(tmp_path: Path, run_base: Path,
                                                                  folder: Path) -> None:
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--shared", str(folder), "--uid", "4321", "--gid", "4322")
    try:
        vm.wait_line("share: healthy", 60)
        report = vm.status()
        share = report["share"]
        assert report["healthy"] is True
        assert share["path"] == str(folder) and (share["uid"], share["gid"]) == (4321, 4322)
        assert share["host_address"] == "127.0.0.1" and share["healthy"] is True
        port = share["host_port"]
        assert isinstance(port, int) and share["guest_unc"] == "\\\\host.lan\\Data"
        qemu = psutil.Process(report["qemu_pid"])
        (netdev,) = [arg for arg in qemu.cmdline() if arg.startswith("user,id=net0,")]
        forwards = netdev.split(",guestfwd=")[1:]  # the share's relay, then the guest channel's
        assert forwards[0] == f"tcp:10.0.2.4:445-cmd:socat STDIO TCP4:127.0.0.1:{port}", netdev
        assert forwards[1].startswith("tcp:10.0.2.5:80-cmd:socat STDIO UNIX-CONNECT:"), netdev
        processes = smbd_processes(run_base / "t")
        assert processes, "smbd runs"

        smbclient.ClientConfig(require_secure_negotiate=False)
        smbclient.register_session("127.0.0.1", port=port, username="guest", password="", auth_protocol="ntlm",
                                   require_signing=False)
        with smbclient.open_file("\\\\127.0.0.1\\Data\\from-test.txt", "w", port=port) as handle:
            handle.write("hello")
        smbclient.reset_connection_cache()
        created = (folder / "from-test.txt").stat()
        assert (created.st_uid, created.st_gid, created.st_mode & 0o777) == (4321, 4322, 0o664)

        human = winarm("status", "--name", "t", "--storage", str(tmp_path), env=vm.env)
        assert human.returncode == 0
        assert f"share \\\\host.lan\\Data -> {folder}" in human.stdout
        assert "share owner 4321:4322, modes 0664/0775, guest login" in human.stdout

        down = winarm("down", "--name", "t", "--storage", str(tmp_path), env=vm.env)
        assert down.returncode == 0, down.stderr
        assert vm.wait(30) == 0
        gone, alive = psutil.wait_procs(processes, timeout=5)
        assert not alive, f"smbd left behind: {alive}"
    finally:
        smbclient.reset_connection_cache()
        vm.kill()
    kinds = [e["kind"] for e in vm.events()]
    assert kinds.index("smbd-started") < kinds.index("spawned") < kinds.index("smbd-ready") < kinds.index("running")
    assert "share-health" in kinds and kinds[-1] == "exit"
    assert not (run_base / "t").exists(), "the run directory (with the Samba state) is removed"


@pytest.mark.qemu
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the share's files get another owner (uid 4321)")
def test_sigkill_of_winarm_takes_smbd_along(tmp_path: Path, run_base: Path, folder: Path) -> None:
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--shared", str(folder), "--uid", "4321", "--gid", "4322")
    try:
        vm.wait_line("share: healthy", 60)
        processes = smbd_processes(run_base / "t")
        assert processes
        vm.proc.send_signal(signal.SIGKILL)
        vm.proc.wait()
        gone, alive = psutil.wait_procs(processes, timeout=10)
        assert not alive, f"smbd outlived winarm: {alive}"
    finally:
        vm.kill()


@pytest.mark.qemu
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the share's files get another owner (uid 4321)")
def test_desktop_ready_written_to_the_share_is_a_marker(tmp_path: Path, run_base: Path, folder: Path) -> None:
    """What Windows' logon command does (echo to \\\\host.lan\\Data\\.winarm-desktop-ready), done by the test as
    the guest's SMB client: winarm takes it as the desktop-ready marker, deletes it, and stops there."""
    (folder / ".winarm-desktop-ready").write_text("stale, from an earlier run\n")
    vm = Up(tmp_path, run_base, *FIRMWARE_ONLY, "--shared", str(folder), "--stop-at", "desktop-ready")
    try:
        vm.wait_line("share: healthy", 60)
        assert not (folder / ".winarm-desktop-ready").exists(), "a stale marker file is removed at start"
        port = vm.status()["share"]["host_port"]
        smbclient.ClientConfig(require_secure_negotiate=False)
        smbclient.register_session("127.0.0.1", port=port, username="guest", password="", auth_protocol="ntlm",
                                   require_signing=False)
        with smbclient.open_file("\\\\127.0.0.1\\Data\\.winarm-desktop-ready", "w", port=port) as handle:
            handle.write("WINARM-PHASE desktop-ready\r\n")
        assert vm.wait(60) == 0, "\n".join(vm.lines)
    finally:
        smbclient.reset_connection_cache()
        vm.kill()
    markers = [e for e in vm.events() if e["kind"] == "marker"]
    assert markers == [{"t": markers[0]["t"], "kind": "marker", "name": "desktop-ready", "source": "share"}]
    assert not (folder / ".winarm-desktop-ready").exists()
    assert any("stopping (the guest reached desktop-ready)" in line for line in vm.lines)
