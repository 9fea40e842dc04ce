"""The unattended install end to end: the Windows-shaped test ISO, the answer medium, the guest playing Setup.

The guest is a real arm64 Linux (no Windows can be had here) that does what Setup does with our files: reads
Autounattend.xml from the answer medium, loads $WinPEDriver$ in windowsPE, runs the driver step in the pass
the answer file names, and reports each pass as a phase. The drivers are placeholders with the real layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.vmtools import Up, family, winarm
from winarm.answer.settings import encode_password
from winarm.timeline.phases import derive_phases

GUEST = ["--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--no-secure-boot", "--no-tpm", "--timeout", "30"]


PASSWORD = "Zebra-Quartz-4711"
"""A password that cannot appear by chance: found anywhere but in the guest's disk, it leaked."""
PRODUCT_KEY = "ZQ7XW-4KPJV-8MNRT-Q2HXC-6YBDF"
"""A product key (given in one of the runs through KEY) that must leak nowhere either."""


def assert_no_password(texts: list[str], storage: Path) -> None:
    """Neither the password nor its answer-file encoding is in ``texts`` (argv, status, output) or in any file
    of the storage other than the guest's own disk (whose Setup keeps its answer file, as Windows does)."""
    forms = [PASSWORD, encode_password(PASSWORD, "Password"), encode_password(PASSWORD, "AdministratorPassword"),
             PRODUCT_KEY]
    for text in texts:
        assert not any(form in text for form in forms), text
    for path in storage.rglob("*"):
        if path.is_file() and not path.name.startswith("disk."):
            data = path.read_bytes()
            assert not any(form.encode() in data for form in forms), f"the password is in {path}"


def markers(events: list[dict[str, object]]) -> list[tuple[object, object]]:
    """The markers in order, with who named each (``boot-order``, ``guest``, ``share``, ``serial``)."""
    return [(e["name"], e.get("source", "serial")) for e in events if e["kind"] == "marker"]


def serial_phase_lines(storage: Path) -> list[str]:
    """The ``WINARM-PHASE`` lines of the VM's serial log."""
    text = (storage / "t" / "serial.log").read_bytes().decode(errors="replace")
    return [line.strip() for line in text.splitlines() if "WINARM-PHASE" in line]


def check_driver_step(events: list[dict[str, Any]], lines: list[str], drivers_pass: str) -> None:
    """The drivers installed in the pass asked for, and reported with each one's result from that pass."""
    installed = [(e["t"], e["detail"]) for e in events
                 if e["kind"] == "guest-event" and e["name"] == "driver-installed"]
    folders = ["20-NetKVM"]  # the only driver besides viostor whose device winarm attaches (issue 13, item 15)
    assert [name for _, name in installed] == folders
    (drivers,) = [e for e in events if e["kind"] == "report" and e["name"] == "drivers"]
    assert [(d["folder"], d["code"], d["ok"]) for d in drivers["drivers"]] == [(f, 0, True) for f in folders]
    assert drivers["failed"] == 0
    assert f"[t] guest: driver step ended in {drivers['pass']}: 1 of 1 installed" in lines
    phase_of = {e["name"]: e["t"] for e in events if e["kind"] == "marker"}
    sources = {p.name: p.source for p in derive_phases(events)}
    if drivers_pass == "specialize":
        assert drivers["pass"] == "specialize"
        assert all(phase_of["specialize"] < t < phase_of["oobeSystem"] for t, _ in installed)
        assert phase_of["specialize"] < drivers["t"] < phase_of["oobeSystem"]
        assert sources["specialize"] == "guest", "the driver report confirmed the boot order's specialize"
    else:
        assert drivers["pass"] == "oobeSystem"
        assert all(t > phase_of["oobeSystem"] for t, _ in installed)
        assert sources["specialize"] == "boot-order", "no network driver yet in specialize: nothing confirmed it"


def check_driver_choice(events: list[dict[str, Any]], lines: list[str]) -> dict[str, Any]:
    """The answer medium holds only the drivers of devices the VM attaches, each with its signature verdict;
    returns its event."""
    answer = next(e for e in events if e["kind"] == "answer-medium")
    assert answer["winpe"] == ["viostor"] and answer["drivers"] == ["NetKVM"]
    assert answer["left_out"]["Balloon"] == "no virtio-balloon-pci attached to this VM"
    assert answer["signatures"] == {"viostor": "unverified", "NetKVM": "unverified"}  # placeholders: not PKCS#7
    assert "winarm: driver Balloon left out: no virtio-balloon-pci attached to this VM" in lines
    return answer


@pytest.mark.qemu
@pytest.mark.parametrize("drivers_pass", ["specialize", "firstlogon"])
def test_unattended_install_through_setup_passes(tmp_path: Path, run_base: Path, testbed_iso: Path,
                                                 placeholder_drivers: Path, drivers_pass: str) -> None:
    """The install with no share and nothing Windows-named on the console, as on real Windows for ARM64: Setup's
    passes named by the boot order, the apply measured from the disk traffic, specialize (or oobeSystem)
    confirmed by the driver step's report with each driver's result, first-logon and desktop-ready reported
    over the guest channel, and the answer medium gone at desktop-ready. With a product key (the firstlogon run),
    the first logon installs it from the medium and the guest reports "product key: applied"."""
    secret = tmp_path.parent / "password.txt"
    secret.write_text(f"{PASSWORD}\n")
    key = {"KEY": PRODUCT_KEY} if drivers_pass == "firstlogon" else {}
    vm = Up(tmp_path, run_base, *GUEST, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
            "--drivers-pass", drivers_pass, "--stop-at", "desktop-ready", "--password-file", str(secret), env=key)
    try:
        vm.wait_line("phase windowsPE", 300)  # Setup is reading the answer file: every process is up
        seen_while_running = [" ".join(p.cmdline()) for p in family(vm.proc.pid)]
        seen_while_running.append(json.dumps(vm.status()))
        seen_while_running.append(winarm("phases", "--name", "t", "--storage", str(tmp_path), "--json",
                                         env=vm.env).stdout)
        assert vm.wait(300) == 0, "\n".join(vm.lines)
    finally:
        vm.kill()
    assert any("qemu-system" in line for line in seen_while_running)
    assert_no_password([*seen_while_running, *vm.lines], tmp_path)
    assert serial_phase_lines(tmp_path) == [], "Windows has no COM port: nothing Windows-named on the console"
    events = vm.events()
    kinds = [e["kind"] for e in events]
    answer = check_driver_choice(events, vm.lines)
    assert markers(events) == [("windowsPE", "boot-order"), ("specialize", "boot-order"),
                               ("oobeSystem", "boot-order"), ("first-logon", "guest"), ("desktop-ready", "guest")]
    assert kinds.count("reset") == 2
    assert [e["device"] for e in events if e["kind"] == "boot-device"] == ["cd", "disk", "disk"]
    progress = [e["percent"] for e in events if e["kind"] == "apply-progress"]
    assert progress and progress[-1] == 100 and progress == sorted(progress), progress
    assert any(line.startswith("[t] applying image: 100 % (") for line in vm.lines)
    check_driver_step(events, vm.lines, drivers_pass)
    applied = [e for e in events if e["kind"] == "report" and e["name"] == "product-key"]
    assert [(e["code"], e["ok"]) for e in applied] == ([(0, True)] if key else [])
    assert ("[t] product key: applied" in vm.lines) == bool(key)
    sources = {p.name: p.source for p in derive_phases(events)}
    assert sources["windowsPE"] == "boot-order" and sources["oobeSystem"] == "guest"
    # the install is complete: the answer medium (it holds the password) is gone
    assert kinds.index("answer-medium-removed") > kinds.index("report")
    assert not Path(str(answer["path"])).exists()
    facts = json.loads((tmp_path / "t" / "vm.json").read_text())
    assert facts["install_complete"] is True

    again = Up(tmp_path, run_base, *GUEST, "--iso", str(testbed_iso), "--drivers", str(placeholder_drivers),
               "--stop-at", "desktop-ready")
    try:
        assert again.wait(240) == 0, "\n".join(again.lines)
    finally:
        again.kill()
    events = again.events()
    assert "answer-medium" not in [e["kind"] for e in events], "an installed disk gets no answer medium"
    assert markers(events) == [("desktop-ready", "guest")], "the Run key reports desktop-ready at every logon"
    assert [p.name for p in derive_phases(events)] == ["launch", "firmware", "boot-disk", "desktop-ready",
                                                       "shutdown"]
    assert not list((tmp_path / "t").glob("answer-*.iso"))
