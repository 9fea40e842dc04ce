"""Bad input through the CLI (``winarm up``) and through the container's environment (``entrypoint.py``).

Every case must give one line on stderr that names the value and the fix, a non-zero exit, no traceback, and
leave the storage directory byte-for-byte as it was: it holds an existing VM (a real qcow2 disk made with
qemu-img, its UEFI variables and remembered facts) and the hash of every path and byte in it is taken before
and after. No case boots a VM: each is refused before QEMU would start.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.vmtools import REPO_ROOT, fill, mounted_tmpfs, tree_digest
from winarm.config.vm import GiB, MiB
from winarm.errors import RuntimeFailure
from winarm.qemu import disk
from winarm.qemu.firmware import ensure_vars, find_firmware
from winarm_testbed.wim_image import build_bridge_iso

REPO = REPO_ROOT
CLI_BASE = ["--no-tpm", "--no-secure-boot", "--disk-size", "1G", "--disk-bus", "nvme", "--ram", "1G", "--cpus", "1"]
ENV_BASE = {"TPM": "N", "DISK_SIZE": "1G", "DISK_TYPE": "nvme", "RAM_SIZE": "1G", "CPU_CORES": "1", "SAMBA": "N"}


@dataclass
class World:
    """What the cases point at: ISOs of every kind, folders, a busy port, a loopback HTTP server."""

    root: Path
    storage: Path
    good_iso: Path
    x64_iso: Path
    no_image_iso: Path
    truncated_iso: Path
    text_file: Path
    empty_file: Path
    folder: Path
    root_folder: Path
    busy_port: int
    url: str
    extra: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One mistake: ``args`` for ``winarm up`` and/or ``env`` for the container (None: that way does not
    apply), the words the one line must hold, and the exit status (2: a user's mistake; 1: the world failed)."""

    name: str
    args: Callable[[World], list[str]] | None
    env: Callable[[World], dict[str, str]] | None
    says: Callable[[World], list[str]]
    status: int = 2


def flag(option: str, value: str | Callable[[World], str]) -> Callable[[World], list[str]]:
    return lambda w: [option, value(w) if callable(value) else value]


def var(name: str, value: str | Callable[[World], str]) -> Callable[[World], dict[str, str]]:
    return lambda w: {name: value(w) if callable(value) else value}


def words(*fragments: str | Callable[[World], str]) -> Callable[[World], list[str]]:
    return lambda w: [f(w) if callable(f) else f for f in fragments]


def both(name: str, option: str, env_name: str, value: str | Callable[[World], str],
         *fragments: str | Callable[[World], str], status: int = 2) -> list[Case]:
    """The same mistake made once with a flag and once with the container's environment variable."""
    return [Case(f"{name}-cli", flag(option, value), None, words(*fragments), status),
            Case(f"{name}-env", None, var(env_name, value), words(*fragments), status)]


CASES: list[Case] = [
    # sizes
    *both("ram-unit", "--ram", "RAM_SIZE", "8X", "RAM size '8X' is not a size", "8G"),
    *both("ram-zero", "--ram", "RAM_SIZE", "0", "RAM size '0'"),
    *both("ram-negative", "--ram", "RAM_SIZE", "-1G", "RAM size '-1G' is not a size"),
    *both("ram-above-host", "--ram", "RAM_SIZE", "100T", "RAM size '100T' is more than this host has"),
    Case("ram-too-small", flag("--ram", "16M"), None, words("RAM size '16M' is too small")),
    *both("disk-unit", "--disk-size", "DISK_SIZE", "8X", "disk size '8X' is not a size"),
    *both("disk-zero", "--disk-size", "DISK_SIZE", "0G", "disk size '0G' must be larger than zero"),
    Case("disk-negative", flag("--disk-size", "-1G"), None, words("disk size '-1G' is not a size")),
    *both("disk-shrink", "--disk-size", "DISK_SIZE", "512M", "disk size '512M' is smaller than the existing disk",
          "--disk-size 1G"),
    Case("disk-above-free", lambda w: ["--allocate", "--disk-size", "1000T"],
         lambda w: {"ALLOCATE": "Y", "DISK_SIZE": "1000T"}, words("disk size '1000T' needs more room")),
    Case("allocate-word", None, var("ALLOCATE", "maybe"), words("ALLOCATE 'maybe' is not yes or no")),
    # CPU counts
    *both("cpus-zero", "--cpus", "CPU_CORES", "0", "CPU count '0' must be at least 1"),
    *both("cpus-above-host", "--cpus", "CPU_CORES", "999", "CPU count 999 is more than this host has"),
    Case("cpus-word", flag("--cpus", "two"), None, words("CPU count 'two' is not a whole number")),
    Case("cpus-fraction", flag("--cpus", "1.5"), None, words("CPU count '1.5' is not a whole number")),
    # the ISO
    *both("iso-missing", "--iso", "BOOT", "/nonexistent/win.iso", "'/nonexistent/win.iso' does not exist"),
    Case("iso-is-a-folder", flag("--iso", lambda w: str(w.folder)), None,
         words(lambda w: repr(str(w.folder)), "is not a file")),
    *both("iso-not-an-iso", "--iso", "BOOT", lambda w: str(w.text_file),
          lambda w: f"{str(w.text_file)!r} is not an ISO image"),
    Case("iso-empty", flag("--iso", lambda w: str(w.empty_file)), None,
         words(lambda w: repr(str(w.empty_file)), "not an ISO image")),
    *both("iso-truncated", "--iso", "BOOT", lambda w: str(w.truncated_iso), "truncated"),
    *both("iso-x64", "--iso", "BOOT", lambda w: str(w.x64_iso), "is an x64 ISO", "ARM64"),
    Case("iso-without-install-image", flag("--iso", lambda w: str(w.no_image_iso)), None,
         words("has no sources/install.wim or sources/install.esd")),
    *both("iso-url-plain-http", "--iso", "BOOT", lambda w: f"{w.url}/missing.iso", "is plain http"),
    Case("edition-not-on-iso", lambda w: ["--iso", str(w.good_iso), "--edition", "Enterprise"], None,
         words("edition 'Enterprise' is not on this ISO", "Windows 11 Pro")),
    # names
    *both("name-slash", "--name", "NAME", "a/b", "VM name 'a/b' is not allowed"),
    *both("name-dotdot", "--name", "NAME", "..", "VM name '..' is not allowed"),
    *both("name-space", "--name", "NAME", "my vm", "VM name 'my vm' is not allowed"),
    Case("name-control", flag("--name", "a\x07b"), None, words("VM name 'a\\x07b' is not allowed")),
    Case("name-too-long", flag("--name", "v" * 41), None, words("is not allowed", "1-40")),
    # Windows' account and machine
    *both("username-too-long", "--username", "USERNAME", "u" * 21, "longer than 20 characters"),
    *both("username-reserved", "--username", "USERNAME", "Administrator", "'Administrator' is a built-in account"),
    Case("username-empty", flag("--username", ""), None, words("username is empty")),
    *[Case(f"username-char-{ord(c)}-{'cli' if i % 2 else 'env'}",
           flag("--username", f"ab{c}c") if i % 2 else None, None if i % 2 else var("USERNAME", f"ab{c}c"),
           words(f"contains {c!r}, which Windows refuses"))
      for i, c in enumerate('"/\\[]:;|=,+*?<>')],
    *both("password-not-ascii", "--password", "PASSWORD", "pässwörd", "the password has non-ASCII characters"),
    Case("password-control", flag("--password", "a\tb"), None, words("the password contains control characters")),
    *both("language-unknown", "--language", "LANGUAGE", "xx-YY", "language 'xx-YY' is not a Windows language tag",
          "en-US"),
    Case("keyboard-unknown", flag("--keyboard", "qwerty"), None, words("keyboard 'qwerty'")),
    *both("computer-name", "--computer-name", "COMPUTER_NAME", "my pc!", "computer name 'my pc!' is not allowed"),
    Case("product-key", flag("--product-key", "ABC"), None, words("the product key is malformed")),
    # the shared folder
    *both("share-missing", "--shared", "SHARED", "/nonexistent/share", "'/nonexistent/share' does not exist",
          "--no-share"),
    Case("share-not-writable", lambda w: ["--shared", str(w.root_folder), "--uid", "4321", "--gid", "4321"], None,
         words(lambda w: repr(str(w.root_folder)), "is not writable by uid 4321")),
    Case("share-is-a-file", flag("--shared", lambda w: str(w.text_file)), None,
         words(lambda w: repr(str(w.text_file)), "not a directory")),
    Case("share-bad-name", flag("--shared", lambda w: f"my share={w.folder}"), None, words("share name 'my share'")),
    Case("uid-word", lambda w: ["--shared", str(w.folder), "--uid", "bob"], None, words("uid 'bob'")),
    Case("file-mode", lambda w: ["--shared", str(w.folder), "--file-mode", "999"], None, words("'999'")),
    # ports
    Case("share-port-in-use", lambda w: ["--shared", str(w.folder), "--share-port", str(w.busy_port)], None,
         words(lambda w: f"port {w.busy_port}", "in use")),
    *both("metrics-port-in-use", "--metrics-port", "METRICS_PORT", lambda w: str(w.busy_port),
          lambda w: f"metrics port {w.busy_port}", "choose another --metrics-port"),
    Case("metrics-port-range", None, var("METRICS_PORT", "70000"), words("metrics port '70000' is not a TCP port")),
    # other settings
    *both("vnc-address", "--vnc", "VNC", "localhost:1", "VNC address 'localhost:1' is not an IP address"),
    *both("vnc-address-scope-id", "--vnc", "VNC", "fe80::1%x,websocket=5700", "has an IPv6 scope id"),
    Case("vnc-password-too-long", None, var("VNC_PASSWORD", "123456789"), words("VNC password must be 1-8")),
    *both("vnc-password-file-missing", "--vnc-password-file", "VNC_PASSWORD_FILE", "/nonexistent/vnc",
          "VNC password file '/nonexistent/vnc' cannot be read"),
    *both("password-file-missing", "--password-file", "PASSWORD_FILE", "/nonexistent/pw",
          "password file '/nonexistent/pw' cannot be read"),
    *both("accel", "--accel", "ACCEL", "hvf", "accelerator 'hvf' is not known"),
    *both("disk-format", "--disk-format", "DISK_FMT", "vmdk", "disk format 'vmdk' is not known"),
    *both("disk-bus", "--disk-bus", "DISK_TYPE", "ide", "disk bus 'ide' is not known"),
    *both("timeout", "--timeout", "TIMEOUT", "soon", "timeout 'soon' is not a number of seconds"),
    Case("tpm-word", None, var("TPM", "maybe"), words("TPM 'maybe' is not yes or no")),
    Case("drivers-missing", flag("--drivers", "/nonexistent/virtio"), None,
         words("'/nonexistent/virtio' does not exist")),
    # the storage itself
    *both("storage-is-a-file", "--storage", "STORAGE", lambda w: str(w.text_file),
          lambda w: f"storage {str(w.text_file)!r} is not a directory"),
]


class _Server(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_error(404, "Not Found")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bad-input")
    isos = root / "isos"
    isos.mkdir()
    good = build_bridge_iso(isos / "good.iso")
    truncated = isos / "truncated.iso"
    truncated.write_bytes(good.read_bytes()[: 200 * 1024])
    text = root / "notes.txt"
    text.write_text("not an ISO\n" * 200)
    empty = root / "empty.iso"
    empty.touch()
    shared_root = Path("/tmp") / f"winarm-bad-{os.getpid()}"  # pytest's folders are 0700: a uid could not enter
    shared_root.mkdir(mode=0o755, exist_ok=True)
    folder = shared_root / "ok"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o777)
    os.chown(folder, 4321, 4321)  # root as the share's default owner is refused
    root_folder = shared_root / "root-only"
    root_folder.mkdir(exist_ok=True)
    (root_folder / "theirs.txt").write_text("a folder with files is never chowned for the guest\n")
    os.chmod(root_folder, 0o755)
    storage = root / "storage"
    vm = storage / "windows"
    vm.mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(vm / "disk.qcow2"), "1G"], check=True)
    (vm / "efivars.fd").write_bytes(b"\0" * 65536)
    (vm / "facts.json").write_text('{"install_complete": true}\n')
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield World(root, storage, good, build_bridge_iso(isos / "x64.iso", arch="x64"),
                    build_bridge_iso(isos / "noimage.iso", install_image=None, extra_files={"sources/boot.wim": b"x"}),
                    truncated, text, empty, folder, root_folder, busy.getsockname()[1],
                    f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        busy.close()
        shutil.rmtree(shared_root, ignore_errors=True)


def run_case(world: World, args: list[str] | None, env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    """``winarm up`` with the case's flags, or ``entrypoint.py`` (as the container runs it) with its environment."""
    base_env = {k: v for k, v in os.environ.items() if k not in ENV_BASE and k not in ("NAME", "STORAGE", "BOOT")}
    base_env["WINARM_RUN_DIR"] = str(world.root / "run")
    if args is not None:
        argv = [sys.executable, "-m", "winarm", "up", "--storage", str(world.storage), "--no-share", *CLI_BASE, *args]
        if "--shared" in args:
            argv.remove("--no-share")
    else:
        argv = [sys.executable, str(REPO / "entrypoint.py")]
        base_env.update({"STORAGE": str(world.storage), **ENV_BASE, **(env or {})})
        if "SHARED" in (env or {}):
            base_env.pop("SAMBA")
    return subprocess.run(argv, capture_output=True, text=True, env=base_env, timeout=60, check=False, cwd=REPO)


def check_refused(result: subprocess.CompletedProcess[str], fragments: list[str], status: int) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("winarm: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_mistake_is_one_line_and_changes_nothing(world: World, case: Case) -> None:
    before = tree_digest(world.storage)
    result = run_case(world, case.args(world) if case.args else None, case.env(world) if case.env else None)
    check_refused(result, case.says(world), case.status)
    assert tree_digest(world.storage) == before, "the storage directory changed"


def test_there_are_at_least_forty_cases_both_ways() -> None:
    assert len(CASES) >= 40
    assert sum(c.args is not None for c in CASES) >= 40 and sum(c.env is not None for c in CASES) >= 20


def test_a_read_only_storage_is_refused_before_anything_is_written(world: World, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "ro", "size=16M,mode=0755") as storage:
        (storage / "keep.txt").write_text("mine\n")
        subprocess.run(["mount", "-o", "remount,ro", str(storage)], check=True)
        before = tree_digest(storage)
        result = subprocess.run(
            [sys.executable, "-m", "winarm", "up", "--storage", str(storage), "--no-share", *CLI_BASE],
            capture_output=True, text=True, env={**os.environ, "WINARM_RUN_DIR": str(world.root / "run")},
            timeout=60, check=False)
        check_refused(result, [repr(str(storage)), "not writable"], 2)
        assert tree_digest(storage) == before


def test_a_full_storage_is_refused_before_anything_is_written(world: World, tmp_path: Path) -> None:
    """The disk image would fit, but not with the firmware's variable store beside it."""
    with mounted_tmpfs(tmp_path / "full", "size=80M,mode=0755") as storage:
        (storage / "keep.txt").write_text("mine\n")
        before = tree_digest(storage)
        result = subprocess.run(
            [sys.executable, "-m", "winarm", "up", "--storage", str(storage), "--no-share", *CLI_BASE,
             "--disk-size", "64M"],
            capture_output=True, text=True, env={**os.environ, "WINARM_RUN_DIR": str(world.root / "run")},
            timeout=60, check=False)
        check_refused(result, ["needs more room", repr("64M")], 2)
        assert tree_digest(storage) == before


def test_a_sparse_disk_larger_than_the_free_space_starts_with_a_note(world: World, tmp_path: Path) -> None:
    """The 64G disk on a storage with 1.2 GiB free: accepted (the image is sparse), with one note that
    says what happens if the storage fills and how to reserve the space; --allocate refuses it instead."""
    with mounted_tmpfs(tmp_path / "small", "size=1200M,mode=0755") as storage:
        before = tree_digest(storage)
        env = {**os.environ, "WINARM_RUN_DIR": str(world.root / "run")}
        base = [sys.executable, "-m", "winarm", "up", "--storage", str(storage), "--no-share", *CLI_BASE]
        result = subprocess.run([*base, "--disk-size", "64G", "--dry-run"], capture_output=True, text=True,
                                env=env, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        notes = result.stderr.strip().splitlines()
        assert len(notes) == 1 and notes[0].startswith("winarm: note: the 64G disk may outgrow the "), notes
        assert "paused" in notes[0] and "--allocate" in notes[0]
        assert "qemu-system-aarch64" in result.stdout.splitlines()[0]
        refused = subprocess.run([*base, "--disk-size", "64G", "--allocate", "--dry-run"], capture_output=True,
                                 text=True, env=env, timeout=60, check=False)
        check_refused(refused, ["disk size '64G' needs more room", "preallocated"], 2)
        assert tree_digest(storage) == before


def test_an_allocated_image_reserves_its_space_and_a_sparse_one_does_not(tmp_path: Path) -> None:
    """Real qemu-img: --allocate's image holds its whole size on the host, also after growing; the default
    image holds only its metadata."""
    sparse, full = tmp_path / "sparse.qcow2", tmp_path / "full.qcow2"
    disk.ensure_image(sparse, "qcow2", 64 * MiB)
    disk.ensure_image(full, "qcow2", 64 * MiB, allocate=True)
    assert sparse.stat().st_blocks * 512 < 4 * MiB
    assert full.stat().st_blocks * 512 >= 64 * MiB
    disk.ensure_image(full, "qcow2", 96 * MiB, allocate=True)
    assert full.stat().st_blocks * 512 >= 96 * MiB
    assert disk.virtual_size(full, "qcow2") == 96 * MiB


def test_an_allocated_image_that_does_not_fit_leaves_nothing(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "size=16M") as storage:
        image = storage / "disk.raw"
        with pytest.raises(RuntimeFailure, match="qemu-img create failed"):
            disk.ensure_image(image, "raw", 64 * MiB, allocate=True)
        assert list(storage.iterdir()) == []


def test_a_disk_image_that_cannot_be_created_leaves_nothing(tmp_path: Path) -> None:
    """Real qemu-img on a real full filesystem: a clear error, and neither the image nor a partial one. (A raw
    image is sparse: it is created on a full filesystem, as QEMU writes its blocks only when the guest does.)"""
    with mounted_tmpfs(tmp_path / "full", "size=4M") as storage:
        fill(storage)
        image = storage / "disk.qcow2"
        with pytest.raises(RuntimeFailure, match="qemu-img create failed") as caught:
            disk.ensure_image(image, "qcow2", 64 * MiB)
        assert "\n" not in str(caught.value)
        assert sorted(p.name for p in storage.iterdir()) == ["filler"], "nothing half-written is left"


def test_growing_a_disk_image_on_a_full_filesystem_keeps_it_whole(tmp_path: Path) -> None:
    """Growing a qcow2 needs a larger L1 table: on a full filesystem it fails and the image stays as it was,
    checked by qemu-img itself."""
    with mounted_tmpfs(tmp_path / "full", "size=4M") as storage:
        image = storage / "disk.qcow2"
        disk.ensure_image(image, "qcow2", 64 * MiB)
        fill(storage)
        with pytest.raises(RuntimeFailure, match="qemu-img resize failed"):
            disk.ensure_image(image, "qcow2", 64 * 1024 * GiB)
        assert disk.virtual_size(image, "qcow2") == 64 * MiB
        check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def test_uefi_variables_that_cannot_be_copied_leave_nothing(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "full", "size=8M") as storage:
        target = storage / "efivars.fd"
        with pytest.raises(RuntimeFailure, match="cannot write the UEFI variables .*No space left"):
            ensure_vars(find_firmware(False), target)
        assert list(storage.iterdir()) == []
