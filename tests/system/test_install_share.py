"""The share end to end: the Windows-shaped testbed installs through winarm with two shared folders; at first
logon the guest (a real arm64 Linux playing Windows) runs the answer file's ``net use`` commands by mounting
``//10.0.2.4/<name>`` with the kernel's cifs client through QEMU's relay to winarm's smbd, creates folders,
writes, renames and overwrites a file, and deletes a scratch file. The host then finds the file with the
mapped owner and modes. No Windows can run here; the guest checks what Windows would need (the host.lan
hosts line and AllowInsecureGuestAuth in specialize) and refuses otherwise."""

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
