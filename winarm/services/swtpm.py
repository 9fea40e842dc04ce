"""The software TPM 2.0 (swtpm) a VM gets with ``--tpm``: state kept with the VM, socket in its run dir."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from winarm.errors import RuntimeFailure
from winarm.procs import kill_now, listening_socket, spawn, terminate, wait_exit


def check_available() -> None:
    """Raise :class:`RuntimeFailure` with the packages to install when swtpm is missing."""
    for program in ("swtpm", "swtpm_setup"):
        if shutil.which(program) is None:
            raise RuntimeFailure(f"{program} not found: install swtpm and swtpm-tools, or run with --no-tpm")


class Swtpm:
    """One swtpm process serving the VM's TPM over a unix socket it inherits already listening, so QEMU can
    connect at once (queued until swtpm accepts) with no waiting for a socket file to appear.

    swtpm's own ``key=value,...`` options cannot hold a comma, so swtpm and swtpm_setup run in the folder
    above the state and are given names relative to it: any storage path works."""

    def __init__(self, state_dir: Path, socket_path: Path, log_path: Path) -> None:
        self.state_dir = state_dir
        self.socket_path = socket_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _manufacture(self) -> None:
        """Create the TPM's state once (endorsement key and certificates), as a TPM leaves its factory."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            code = spawn(
                ["swtpm_setup", "--tpm2", "--tpmstate", self._relative(self.state_dir), "--create-ek-cert",
                 "--create-platform-cert", "--lock-nvram", "--overwrite"],
                stdout=log_file, stderr=log_file, cwd=self.state_dir.parent,
            ).wait()
        if code != 0:
            raise RuntimeFailure(f"swtpm_setup failed (status {code}): see {self.log_path}")

    def start(self) -> None:
        """Manufacture the state if new, then start swtpm. Raises :class:`RuntimeFailure`."""
        if not any(self.state_dir.glob("tpm2-*")):
            self._manufacture()
        listener = listening_socket(self.socket_path)
        try:
            with self.log_path.open("ab") as log_file:
                self.proc = spawn(
                    ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self._relative(self.state_dir)}",
                     "--ctrl", f"type=unixio,fd={listener.fileno()}",
                     "--log", f"file={self._relative(self.log_path)},level=1", "--terminate"],
                    pass_fds=(listener.fileno(),), stdout=log_file, stderr=log_file, cwd=self.state_dir.parent,
                )
        finally:
            listener.close()

    def _relative(self, path: Path) -> str:
        """``path`` relative to the folder swtpm runs in (``./`` keeps a leading ``-`` from looking like a flag)."""
        return f"./{path.relative_to(self.state_dir.parent)}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    async def wait(self) -> int | None:
        """Wait until swtpm ends (at once when it never started); return its exit status."""
        if self.proc is not None:
            await wait_exit(self.proc)
        return self.returncode

    async def stop(self) -> None:
        """End swtpm (SIGTERM, then SIGKILL after 2 s; it also ends by itself when QEMU hangs up)."""
        if self.proc is not None:
            await terminate(self.proc)

    async def close(self) -> None:
        """The graceful end the supervisor registers: :meth:`stop`."""
        await self.stop()

    def kill_now(self) -> None:
        """SIGKILL and reap swtpm if it runs: the synchronous last resort registered by the launch."""
        if self.proc is not None:
            kill_now(self.proc)
