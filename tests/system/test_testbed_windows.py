"""The Windows-shaped test ISO, and the test guest playing Windows Setup's passes from it.

The fast tests read the ISO with pycdlib, 7z, isoinfo and xorriso. The booting ones run qemu-system-aarch64
directly (winarm's own argv from ``winarm up --dry-run``, plus a second USB CD: an answer medium built here with
pycdlib) and follow the guest through windowsPE -> specialize -> oobeSystem -> first logon from its serial
console and QMP events.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cache_dir
from tests.vmtools import winarm
from winarm.qemu.console import LineSplitter

PROMPT = "Press any key to boot from CD or DVD"
EDITIONS = ["Windows 11 Home", "Windows 11 Pro"]


@pytest.fixture(scope="session")
def windows_iso() -> Path:
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), log=lambda line: None)


# --------------------------------------------------------------------------------------------------
# The ISO itself


# --------------------------------------------------------------------------------------------------
# An answer medium, as winarm lays it out (see winarm/answer_media.py)

COMPONENT = ('processorArchitecture="arm64" publicKeyToken="31bf3856ad364e35" language="neutral" '
             'versionScope="nonSxS"')
RUN = r'cmd /c "for %d in (D E F G H) do if exist %d:\winarm.marker %d:\winarm\install-drivers.cmd"'


def answer_xml(*, specialize: bool, firstlogon: bool, image_install: bool = True) -> str:
    """A small unattend file with the parts the guest checks (and a decoy comment)."""
    image = "<ImageInstall><OSImage><InstallFrom><MetaData><Key>/IMAGE/INDEX</Key><Value>2</Value></MetaData>" \
            "</InstallFrom></OSImage></ImageInstall>" if image_install else ""
    spec = f"""
    <component name="Microsoft-Windows-Deployment" {COMPONENT}>
      <RunSynchronous>
        <RunSynchronousCommand wcm:action="add"><Order>1</Order><Path>reg add HKLM\\X /v BypassNRO</Path>
        </RunSynchronousCommand>
        <RunSynchronousCommand wcm:action="add"><Order>2</Order><Path>{RUN}</Path></RunSynchronousCommand>
      </RunSynchronous>
    </component>""" if specialize else ""
    logon = f"""
      <FirstLogonCommands>
        <SynchronousCommand wcm:action="add"><Order>1</Order><CommandLine>{RUN}</CommandLine>
        </SynchronousCommand>
      </FirstLogonCommands>""" if firstlogon else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
  <!-- decoy: <Path>install-drivers.cmd</Path> in a comment is not a command -->
  <settings pass="windowsPE">
    <component name="Microsoft-Windows-Setup" {COMPONENT}>
      <DiskConfiguration><Disk wcm:action="add"><DiskID>0</DiskID></Disk></DiskConfiguration>
      {image}
    </component>
  </settings>
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup" {COMPONENT}><ComputerName>WINARM</ComputerName></component>{spec}
  </settings>
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" {COMPONENT}>{logon}
    </component>
  </settings>
</unattend>
""".replace("\n", "\r\n")


def write_answer_medium(out: Path, xml: str, *, winpe: list[str], drivers: list[tuple[str, str]]) -> Path:
    """An ISO 9660 + Joliet + UDF answer medium: Autounattend.xml, winarm.marker, $WinPEDriver$/<winpe>,
    winarm/drivers.txt listing ``drivers`` in order, winarm/drivers/<folder>/<inf> plus a 256 KiB .sys each."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, udf="2.60", vol_ident="WINARM_ANSWER")
    names = iter(range(1, 1000))

    def add_dir(path: str) -> None:
        iso.add_directory(f"/D{next(names)}", joliet_path=path, udf_path=path)

    def add_file(path: str, data: bytes) -> None:
        iso.add_fp(io.BytesIO(data), len(data), f"/F{next(names)}.;1", joliet_path=path, udf_path=path)

    add_file("/Autounattend.xml", xml.encode())
    add_file("/winarm.marker", b"winarm\r\n")
    add_dir("/$WinPEDriver$")
    for folder in winpe:
        add_dir(f"/$WinPEDriver$/{folder}")
        add_file(f"/$WinPEDriver$/{folder}/{folder.lower()}.inf", b"[Version]\r\n")
    add_dir("/winarm")
    add_file("/winarm/install-drivers.cmd", b"@echo off\r\n")
    add_file("/winarm/drivers.txt", "".join(f"{f} {inf}\r\n" for f, inf in drivers).encode())
    add_dir("/winarm/drivers")
    for folder, inf in drivers:
        add_dir(f"/winarm/drivers/{folder}")
        add_file(f"/winarm/drivers/{folder}/{inf}", b"[Version]\r\n")
        add_file(f"/winarm/drivers/{folder}/{folder.lower()}.sys", os.urandom(256 * 1024))
    iso.write(str(out))
    iso.close()
    return out


# --------------------------------------------------------------------------------------------------
# Running QEMU directly: winarm's argv plus the answer medium as a second USB CD


@dataclass
class Run:
    """What one VM run showed: guest lines (markers and events, with the boot they came in), QMP events."""

    lines: list[tuple[float, int, str]] = field(default_factory=list)
    qmp_events: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    keys: int = 0

    def guest(self) -> list[str]:
        return [text for _, _, text in self.lines]

    def markers(self) -> list[str]:
        return [t.split(None, 1)[1] for t in self.guest() if t.startswith("WINARM-PHASE ")]

    def events(self) -> list[str]:
        return [t.split(None, 1)[1] for t in self.guest() if t.startswith("WINARM-EVENT ")]


class Qmp:
    """A minimal synchronous QMP client: commands and their answers, events queued as they come."""

    def __init__(self, path: Path, deadline: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.file = self.sock.makefile("rwb", buffering=0)
        self.events: list[dict[str, Any]] = []
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise EOFError("QMP closed")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, **arguments: Any) -> Any:
        self.file.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        while True:
            message = self._read()
            if "event" in message:
                self.events.append(message)
            elif "error" in message:
                raise RuntimeError(f"{command}: {message['error']}")
            else:
                return message.get("return")

    def poll(self) -> None:
        """Read the events that are waiting (non-blocking)."""
        self.sock.setblocking(False)
        try:
            data = b""
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            self.sock.setblocking(True)
        for line in data.splitlines():
            if line.strip():
                message = json.loads(line)
                if "event" in message:
                    self.events.append(message)


def boot_with_answer(tmp_path: Path, run_base: Path, windows_iso: Path, answer: Path, *,
                     timeout: float = 150) -> Run:
    """Boot the testbed ISO with ANSWER as a second USB CD on a fresh 1 GiB disk until QEMU exits.

    Presses space at the CD prompt (the first only), the power button once the guest prints ``ready``."""
    argv = qemu_argv(tmp_path, run_base, windows_iso, answer)
    log = (tmp_path / "qemu.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    started = time.monotonic()
    try:
        run = follow(proc, run_base / "t", started=started, deadline=started + timeout)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return run


def qemu_argv(tmp_path: Path, run_base: Path, windows_iso: Path, answer: Path) -> list[str]:
    """winarm's QEMU command line for VM ``t`` (from ``winarm up --dry-run``) with ANSWER as a second USB CD,
    sockets as paths, and the VM's fresh firmware variables and 1 GiB disk in place."""
    env = {"WINARM_RUN_DIR": str(run_base)}
    dry = winarm("up", "--name", "t", "--storage", str(tmp_path), "--iso", str(windows_iso), "--no-tpm",
                 "--no-secure-boot", "--ram", "1G", "--cpus", "2", "--disk-size", "1G", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    argv = dry.stdout.splitlines()
    vm_dir = tmp_path / "t"
    vm_dir.mkdir(parents=True, exist_ok=True)
    (run_base / "t").mkdir(mode=0o700, parents=True, exist_ok=True)
    from winarm.qemu.firmware import find_firmware

    shutil.copyfile(find_firmware(False).vars_template, vm_dir / "efivars.fd")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(vm_dir / "disk.qcow2"), "1G"], check=True)
    argv += ["-drive", f"if=none,id=cd9,file={answer},format=raw,media=cdrom,readonly=on",
             "-device", "usb-storage,bus=xhci.0,drive=cd9,bootindex=2"]
    # winarm hands QEMU its sockets as descriptors or paths; either way they live in the run directory
    return [a.replace("fd=", "path=") for a in argv]


@dataclass
class Follower:
    """The state of following one run: the boot count (QMP RESETs), whether the power button was pressed."""

    run: Run
    qmp: Qmp
    started: float
    boot: int = 1
    powered: bool = False

    def take_events(self) -> None:
        """Record the QMP events read so far; each RESET starts another boot."""
        self.qmp.poll()
        for message in self.qmp.events:
            self.run.qmp_events.append(message["event"])
            if message["event"] == "RESET":
                self.boot += 1
        self.qmp.events.clear()

    def take_lines(self, lines: list[str]) -> None:
        """Record console LINES and their markers; press the power button at the first ``ready``."""
        now = time.monotonic() - self.started
        for line in lines:
            self.run.console.append(line)
            match = re.search(r"WINARM-(PHASE|EVENT) .*", line)
            if match:
                self.run.lines.append((now, self.boot, match.group(0)))
                if match.group(0) == "WINARM-PHASE ready" and not self.powered:
                    self.qmp.execute("system_powerdown")
                    self.powered = True


def follow(proc: subprocess.Popen[bytes], run_dir: Path, *, started: float, deadline: float) -> Run:
    """Follow QEMU (PROC, sockets in RUN_DIR), started at STARTED, until the guest shuts down; return what it
    showed (line times count from STARTED). Raises AssertionError when the guest is not done by DEADLINE (both
    time.monotonic())."""
    follower = Follower(Run(), Qmp(run_dir / "qmp.sock", deadline), started)
    run, qmp = follower.run, follower.qmp
    serial = socket.socket(socket.AF_UNIX)
    serial.connect(str(run_dir / "serial.sock"))
    serial.settimeout(0.05)
    qmp.execute("cont")
    splitter = LineSplitter()
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError("guest did not finish in time:\n" + "\n".join(run.console[-40:]))
        try:
            data = serial.recv(65536)
        except OSError:  # TimeoutError included: nothing to read yet
            data = b""
        lines = splitter.feed(data) if data else []
        follower.take_events()
        follower.take_lines(lines)
        if run.keys == 0 and (PROMPT in splitter.pending() or any(PROMPT in line for line in lines)):
            qmp.execute("send-key", keys=[{"type": "qcode", "data": "spc"}])
            run.keys += 1
        if "SHUTDOWN" in run.qmp_events:
            with_quit(qmp)
            break
    return run


def with_quit(qmp: Qmp) -> None:
    """Tell QEMU to quit after the guest's own power-off (it may already be gone)."""
    with contextlib.suppress(EOFError, OSError, RuntimeError):
        qmp.execute("quit")


def phases_by_boot(run: Run) -> list[list[str]]:
    boots: dict[int, list[str]] = {}
    for _, boot, text in run.lines:
        boots.setdefault(boot, []).append(text.replace("WINARM-PHASE ", "").replace("WINARM-EVENT ", "+"))
    return [boots[b] for b in sorted(boots)]


DRIVERS = [("viorng", "viorng.inf"), ("Balloon", "balloon.inf"), ("vioserial", "vioser.inf")]


@pytest.mark.qemu
def test_setup_passes_drivers_in_specialize(tmp_path: Path, run_base: Path, windows_iso: Path) -> None:
    answer = write_answer_medium(tmp_path / "answer.iso", answer_xml(specialize=True, firstlogon=False),
                                 winpe=["viostor"], drivers=DRIVERS)
    run = boot_with_answer(tmp_path, run_base, windows_iso, answer)
    assert phases_by_boot(run) == [
        ["init", "windowsPE", "+winpe-driver viostor"],
        ["init", "specialize", "+driver-installed viorng", "+driver-installed Balloon",
         "+driver-installed vioserial"],
        ["init", "oobeSystem", "first-logon", "ready", "poweroff"],
    ], run.console[-30:]
    assert run.qmp_events.count("RESET") == 2 and run.keys == 1
    timeline = " ".join(f"{text.split()[-1]}@{t:.1f}" for t, _, text in run.lines)
    print(f"specialize timeline: {timeline}")


@pytest.mark.qemu
def test_setup_passes_drivers_at_first_logon_and_without_command(tmp_path: Path, run_base: Path,
                                                                 windows_iso: Path) -> None:
    answer = write_answer_medium(tmp_path / "answer.iso", answer_xml(specialize=False, firstlogon=True),
                                 winpe=["viostor"], drivers=DRIVERS[:2])
    run = boot_with_answer(tmp_path / "a", run_base, windows_iso, answer)
    assert phases_by_boot(run) == [
        ["init", "windowsPE", "+winpe-driver viostor"],
        ["init", "specialize"],
        ["init", "oobeSystem", "first-logon", "+driver-installed viorng", "+driver-installed Balloon",
         "ready", "poweroff"],
    ], run.console[-30:]

    # no driver command at all, but a manifest: the drivers are not installed in any pass
    answer = write_answer_medium(tmp_path / "answer2.iso", answer_xml(specialize=False, firstlogon=False),
                                 winpe=["viostor", "vioscsi"], drivers=DRIVERS)
    run = boot_with_answer(tmp_path / "b", run_base, windows_iso, answer)
    assert phases_by_boot(run) == [
        ["init", "windowsPE", "+winpe-driver vioscsi", "+winpe-driver viostor"],
        ["init", "specialize"],
        ["init", "oobeSystem", "first-logon", "ready", "poweroff"],
    ], run.console[-30:]
    assert run.qmp_events.count("RESET") == 2


@pytest.mark.qemu
def test_setup_stops_on_a_bad_answer_file(tmp_path: Path, run_base: Path, windows_iso: Path) -> None:
    answer = write_answer_medium(tmp_path / "answer.iso",
                                 answer_xml(specialize=True, firstlogon=False, image_install=False),
                                 winpe=["viostor"], drivers=DRIVERS)
    run = boot_with_answer(tmp_path, run_base, windows_iso, answer)
    assert run.markers() == ["init", "windowsPE",
                             "error answer file: windowsPE Microsoft-Windows-Setup has no ImageInstall"]
    assert run.events() == [] and "RESET" not in run.qmp_events
