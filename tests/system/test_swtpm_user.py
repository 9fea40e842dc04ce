"""The real swtpm_setup run by winarm as an ordinary user (uid 65534, through setpriv): with winarm's own
configuration the TPM is manufactured, its certificates signed by an authority in the VM's folder; the same
command without that configuration fails on the system-wide authority, which is what users met before."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vmtools import FIRMWARE_ONLY, REPO_ROOT, Up, family

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it switches to another user with setpriv")

UID = 65534
SYSTEM_CA = Path("/var/lib/swtpm-localca")


@pytest.fixture
def user_home() -> Iterator[Path]:
    """A home owned by the user, under /tmp: pytest's tmp_path sits in a root-only (0700) folder the user
    could not enter."""
    home = Path(tempfile.mkdtemp(prefix="wa-tpm-", dir="/tmp"))
    os.chown(home, UID, UID)
    try:
        yield home
    finally:
        shutil.rmtree(home)


def as_user(argv: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as the user with a home and XDG folders of theirs, and nothing else of root's environment."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share")}
    return subprocess.run(["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir() if p.is_file()}


def test_a_user_manufactures_the_tpm_with_an_authority_of_their_own(user_home: Path) -> None:
    vm = user_home / "vm"
    script = f"""
import sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from pathlib import Path
from winarm.services.swtpm import Swtpm
vm = Path({str(vm)!r})
vm.mkdir()
Swtpm(vm / "tpm", vm / "tpm.sock", vm / "swtpm.log", vm / "tpm-ca")._manufacture()
"""
    system_before = snapshot(SYSTEM_CA) if os.access(SYSTEM_CA, os.R_OK) else {}
    result = as_user([sys.executable, "-c", script], user_home, Path("/"))
    log = (vm / "swtpm.log").read_text() if (vm / "swtpm.log").exists() else ""
    assert result.returncode == 0, result.stderr[-2000:] + log[-2000:]
    assert "Successfully authored TPM state" in log and "Successfully created EK certificate" in log, log
    state = vm / "tpm" / "tpm2-00.permall"
    assert state.stat().st_size > 0 and state.stat().st_uid == UID
    ca = vm / "tpm-ca"
    assert (ca.stat().st_uid, ca.stat().st_mode & 0o777) == (UID, 0o700)
    assert {"signkey.pem", "issuercert.pem", "certserial"} <= {p.name for p in ca.iterdir()}
    assert "--configfile ./tpm-ca/swtpm-localca.conf" in log, "the certificates came from the VM's authority"
    if system_before:
        assert snapshot(SYSTEM_CA) == system_before, "the system-wide authority is left alone"


def test_without_winarms_configuration_the_same_user_fails(user_home: Path) -> None:
    """The command winarm ran before, in the same conditions: the proof that the configuration is the fix."""
    vm = user_home / "vm"
    vm.mkdir()
    (vm / "tpm").mkdir()
    for path in (vm, vm / "tpm"):
        os.chown(path, UID, UID)
    result = as_user(["swtpm_setup", "--tpm2", "--tpmstate", "./tpm", "--create-ek-cert", "--create-platform-cert",
                      "--lock-nvram", "--overwrite"], user_home, vm)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"statedir {SYSTEM_CA}" in result.stdout + result.stderr


@pytest.mark.qemu
def test_winarm_up_with_the_default_tpm_runs_as_a_user(user_home: Path) -> None:
    """The whole ``winarm up`` of a firmware-only VM with its TPM, as the user: it reaches running with swtpm
    (the user's) serving QEMU, and stops cleanly."""
    storage, run_base = user_home / "storage", user_home / "run"
    for folder in (storage, run_base):
        folder.mkdir(mode=0o700)
        os.chown(folder, UID, UID)
    env = {"HOME": str(user_home), "XDG_CONFIG_HOME": str(user_home / ".config")}
    vm = Up(storage, run_base, *FIRMWARE_ONLY, "--tpm", env=env, uid=UID)
    try:
        vm.wait_line("running (tcg)", 60)
        swtpm = [p for p in family(vm.proc.pid) if p.name() == "swtpm"]
        assert [p.uids().effective for p in swtpm] == [UID], "one swtpm, run as the user"
        assert vm.status()["state"] == "running"
        vm.proc.send_signal(signal.SIGTERM)
        assert vm.wait(30) == 0, "\n".join(vm.lines)
    finally:
        vm.close()
    kinds = [e["kind"] for e in vm.events()]
    assert "swtpm-started" in kinds and "swtpm-lost" not in kinds, kinds
    assert (storage / "t" / "tpm" / "tpm2-00.permall").stat().st_uid == UID
    assert (storage / "t" / "tpm-ca" / "signkey.pem").stat().st_uid == UID
