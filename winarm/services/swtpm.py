"""The software TPM 2.0 (swtpm) a VM gets with ``--tpm``: state kept with the VM, socket in its run dir.

swtpm_setup signs the TPM's endorsement and platform certificates with a local certificate authority. Left to
its defaults it uses the system-wide one in ``/var/lib/swtpm-localca``, which only root (or ``tss``) may write,
so a user's ``winarm up`` failed at once. winarm always gives it a configuration of its own instead, with the
authority kept beside the VM's TPM state (``tpm-ca``, mode 0700): the same path for root and for users, one
that is tested, that does not depend on what a distribution put in ``/etc``, and that never touches the
system authority's key. Each VM thus has its own authority, which goes when the VM's folder goes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from winarm.errors import RuntimeFailure
from winarm.procs import kill_now, listening_socket, spawn, terminate, wait_exit

SETUP_CONF = "swtpm_setup.conf"
LOCALCA_CONF = "swtpm-localca.conf"
LOCALCA_OPTIONS = "swtpm-localca.options"
PCR_BANKS = "sha256"

_UNSAFE_IN_CONF = ("\n", "\r", "#", "${")


def check_available() -> None:
    """Raise :class:`RuntimeFailure` with the packages to install when swtpm is missing."""
    for program in ("swtpm", "swtpm_setup"):
        if shutil.which(program) is None:
            raise RuntimeFailure(f"{program} not found: install swtpm and swtpm-tools, or run with --no-tpm")


def ca_config_files(ca_dir: str, tool: str) -> dict[str, str]:
    """The text of each file of swtpm_setup's configuration (by file name), for an authority kept in
    ``ca_dir`` and certificates made by ``tool`` (the ``swtpm_localca`` program). Every path in them is
    ``ca_dir`` joined to a file name, so it is as absolute or relative as ``ca_dir`` is.

    Raises :class:`RuntimeFailure` when a path holds what these files cannot carry: a line break, a ``#``
    (a comment) or ``${`` (an environment variable to swtpm_localca)."""
    for value in (ca_dir, tool):
        if any(bad in value for bad in _UNSAFE_IN_CONF):
            raise RuntimeFailure(f"cannot name {value!r} in swtpm's configuration: it holds a line break, # or ${{")
    setup = (f"create_certs_tool = {tool}\n"
             f"create_certs_tool_config = {ca_dir}/{LOCALCA_CONF}\n"
             f"create_certs_tool_options = {ca_dir}/{LOCALCA_OPTIONS}\n"
             f"active_pcr_banks = {PCR_BANKS}\n")
    localca = (f"statedir = {ca_dir}\n"
               f"signingkey = {ca_dir}/signkey.pem\n"
               f"issuercert = {ca_dir}/issuercert.pem\n"
               f"certserial = {ca_dir}/certserial\n")
    options = "--platform-manufacturer winarm\n--platform-version 2.1\n--platform-model QEMU\n"
    return {SETUP_CONF: setup, LOCALCA_CONF: localca, LOCALCA_OPTIONS: options}


class Swtpm:
    """One swtpm process serving the VM's TPM over a unix socket it inherits already listening, so QEMU can
    connect at once (queued until swtpm accepts) with no waiting for a socket file to appear.

    swtpm's own ``key=value,...`` options cannot hold a comma, so swtpm and swtpm_setup run in the folder
    above the state and are given names relative to it: any storage path works."""

    def __init__(self, state_dir: Path, socket_path: Path, log_path: Path, ca_dir: Path | None = None) -> None:
        """``ca_dir`` (default: ``tpm-ca`` beside ``state_dir``) must lie in the folder above ``state_dir``."""
        self.state_dir = state_dir
        self.socket_path = socket_path
        self.log_path = log_path
        self.ca_dir = ca_dir if ca_dir is not None else state_dir.with_name("tpm-ca")
        self.proc: subprocess.Popen[bytes] | None = None

    def write_ca_config(self) -> str:
        """Create the authority's folder (0700) and write swtpm_setup's configuration into it; return the
        configuration's name relative to the folder swtpm_setup runs in. Raises :class:`RuntimeFailure`."""
        tool = shutil.which("swtpm_localca")
        if tool is None:
            raise RuntimeFailure("swtpm_localca not found: install swtpm-tools, or run with --no-tpm")
        self.ca_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.ca_dir.chmod(0o700)
        for name, text in ca_config_files(self._relative(self.ca_dir), str(Path(tool).resolve())).items():
            (self.ca_dir / name).write_text(text)
        return self._relative(self.ca_dir / SETUP_CONF)

    def _manufacture(self) -> None:
        """Create the TPM's state once (endorsement key and certificates), as a TPM leaves its factory.
        On failure the half-made state is removed, so the next start tries again; raises :class:`RuntimeFailure`."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = self.write_ca_config()
        with self.log_path.open("ab") as log_file:
            code = spawn(
                ["swtpm_setup", "--tpm2", "--tpmstate", self._relative(self.state_dir), "--config", config,
                 "--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--overwrite"],
                stdout=log_file, stderr=log_file, cwd=self.state_dir.parent,
            ).wait()
        if code != 0:
            for partial in self.state_dir.glob("tpm2-*"):
                partial.unlink()
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
