"""The share end to end: the Windows-shaped testbed installs through winarm with two shared folders; at first
logon the guest (a real arm64 Linux playing Windows) runs the share script the answer file's first logon names,
read from C: where specialize copied it from the answer medium: each ``net use`` of it mounts
``//10.0.2.4/<name>`` with the kernel's cifs client through QEMU's relay to winarm's smbd (retried while it
fails), creates folders, writes, renames and overwrites a file, and deletes a scratch file. The host then finds
the file with the mapped owner and modes. No Windows can run here; the guest checks what Windows would need (the
host.lan hosts line and AllowInsecureGuestAuth in specialize) and refuses otherwise. With a share login, the
login reaches the guest only through the answer medium's file: the cached answer file holds it nowhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.vmtools import Up

GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--timeout", "30"]


@pytest.mark.qemu
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the share's files get another owner (uid 4321)")
def test_the_guest_writes_to_the_shares_at_first_logon(tmp_path: Path, run_base: Path, share_root: Path,
                                                       testbed_iso: Path, placeholder_drivers: Path) -> None:
    folders = {}
    for name in ("Data", "Other"):
        folder = share_root / name.lower()
        folder.mkdir()
        os.chown(folder, 4321, 4322)
        folders[name] = folder
    vm = Up(tmp_path, run_base, *GUEST, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
            "--shared", f"Data={folders['Data']}", "--shared", f"Other={folders['Other']}",
            "--uid", "4321", "--gid", "4322", "--stop-at", "desktop-ready")
    try:
        assert vm.wait(300) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    events = vm.events()
    guest = [(e["name"], e.get("detail")) for e in events if e["kind"] == "guest-event"]
    assert ("share-mounted", "Data") in guest and ("share-mounted", "Other") in guest
    assert ("run-key-added", "WinarmMapShares") in guest, "mapped at every logon in the user's session too"
    assert not [g for g in guest if g[0] in ("share-map-failed", "command-failed")], guest
    written = [detail for name, detail in guest if name == "share-written"]
    assert written == ["Data winarm-testbed/first-logon/hello-renamed.txt",
                       "Other winarm-testbed/first-logon/hello-renamed.txt"]
    marker_t = {e["name"]: e["t"] for e in events if e["kind"] == "marker"}
    share_t = [e["t"] for e in events if e["kind"] == "guest-event" and e["name"] == "share-written"]
    assert all(marker_t["oobeSystem"] < t < marker_t["desktop-ready"] for t in share_t), "the shares map at first logon"
    ready = next(e for e in events if e["kind"] == "marker" and e["name"] == "desktop-ready")
    assert ready["source"] in ("share", "guest"), "desktop-ready by the share's file or the guest channel"
    for folder in folders.values():
        top = folder / "winarm-testbed"
        for directory in (top, top / "first-logon"):
            st = directory.stat()
            assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4321, 4322, 0o775), directory
        written_file = top / "first-logon" / "hello-renamed.txt"
        st = written_file.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4321, 4322, 0o664)
        assert "WINARM" in written_file.read_text()
        assert sorted(p.name for p in (top / "first-logon").iterdir()) == ["hello-renamed.txt"], \
            "renamed, not copied; the scratch file deleted"


@pytest.mark.qemu
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the share's files get another owner (uid 4321)")
def test_a_share_login_reaches_the_guest_through_the_medium_only(tmp_path: Path, run_base: Path, share_root: Path,
                                                                testbed_iso: Path, placeholder_drivers: Path) -> None:
    """The share script reads the login from the answer medium, stores it (cmdkey) and maps the share with it; the
    answer file Setup keeps (the guest's C:\\Windows\\Panther\\unattend.xml, read back from the disk) has no trace of
    it, and a later logon reaches the share with the stored login once the medium is gone."""
    folder = share_root / "data"
    folder.mkdir()
    os.chown(folder, 4321, 4322)
    password = "s3cret-Pw.9"
    common = [*GUEST, "--shared", f"Data={folder}", "--uid", "4321", "--gid", "4322", "--share-user", "alice"]
    env = {"SHARE_PASSWORD": password}
    vm = Up(tmp_path, run_base, *common, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
            "--stop-at", "desktop-ready", env=env)
    try:
        assert vm.wait(300) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    guest = [(e["name"], e.get("detail")) for e in vm.events() if e["kind"] == "guest-event"]
    assert ("share-login-stored", "host.lan alice") in guest
    assert ("share-mounted", "Data") in guest
    assert ("share-written", "Data winarm-testbed/first-logon/hello-renamed.txt") in guest
    assert (folder / "winarm-testbed" / "first-logon" / "hello-renamed.txt").is_file()
    cached = read_cached_answer(tmp_path / "t" / "disk.qcow2")
    assert "<unattend" in cached and password not in cached and "alice" not in cached

    later = Up(tmp_path, run_base, *common, "--stop-at", "desktop-ready", env=env)
    try:
        assert later.wait(240) == 0, "\n".join(later.lines)
    finally:
        later.kill()
    guest = [(e["name"], e.get("detail")) for e in later.events() if e["kind"] == "guest-event"]
    assert ("share-reconnected", "Data") in guest, guest
    assert not [g for g in guest if g[0] in ("share-map-failed", "run-key-failed")], guest


def read_cached_answer(disk: Path) -> str:
    """The guest's cached answer file (Windows' C:\\Windows\\Panther\\unattend.xml), read out of its FAT partition."""
    import subprocess

    from winarm_testbed.disk_image import partitions, read_partition

    windows = next(p for p in partitions(disk) if p.number == 2)
    raw = disk.with_name("windows.raw")
    read_partition(disk, windows, raw)
    try:
        out = subprocess.run(["mtype", "-i", str(raw), "::/Windows/Panther/unattend.xml"], capture_output=True,
                             text=True, check=True)
    finally:
        raw.unlink()
    return out.stdout
