"""The unattended install end to end: the Windows-shaped test ISO, the answer medium, the guest playing Setup.

The guest is a real arm64 Linux (no Windows can be had here) that does what Setup does with our files: reads
Autounattend.xml from the answer medium, loads $WinPEDriver$ in windowsPE, runs the driver step in the pass
the answer file names, and reports each pass as a phase. The drivers are placeholders with the real layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vmtools import tree_digest, winarm

GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--timeout", "30"]


PASSWORD = "Zebra-Quartz-4711"
"""A password that cannot appear by chance: found anywhere but in the guest's disk, it leaked."""


def test_prepare_builds_once_and_prints_the_path(tmp_path: Path, testbed_iso: Path, placeholder_drivers: Path) -> None:
    args = ["prepare", "--name", "p", "--storage", str(tmp_path), "--iso", str(testbed_iso),
            "--drivers", str(placeholder_drivers), "--no-secure-boot"]
    first = winarm(*args)
    assert first.returncode == 0, first.stderr
    medium = Path(first.stdout.strip().splitlines()[-1])
    assert medium.is_file() and "built" in first.stderr and "Windows 11 Pro" in first.stderr
    before = medium.stat().st_mtime_ns
    second = winarm(*args)
    assert second.stdout.strip().splitlines()[-1] == str(medium) and "cached" in second.stderr
    assert medium.stat().st_mtime_ns == before


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--drivers", "/nonexistent/virtio"], "does not exist"),
    (["--no-drivers-placeholder"], "no virtio drivers given"),
    (["--edition", "Windows 11 Enterprise"], "is not on this ISO"),
    (["--username", "Admin/istrator"], "username"),
    (["--language", "xx-NOPE"], "xx-NOPE"),
])
def test_bad_install_input_is_refused_and_changes_nothing(tmp_path: Path, run_base: Path, testbed_iso: Path, *,
                                                          placeholder_drivers: Path, extra: list[str],
                                                          fragment: str) -> None:
    storage = tmp_path / "storage"
    (storage / "t").mkdir(parents=True)
    (storage / "t" / "keep.txt").write_text("user data")
    before = tree_digest(storage)
    drivers = [] if extra == ["--no-drivers-placeholder"] else ["--drivers", str(placeholder_drivers)]
    extra = [] if extra == ["--no-drivers-placeholder"] else extra
    result = winarm("up", "--name", "t", "--storage", str(storage), *GUEST, "--iso", str(testbed_iso),
                    *drivers, *extra, env={"WINARM_RUN_DIR": str(run_base)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and fragment in result.stderr and "Traceback" not in result.stderr
    assert tree_digest(storage) == before
