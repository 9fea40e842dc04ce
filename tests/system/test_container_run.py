"""The image really run: built from the Dockerfile with podman (no Docker engine here; a Debian base made with
debootstrap, as no registry is reachable), started with the testbed ISO as /boot.iso and a shared folder,
then stopped with `podman stop` and a grace period. The guest is the Windows-shaped testbed (a real arm64
Linux playing Setup), the drivers the placeholder tree: no Windows or virtio-win can be had here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.vmtools import REPO_ROOT

REPO = REPO_ROOT
RUNTIME = ["--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman_unusable() -> str | None:
    """Why podman cannot run containers on this machine, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (make deps installs it)"
    if os.geteuid() != 0:
        return "the container test runs podman as root (the image's smbd gives files another owner)"
    probe = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        return f"podman info failed: {probe.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    reason = podman_unusable()
    if reason is not None:
        pytest.skip(reason)
    done = subprocess.run([str(REPO / "scripts" / "container-image")], capture_output=True, text=True,
                          check=False, timeout=1800, cwd=REPO)
    assert done.returncode == 0, f"image build failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout.strip().splitlines()[-1]


def wait_for_log_line(name: str, fragment: str, timeout: float) -> list[str]:
    """Follow the container's output until a line contains ``fragment``; fail with what it printed."""
    lines: list[str] = []
    with subprocess.Popen(["podman", "logs", "-f", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as logs:
        assert logs.stdout is not None
        deadline = time.monotonic() + timeout
        try:
            for line in logs.stdout:
                lines.append(line.rstrip("\n"))
                if fragment in line:
                    return lines
                if time.monotonic() > deadline:
                    break
        finally:
            logs.kill()
    raise AssertionError(f"no {fragment!r} from the container within {timeout} s:\n" + "\n".join(lines[-60:]))


@pytest.mark.qemu
@pytest.mark.container
def test_the_image_installs_the_testbed_and_stops_gracefully(image: str, tmp_path: Path, share_root: Path,
                                                             testbed_iso: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    shared = share_root / "shared"  # left for docker-style creation: root-owned, empty, adopted for UID 1000
    shared.mkdir()
    name = f"winarm-test-{os.getpid()}"
    run = subprocess.run(
        ["podman", "run", "-d", *RUNTIME, *LIMITS, "--name", name,
         "-v", f"{testbed_iso}:/boot.iso:ro", "-v", f"{storage}:/storage", "-v", f"{shared}:/shared",
         "-e", "RAM_SIZE=1G", "-e", "CPU_CORES=2", "-e", "DISK_SIZE=1G", "-e", "TPM=N", "-e", "TIMEOUT=60",
         "-e", "UID=1000", "-e", "GID=1000", image, "--no-secure-boot"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    try:
        lines = wait_for_log_line(name, "phase first-logon", 600)
        assert any("share: healthy" in line for line in lines), lines[-40:]
        status = subprocess.run(["podman", "exec", name, "winarm", "status", "--json"], capture_output=True,
                                text=True, check=False, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert report["state"] == "running" and report["healthy"] is True and report["accel"] == "tcg"
        assert report["share"]["path"] == "/shared" and report["share"]["healthy"] is True
        assert (report["share"]["uid"], report["share"]["gid"]) == (1000, 1000)
        health = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True, text=True,
                                check=False, timeout=60)
        assert health.returncode == 0, f"the image's HEALTHCHECK: {health.stdout} {health.stderr}"

        stop = subprocess.run(["podman", "stop", "-t", "120", name], capture_output=True, text=True,
                              check=False, timeout=200)
        assert stop.returncode == 0, stop.stderr
        code = subprocess.run(["podman", "inspect", name, "--format", "{{.State.ExitCode}}"],
                              capture_output=True, text=True, check=True).stdout.strip()
        logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, check=False).stdout
        assert code == "0", logs[-3000:]
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)

    events = [json.loads(line) for line in (storage / "windows" / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert "powerdown-requested" in kinds, "podman stop reached winarm as SIGTERM"
    exit_event = events[-1]
    assert exit_event["kind"] == "exit" and exit_event["stop"] == "guest" and exit_event["clean"] is True, exit_event
    # playing Windows, the test guest's own steps are guest events: its last is poweroff, at the power button
    steps = [e["name"] for e in events if e["kind"] == "guest-event" and e["name"] in ("init", "ready", "poweroff")]
    assert steps[-2:] == ["ready", "poweroff"], "the guest shut itself down at the power button"
    written = shared / "winarm-testbed" / "first-logon" / "hello-renamed.txt"
    assert written.stat().st_uid == 1000 and written.stat().st_gid == 1000
