"""The settings table: every value winarm takes from a flag or the environment, each written once.

A row names the setting (its key in the ``flags`` mapping and, for the VM's settings, the
:class:`~winarm.config.vm.Config` field), its command-line flag, its environment names (the anchor's first), its
default, its choices and its help. The click options (:mod:`winarm.cli.options`), ``winarm env``, the loaders
(:func:`winarm.config.vm.load_config`, :func:`winarm.config.share.load_share_settings`) and ``winarm unattend
render`` all read this table; :class:`winarm.config.values.Values` resolves a row's value (flag, then environment,
then default) and checks a yes/no or a choice. Data only: nothing here imports click or looks at the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from winarm.config.paths import default_run_base, default_storage
from winarm.config.timezone import host_timezone
from winarm.config.windows import (
    DEFAULT_COMPUTER_NAME,
    DEFAULT_DRIVERS_PASS,
    DEFAULT_LANGUAGE,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    DEFAULT_WINDOWS,
    DRIVERS_PASSES,
)


@dataclass(frozen=True)
class Setting:
    """One setting. ``flag`` is ``--name`` (a value), ``--name/--no-name`` (a switch) or None (environment only).

    ``default`` is used when neither the flag nor an environment name is given; a callable is called then (a
    default that depends on the host). ``default_text`` is how help shows a default that is not a plain value.
    With ``yes_no`` the value is a bool, read with :func:`~winarm.config.values.parse_bool` under the first
    environment name. With ``choices`` the value is one of them (any case; ``aliases`` map other spellings to one),
    refused as ``<what> <value> is not known``. ``more`` follows the help's bracket.
    """

    name: str
    flag: str | None
    env: tuple[str, ...] = ()
    default: Any = None
    help: str = ""
    what: str = ""
    choices: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    yes_no: bool = False
    default_text: str | None = None
    more: str = ""
    metavar: str | None = None
    multiple: bool = False

    @property
    def shown_default(self) -> str | None:
        """The default as help shows it: ``4G``, ``on``/``off`` for a switch, ``default_text``, or None."""
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if self.default is None or callable(self.default):
            return None
        return str(self.default)

    @property
    def help_text(self) -> str:
        """The option's help: the text, then ``[env NAMES; default VALUE]`` from the row, then ``more``."""
        parts = [f"env {' or '.join(self.env)}"] if self.env else []
        if self.shown_default is not None:
            parts.append(f"default {self.shown_default}")
        bracket = f" [{'; '.join(parts)}]" if parts else ""
        return f"{self.help}{bracket}." + (f" {self.more}" if self.more else "")


def _row(name: str, flag: str | None, env: str | tuple[str, ...], default: Any, text: str, **rest: Any) -> Setting:
    """A row written short: one environment name may be given as a string."""
    return Setting(name, flag, (env,) if isinstance(env, str) else env, default, text, **rest)

SETTINGS: tuple[Setting, ...] = (
    # the VM and where it lives
    _row("name", "--name", "NAME", "windows", "The VM's name: its folder under the storage directory"),
    _row("storage", "--storage", "STORAGE", default_storage, "Directory holding the VMs' disks and logs",
         default_text="/storage in the container, else ~/.local/share/winarm", metavar="DIR"),
    # the machine and its disk
    _row("ram", "--ram", "RAM_SIZE", "4G", "Guest memory: 8G, 8192M, half or max"),
    _row("cpus", "--cpus", "CPU_CORES", "2", "Virtual CPUs: a count, half or max"),
    _row("disk_size", "--disk-size", "DISK_SIZE", "64G", "System disk size (grown, never shrunk)"),
    _row("disk_format", "--disk-format", "DISK_FMT", "qcow2", "System disk image format", what="disk format",
         choices=("qcow2", "raw")),
    _row("disk_bus", "--disk-bus", "DISK_TYPE", "virtio-blk", "System disk bus (its boot driver goes in "
         "$WinPEDriver$)", what="disk bus", choices=("virtio-blk", "virtio-scsi", "nvme"),
         aliases={"blk": "virtio-blk", "virtio": "virtio-blk", "scsi": "virtio-scsi"}),
    _row("allocate", "--allocate/--no-allocate", "ALLOCATE", False, "Reserve the whole disk on the host now "
         "(preallocated) instead of a sparse image that grows as the guest writes", yes_no=True),
    # the install
    _row("iso", "--iso", ("BOOT", "ISO"), None, "Windows for ARM64 install ISO (a path or a URL), attached "
         "unchanged as a USB CD"),
    _row("iso_sha256", "--iso-sha256", (), None, "Expected SHA-256 of an ISO given as a URL"),
    _row("drivers", "--drivers", "DRIVERS", None, "virtio-win ISO or extracted folder"),
    _row("drivers_pass", "--drivers-pass", "DRIVERS_PASS", DEFAULT_DRIVERS_PASS, "Where the non-boot-critical "
         "drivers are installed (windowsPE: all from $WinPEDriver$)", what="drivers pass",
         choices=DRIVERS_PASSES),
    _row("unattend", "--unattend/--no-unattend", (), True, "Add the answer medium (Autounattend.xml and drivers) "
         "for an unattended install", more="Off boots the ISO as it is."),
    _row("username", "--username", "USERNAME", DEFAULT_USERNAME, "Local administrator account created by Setup"),
    _row("password", "--password", "PASSWORD", DEFAULT_PASSWORD, "Its password, ASCII", more="Visible to 'ps' as an "
         "argument: prefer --password-file or the environment."),
    _row("password_file", "--password-file", "PASSWORD_FILE", None, "Read the Windows password from FILE's first "
         "line", metavar="FILE"),
    _row("computer_name", "--computer-name", "COMPUTER_NAME", DEFAULT_COMPUTER_NAME,
         "Computer name: 1-15 letters, digits, '-'"),
    _row("language", "--language", "LANGUAGE", DEFAULT_LANGUAGE, "Windows language tag for the locales and "
         "keyboard, and for the UI when the image has it"),
    _row("ui_language", "--ui-language", "UI_LANGUAGE", None, "Setup's and Windows' display language; refused "
         "when the image lacks it", default_text="--language when the image has it, else the image's default; "
         "--language for 'unattend render'"),
    _row("keyboard", "--keyboard", "KEYBOARD", None, "Input locale: a language tag or 0407:00000407",
         default_text="the language"),
    _row("edition", "--edition", "EDITION", None, "Edition to install from install.wim: its index or its name",
         default_text="the ISO's first Pro; index 1 for 'unattend render'", metavar="NAME-OR-INDEX"),
    _row("product_key", "--product-key", "KEY", None, "Product key XXXXX-XXXXX-XXXXX-XXXXX-XXXXX, installed at the "
         "first logon (slmgr /ipk) from a file on the answer medium, never given to Setup",
         default_text="none"),
    _row("timezone", "--timezone", "TIMEZONE", host_timezone, "Windows' time zone: a Windows ID ('W. Europe "
         "Standard Time') or an IANA name (Europe/Berlin)", default_text="the host's"),
    # the shared folders
    _row("shared", "--shared", "SHARED", None, "Share DIR with the guest as \\\\host.lan\\NAME (default name "
         "Data); repeat for more", default_text="/shared when it exists", metavar="[NAME=]DIR", multiple=True),
    _row("share", "--share/--no-share", "SAMBA", None, "Run the shared folder's smbd", yes_no=True,
         default_text="on when a folder is shared"),
    _row("share_readonly", "--share-readonly", "SAMBA_READONLY", False, "The guest may read, not write",
         yes_no=True),
    _row("uid", "--uid", ("UID", "PUID"), None, "Owner of the files the guest creates",
         default_text="the shared folder's owner (never root unless given), or winarm's own user when not root"),
    _row("gid", "--gid", ("GID", "PGID"), None, "Group of those files", default_text="the folder's group"),
    _row("file_mode", "--file-mode", "SHARE_FILE_MODE", "0664", "Mode of new files"),
    _row("dir_mode", "--dir-mode", "SHARE_DIR_MODE", "0775", "Mode of new folders"),
    _row("share_user", "--share-user", "SHARE_USER", None, "Require this user name for the share instead of "
         "guest access"),
    _row("share_password", "--share-password", "SHARE_PASSWORD", None, "Its password",
         more="Visible to 'ps' as an option: prefer --share-password-file."),
    _row("share_password_file", "--share-password-file", "SHARE_PASSWORD_FILE", None, "Read the share password "
         "from FILE's first line (a Docker or Kubernetes secret)", metavar="FILE"),
    _row("share_min_free", "--share-min-free", "SHARE_MIN_FREE", "1G", "Free space kept where the shares are: "
         "below it they turn read-only until there is room again", more="0 or off: no watermark.", metavar="SIZE"),
    _row("share_port", "--share-port", "SHARE_PORT", None, "Host loopback port for smbd",
         default_text="a free one", more="The guest always uses 445."),
    # running it
    _row("accel", "--accel", "ACCEL", "auto", "Accelerator", what="accelerator", choices=("auto", "kvm", "tcg"),
         default_text="auto: KVM on an aarch64 host"),
    _row("tpm", "--tpm/--no-tpm", "TPM", True, "A software TPM 2.0 (swtpm)", yes_no=True),
    _row("secure_boot", "--secure-boot/--no-secure-boot", (), True, "UEFI Secure Boot with Microsoft keys",
         more="Off for unsigned test guests."),
    _row("guest_channel", "--guest-channel/--no-guest-channel", "GUEST_CHANNEL", True, "The guest reports its "
         "phases over the network to winarm (http://10.0.2.5/report/NAME)", yes_no=True, more="Off, the guest cannot "
         "reach winarm and install phases are only inferred from the boot order."),
    _row("timeout", "--timeout", "TIMEOUT", "105", "Seconds the guest gets to shut down before QEMU is told to "
         "quit (5 s while no OS or Windows Setup runs: they ignore the power button)"),
    _row("stall_timeout", "--stall-timeout", "STALL_TIMEOUT", "1800", "Seconds with no disk I/O, no screen change "
         "and no guest report after which a running install is told stalled (an event, a line, a screenshot); 0 "
         "turns the watch off", metavar="SECONDS", more="The default allows for TCG on a small host, where one "
         "step of Setup can be quiet for many minutes."),
    _row("vnc", "--vnc", "VNC", "socket", "Where VNC listens: socket (vnc.sock in the run directory), or an IP "
         "address for TCP", more="Beyond loopback VNC needs a password: VNC_PASSWORD_FILE, or one made at the first "
         "start in STORAGE/NAME/vnc-password."),
    _row("vnc_no_password", "--vnc-no-password", "VNC_NO_PASSWORD", False, "Let VNC beyond loopback go without a "
         "password (anyone who reaches the port sees and drives Windows)", yes_no=True),
    _row("vnc_password_file", "--vnc-password-file", "VNC_PASSWORD_FILE", None, "Require the VNC password in "
         "FILE's first line (1-8 characters, the VNC protocol's limit)", metavar="FILE", more="Or the password "
         "itself in env VNC_PASSWORD; given to QEMU through QMP, never on its command line."),
    _row("metrics_port", "--metrics-port", "METRICS_PORT", None, "Serve Prometheus metrics on this port",
         default_text="off"),
    _row("metrics_address", "--metrics-address", "METRICS_ADDRESS", "127.0.0.1", "Address of the metrics "
         "endpoint"),
    _row("stop_at", "--stop-at", (), None, "Stop the VM gracefully once the guest prints 'WINARM-PHASE MARKER' "
         "(demos, benchmarks)", metavar="MARKER"),
    _row("cpu_model", "--cpu-model", (), None, "QEMU CPU model", metavar="MODEL",
         default_text="host under KVM, max,pauth-impdef=on under TCG"),
    # the answer file alone
    _row("windows", "--windows", (), DEFAULT_WINDOWS, "Windows version: 11 or 10"),
    # the process: environment only
    _row("vnc_password", None, "VNC_PASSWORD", None, "The VNC password itself (no flag: a file with "
         "--vnc-password-file)"),
    _row("kvm", None, "KVM", None, "N forces --accel tcg", yes_no=True),
    _row("run_base", None, "WINARM_RUN_DIR", default_run_base, "Base of the run directories (sockets)"),
    _row("cache", None, "WINARM_CACHE", None, "Cache for the test guest", default_text="~/.cache/winarm"),
    _row("debug", None, "WINARM_DEBUG", False, "Y: an error's traceback after its one line, and winarm's and QMP's "
         "debug log, on stderr", yes_no=True),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

VM = ("name", "storage")
"""What names a VM: every command that acts on one takes these."""
DISK = ("disk_size", "disk_format", "disk_bus", "allocate")
INSTALL = ("iso", "iso_sha256", "drivers", "drivers_pass", "unattend", "username", "password", "password_file",
           "computer_name", "language", "ui_language", "keyboard", "edition", "product_key", "timezone")
SHARE = ("shared", "share", "share_readonly", "uid", "gid", "file_mode", "dir_mode", "share_user", "share_password",
         "share_password_file", "share_min_free", "share_port")
RUN = ("accel", "tpm", "secure_boot", "guest_channel", "timeout", "stall_timeout", "vnc", "vnc_password_file",
       "vnc_no_password",
       "metrics_port", "metrics_address", "stop_at", "cpu_model")
UP = (*VM, "ram", "cpus", *DISK, *INSTALL, *SHARE, *RUN)
"""The options of ``winarm up``, in the order its help lists them."""
PREPARE = (*VM, *INSTALL, *SHARE, "disk_bus", "tpm", "secure_boot")
RENDER = ("windows", "username", "password", "computer_name", "language", "ui_language", "keyboard", "edition",
          "product_key", "timezone",
          "disk_bus", "drivers_pass")
"""The options of ``winarm unattend render``: the answer file's settings."""


def env_names(names: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    """Setting name -> its environment names, for the settings in ``names`` (all when None) that have any."""
    rows = SETTINGS if names is None else tuple(BY_NAME[n] for n in names)
    return {s.name: s.env for s in rows if s.env}


def default_of(name: str) -> Any:
    """The default of setting ``name``, a callable default called."""
    default = BY_NAME[name].default
    return default() if callable(default) else default
