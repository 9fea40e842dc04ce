"""Where one VM's files live: lasting state under the storage directory, sockets under the run directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from winarm.errors import UserError

ANSWER_PREFIX = "answer-"

SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


def default_storage() -> Path:
    """``/storage`` in the container (when it exists), else ``$XDG_DATA_HOME/winarm``."""
    if Path("/storage").is_dir() and os.access("/storage", os.W_OK):
        return Path("/storage")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "winarm"


def default_run_base() -> Path:
    """Where per-VM run directories (sockets, pid files) live: ``$WINARM_RUN_DIR``, ``$XDG_RUNTIME_DIR/winarm``
    or ``/run/winarm`` for root. Kept short: unix socket paths must stay under 108 bytes."""
    explicit = os.environ.get("WINARM_RUN_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/run/winarm")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "winarm"
    return Path("/tmp") / f"winarm-{os.geteuid()}"


@dataclass(frozen=True)
class VmPaths:
    """Every path of a VM, derived from its state and run directories."""

    state_dir: Path
    run_dir: Path
    disk_format: str = "qcow2"

    @property
    def disk(self) -> Path:
        return self.state_dir / f"disk.{self.disk_format}"

    @property
    def efivars(self) -> Path:
        return self.state_dir / "efivars.fd"

    @property
    def tpm_state(self) -> Path:
        return self.state_dir / "tpm"

    @property
    def tpm_ca(self) -> Path:
        """The local certificate authority that signs the TPM's certificates, with swtpm_setup's configuration."""
        return self.state_dir / "tpm-ca"

    @property
    def events(self) -> Path:
        """The phase clock's JSON-lines log of the running or last boot."""
        return self.state_dir / "events.jsonl"

    @property
    def history(self) -> Path:
        """Earlier boots' event logs, one file each."""
        return self.state_dir / "history"

    @property
    def serial_log(self) -> Path:
        return self.state_dir / "serial.log"

    @property
    def qemu_log(self) -> Path:
        return self.state_dir / "qemu.log"

    @property
    def swtpm_log(self) -> Path:
        return self.state_dir / "swtpm.log"

    @property
    def facts(self) -> Path:
        """What winarm remembers about the VM between runs (for example: the disk has booted)."""
        return self.state_dir / "vm.json"

    @property
    def lock(self) -> Path:
        """Held (flock) by the daemon for as long as it runs this VM."""
        return self.state_dir / ".lock"

    @property
    def qmp_socket(self) -> Path:
        return self.run_dir / "qmp.sock"

    @property
    def serial_socket(self) -> Path:
        return self.run_dir / "serial.sock"

    @property
    def control_socket(self) -> Path:
        """The daemon's own socket, which ``winarm status`` and ``winarm down`` talk to."""
        return self.run_dir / "control.sock"

    @property
    def report_socket(self) -> Path:
        """The guest channel's socket: QEMU relays the guest's reports (``http://10.0.2.5/report/<name>``) to it."""
        return self.run_dir / "report.sock"

    @property
    def vnc_socket(self) -> Path:
        """VNC's socket (the default display: only winarm's user can enter the run directory)."""
        return self.run_dir / "vnc.sock"

    @property
    def vnc_password(self) -> Path:
        """The VNC password winarm made for a TCP listener beyond loopback (mode 0600, kept with the VM)."""
        return self.state_dir / "vnc-password"

    @property
    def tpm_socket(self) -> Path:
        return self.run_dir / "swtpm.sock"

    @property
    def daemon_pid(self) -> Path:
        return self.run_dir / "winarm.pid"

    def check_socket_lengths(self) -> None:
        """Raise :class:`UserError` when a socket path would not fit in a unix socket address."""
        longest = max(
            (self.qmp_socket, self.serial_socket, self.control_socket, self.tpm_socket, self.report_socket,
             self.vnc_socket),
            key=lambda p: len(os.fsencode(p)),
        )
        if len(os.fsencode(longest)) > SOCKET_PATH_MAX:
            raise UserError(
                f"run directory {str(self.run_dir)!r} is too long for unix sockets: "
                "set WINARM_RUN_DIR to a shorter path"
            )


def remove_answer_media(directory: Path, keep: Path | None = None) -> list[Path]:
    """Delete every answer medium in ``directory`` except ``keep``; returns what was deleted."""
    removed = []
    for stale in directory.glob(f"{ANSWER_PREFIX}*.iso"):
        if stale != keep:
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed
