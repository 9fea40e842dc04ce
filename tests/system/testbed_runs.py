"""Running qemu-system-aarch64 directly on the Windows-shaped test ISO, and what a run showed.

winarm's own argv (from ``winarm up --dry-run``) plus the answer medium as a second USB CD and the guest channel
relayed to a listener of the test's: the guest's serial lines, QMP events and the reports it POSTs, each with
the boot (counted by QMP RESETs) it came in.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.vmtools import winarm
from winarm.guest import REPORT_ADDRESS, REPORT_PORT
from winarm.qemu.console import LineSplitter

PROMPT = "Press any key to boot from CD or DVD"


@dataclass(frozen=True)
class Report:
    """One request that reached the guest channel: the boot it came in, its request line and its body."""

    boot: int
    line: str
    body: bytes

    @property
    def name(self) -> str:
        """The report's name: the last part of the request's path."""
        return self.line.split()[1].rsplit("/", 1)[-1]


@dataclass
class Run:
    """What one VM run showed: guest lines (markers and events, with the boot they came in), QMP events, the
    reports that reached the channel."""

    lines: list[tuple[float, int, str]] = field(default_factory=list)
    qmp_events: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    keys: int = 0

    def guest(self) -> list[str]:
        return [text for _, _, text in self.lines]

    def markers(self) -> list[str]:
        return [t.split(None, 1)[1] for t in self.guest() if t.startswith("WINARM-PHASE ")]

    def events(self) -> list[str]:
        return [t.split(None, 1)[1] for t in self.guest() if t.startswith("WINARM-EVENT ")]

    def by_boot(self) -> list[list[str]]:
        """The guest lines per boot, markers as their name, events as ``+name``."""
        boots: dict[int, list[str]] = {}
        for _, boot, text in self.lines:
            boots.setdefault(boot, []).append(text.replace("WINARM-PHASE ", "").replace("WINARM-EVENT ", "+"))
        return [boots[b] for b in sorted(boots)]


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


class ReportListener:
    """The host end of the guest channel: a unix socket the netdev's guestfwd relays the guest's
    ``10.0.2.5:80`` to (one socat a connection). Every request is answered ``204 No Content``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.sock.setblocking(False)

    def take(self) -> list[tuple[str, bytes]]:
        """The requests waiting now, each read whole and answered: ``(request line, body)``."""
        taken: list[tuple[str, bytes]] = []
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return taken
            with conn:
                conn.settimeout(10)
                taken.append(read_request(conn))
                conn.sendall(b"HTTP/1.0 204 No Content\r\n\r\n")

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


def read_request(conn: socket.socket) -> tuple[str, bytes]:
    """One HTTP request from CONN: its request line and its body (Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("ascii", "replace").split("\r\n")
    length = next((int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        body += chunk
    return lines[0], body


def qemu_argv(tmp_path: Path, run_base: Path, windows_iso: Path, answer: Path, report_sock: Path) -> list[str]:
    """winarm's QEMU command line for VM ``t`` (from ``winarm up --dry-run``) with ANSWER as a second USB CD,
    sockets as paths, the guest channel relayed to REPORT_SOCK (replacing any relay the argv has), and the
    VM's fresh firmware variables and 1 GiB disk in place."""
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
    netdev = argv.index("-netdev") + 1
    relay = rf",guestfwd=tcp:{re.escape(REPORT_ADDRESS)}:{REPORT_PORT}-cmd:(?:[^,]|,,)*"
    argv[netdev] = re.sub(relay, "", argv[netdev]) + (
        f",guestfwd=tcp:{REPORT_ADDRESS}:{REPORT_PORT}-cmd:socat STDIO UNIX-CONNECT:{report_sock}")
    # winarm hands QEMU its sockets as descriptors or paths; either way they live in the run directory
    return [a.replace("fd=", "path=") for a in argv]


@dataclass
class Follower:
    """The state of following one run: the boot count (QMP RESETs), whether the power button was pressed.
    Like winarm, it presses the power button at the ``desktop-ready`` report; else at the guest's ``ready``."""

    run: Run
    qmp: Qmp
    started: float
    boot: int = 1
    powered: bool = False

    def power_button(self) -> None:
        if not self.powered:
            self.qmp.execute("system_powerdown")
            self.powered = True

    def take_events(self) -> None:
        """Record the QMP events read so far; each RESET starts another boot."""
        self.qmp.poll()
        for message in self.qmp.events:
            self.run.qmp_events.append(message["event"])
            if message["event"] == "RESET":
                self.boot += 1
        self.qmp.events.clear()

    def take_lines(self, lines: list[str]) -> None:
        """Record console LINES and their markers; the power button at the first ``ready``."""
        now = time.monotonic() - self.started
        for line in lines:
            self.run.console.append(line)
            match = re.search(r"WINARM-(PHASE|EVENT) .*", line)
            if match:
                self.run.lines.append((now, self.boot, match.group(0)))
                if match.group(0) in ("WINARM-PHASE ready", "WINARM-EVENT ready"):
                    self.power_button()

    def take_reports(self, listener: ReportListener) -> None:
        """Record the reports that arrived; the power button at the first ``desktop-ready``."""
        for line, body in listener.take():
            report = Report(self.boot, line, body)
            self.run.reports.append(report)
            if report.name == "desktop-ready":
                self.power_button()


def boot(argv: list[str], run_base: Path, listener: ReportListener, *, log: Path, press_key: bool,
         timeout: float = 150) -> Run:
    """Run QEMU (ARGV, sockets in RUN_BASE/t) until the guest powers off; press space at the CD prompt only
    with PRESS_KEY (at the first prompt). Raises AssertionError when the guest is not done in TIMEOUT s."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        started = time.monotonic()
        try:
            run = follow(proc, run_base / "t", listener, started=started, deadline=started + timeout,
                         press_key=press_key)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return run


def follow(proc: subprocess.Popen[bytes], run_dir: Path, listener: ReportListener, *, started: float,
           deadline: float, press_key: bool) -> Run:
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
        follower.take_reports(listener)
        prompt = PROMPT in splitter.pending() or any(PROMPT in line for line in lines)
        if press_key and run.keys == 0 and prompt:
            qmp.execute("send-key", keys=[{"type": "qcode", "data": "spc"}])
            run.keys += 1
        if "SHUTDOWN" in run.qmp_events:
            follower.take_reports(listener)
            with contextlib.suppress(EOFError, OSError, RuntimeError):
                qmp.execute("quit")  # after the guest's own power-off (QEMU may already be gone)
            break
    return run
