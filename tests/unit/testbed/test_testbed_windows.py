"""The Windows-shaped test ISO, and the test guest playing Windows Setup's passes from it.

The fast tests read the ISO with pycdlib, 7z, isoinfo and xorriso. The booting ones run qemu-system-aarch64
directly (winarm's own argv from ``winarm up --dry-run``, plus a second USB CD: an answer medium built here with
pycdlib) and follow the guest through windowsPE -> specialize -> oobeSystem -> first logon from its serial
console and QMP events.
"""

from __future__ import annotations

import io
import json
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

PROMPT = "Press any key to boot from CD or DVD"
EDITIONS = ["Windows 11 Home", "Windows 11 Pro"]


@pytest.fixture(scope="session")
def windows_iso() -> Path:
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), log=lambda line: None)


# --------------------------------------------------------------------------------------------------
# The ISO itself


def test_testbed_is_a_udf_bridge_with_el_torito_and_editions(windows_iso: Path) -> None:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(windows_iso))
    try:
        iso9660 = [c.file_identifier().decode() for c in iso.list_children(iso_path="/")]
        assert sorted(n for n in iso9660 if n not in (".", "..")) == ["README.TXT;1"], iso9660
        udf_root = {c.file_identifier().decode() for c in iso.list_children(udf_path="/") if c is not None}
        assert {"efi", "sources", "boot"} <= udf_root, udf_root
        udf_sources = {c.file_identifier().decode() for c in iso.list_children(udf_path="/sources") if c is not None}
        assert {"install.wim", "winarm-seed.img"} <= udf_sources, udf_sources
        loader = io.BytesIO()
        iso.get_file_from_iso_fp(loader, udf_path="/efi/boot/bootaa64.efi")
        assert loader.getvalue()[:2] == b"MZ", "efi/boot/bootaa64.efi is a PE image (the guest's GRUB)"
    finally:
        iso.close()

    listing = subprocess.run(["isoinfo", "-l", "-i", str(windows_iso)], capture_output=True, text=True, check=True)
    files = re.findall(r"\]\s+(\S+)\s*$", listing.stdout, re.M)
    assert [f for f in files if f not in (".", "..")] == ["README.TXT;1"], listing.stdout
    seven = subprocess.run(["7z", "l", str(windows_iso)], capture_output=True, text=True, check=True)
    for path in ("efi/boot/bootaa64.efi", "sources/install.wim", "sources/winarm-seed.img"):
        assert path in seven.stdout, seven.stdout

    torito = subprocess.run(["xorriso", "-indev", str(windows_iso), "-report_el_torito", "plain"],
                            capture_output=True, text=True, check=True)
    boot = re.search(r"El Torito boot img :\s+1\s+(\S+)\s+y\s+none", torito.stdout)
    assert boot and boot.group(1) == "UEFI", torito.stdout

    from winarm.media.iso import inspect_iso

    info = inspect_iso(windows_iso)
    assert info.arch == "arm64" and info.image == "sources/install.wim"
    assert [(e.index, e.name, e.build, e.arch) for e in info.editions] == [
        (1, "Windows 11 Home", "26100", "arm64"), (2, "Windows 11 Pro", "26100", "arm64")]


def test_testbed_is_cached_and_keyed_by_padding(windows_iso: Path) -> None:
    from winarm_testbed.windows_iso import build_windows_testbed

    built_at = windows_iso.stat().st_mtime_ns
    said: list[str] = []
    again = build_windows_testbed(cache_dir(), log=said.append)
    assert again == windows_iso and windows_iso.stat().st_mtime_ns == built_at, "reused, not written again"
    assert not any("building" in line for line in said), said
    padded = build_windows_testbed(cache_dir(), log=lambda line: None, wim_padding=3 << 30)
    assert padded != windows_iso
    from winarm.media.iso import inspect_iso

    assert len(inspect_iso(padded).editions) == 2
    assert padded.stat().st_size > 3 << 30 and padded.stat().st_blocks * 512 < 1 << 30, "written sparsely"
    shutil.rmtree(padded.parent)


# --------------------------------------------------------------------------------------------------
# An answer medium, as winarm lays it out (see winarm/answer_media.py)

COMPONENT = ('processorArchitecture="arm64" publicKeyToken="31bf3856ad364e35" language="neutral" '
             'versionScope="nonSxS"')
RUN = r'cmd /c "for %d in (D E F G H) do if exist %d:\winarm.marker %d:\winarm\install-drivers.cmd"'


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


DRIVERS = [("viorng", "viorng.inf"), ("Balloon", "balloon.inf"), ("vioserial", "vioser.inf")]


