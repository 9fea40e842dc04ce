"""The files of a VM's own smbd: its smb.conf, and the passwd and group files nss_wrapper gives it.

Pure text from the share settings (see :mod:`winarm.services.smbd` for the process): tested without Samba.
"""

from __future__ import annotations

from pathlib import Path

from winarm.config.share import ShareSettings, check_path

OWNER = "winarm-owner"
"""The account smbd works as, known only to smbd (through nss_wrapper), with the configured uid and gid."""


HARDENING = (
    "unix extensions = no",
    "nt acl support = no",  # else a guest's SET_INFO with a DACL widens modes (0664 to 0677) and can change owners
    "ea support = no",
    "dos filemode = no",
    "wide links = no",
    "allow insecure wide links = no",
    "max smbd processes = 16",  # one guest needs a handful; the cap stops a flood of sessions forking smbds
    "deadtime = 15",  # minutes: an idle session is dropped (Windows reconnects by itself)
)
"""Global settings pinned whatever Samba's defaults are: what the guest may change on the host's files (modes,
owners, extended attributes, links out of the share) and how many smbd processes it may hold."""


def render_conf(settings: ShareSettings, samba_dir: Path, port: int) -> str:
    """The smb.conf text. Every path and value was checked to fit on one line (no new sections, no
    substitutions); raises ValueError if one does not, which would be a bug upstream."""
    for path in (samba_dir, *(share.path for share in settings.shares)):
        check_path(path)
    lines = [
        "# written by winarm for one VM; every state directory is below this file's directory",
        "[global]",
        "server role = standalone server",
        "interfaces = 127.0.0.1",
        "bind interfaces only = yes",
        f"smb ports = {port}",
        "disable netbios = yes",
        "server min protocol = SMB2_10",
        *(f"{name} dir = {samba_dir / name}" for name in ("private", "ncalrpc")),
        f"state directory = {samba_dir / 'state'}",
        f"cache directory = {samba_dir / 'cache'}",
        f"lock directory = {samba_dir / 'lock'}",
        f"pid directory = {samba_dir / 'pid'}",
        f"log file = {samba_dir / 'log.smbd'}",
        "max log size = 1000",
        f"passdb backend = tdbsam:{samba_dir / 'private' / 'passdb.tdb'}",
        "guest account = nobody",
        "load printers = no",
        "printing = bsd",
        "printcap name = /dev/null",
        "disable spoolss = yes",
        *HARDENING,
    ]
    if settings.guest_login:
        lines += ["map to guest = Bad User", "restrict anonymous = 0"]
    else:
        lines += ["map to guest = Never", f"username map = {samba_dir / 'users.map'}"]
    for share in settings.shares:
        lines += [
            "",
            f"[{share.name}]",
            f"path = {share.path}",
            f"read only = {'yes' if share.readonly else 'no'}",
            f"guest ok = {'yes' if settings.guest_login else 'no'}",
            f"force user = {OWNER}",
            f"force group = {OWNER}",
            f"create mask = {settings.file_mode:04o}",
            f"force create mode = {settings.file_mode:04o}",
            f"directory mask = {settings.dir_mode:04o}",
            f"force directory mode = {settings.dir_mode:04o}",
            "inherit owner = no",
            "store dos attributes = no",
            "map archive = no",
        ]
        if not settings.guest_login:
            lines.append(f"valid users = {OWNER}")
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"smb.conf line would break: {line!r}")
    return "\n".join(lines) + "\n"


def identity_files(settings: ShareSettings) -> tuple[str, str]:
    """passwd and group texts for nss_wrapper: the host's entries plus ``winarm-owner`` as uid:gid."""

    def read(path: str) -> list[str]:
        try:
            return [line for line in Path(path).read_text().splitlines()
                    if line and not line.startswith(f"{OWNER}:")]
        except OSError:
            return []

    owner = f"{OWNER}:x:{settings.uid}:{settings.gid}:winarm share owner:/nonexistent:/bin/false"
    passwd = [*read("/etc/passwd"), owner]
    groups = read("/etc/group")
    groups.append(f"{OWNER}:x:{settings.gid}:")
    if not any(line.startswith("nobody:") for line in passwd):
        passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/bin/false")
    if not any(line.split(":")[2:3] == ["65534"] for line in groups):
        groups.append("nogroup:x:65534:")
    return "\n".join(passwd) + "\n", "\n".join(groups) + "\n"
