"""Folders that must not be shared writable, and owners the share must not default to (issue 14, finding 3).

The guest is untrusted. A writable share of a system folder (``--shared /``, ``--shared /etc``) lets it change
the host; a share that holds the VM's own storage lets it rewrite its disk image, UEFI variables and TPM
state. Both are refused unless the share is read-only. And when winarm runs as root, files the guest writes
would belong to root if the shared folder is root's (Docker's auto-created ``./shared``, an anonymous
``/shared``): an owner of uid 0 is taken only when asked for explicitly.
"""

from __future__ import annotations

from pathlib import Path

from winarm.errors import UserError

SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev", "/proc",
                "/sys")
"""Folders nothing inside of which is shared writable."""
SYSTEM_FOLDERS = ("/", "/var", "/run", "/opt", "/home", "/root", "/srv", "/mnt", "/media", "/tmp")
"""Folders that are not shared writable themselves (a folder inside them may be)."""


def _inside(path: Path, tree: Path) -> bool:
    return path == tree or tree in path.parents


def check_writable_place(path: Path, storage: Path | None) -> None:
    """Raise :class:`UserError` when the folder ``path`` may not be shared writable: a system folder (see
    :data:`SYSTEM_TREES`, :data:`SYSTEM_FOLDERS`), or one that is, holds or lies inside ``storage``. Links are
    resolved first, so a link to ``/etc`` counts as ``/etc``."""
    real = path.resolve()
    for tree in SYSTEM_TREES:
        if _inside(real, Path(tree)):
            raise UserError(f"shared folder {str(path)!r} is in the system folder {tree}, which the guest must not "
                            "write: share another folder, or pass --share-readonly")
    if str(real) in SYSTEM_FOLDERS:
        raise UserError(f"shared folder {str(path)!r} is the system folder {real}, which the guest must not write: "
                        "share a folder inside it, or pass --share-readonly")
    if storage is not None:
        store = storage.expanduser().resolve()
        if _inside(real, store) or _inside(store, real):
            raise UserError(f"shared folder {str(path)!r} overlaps winarm's storage {str(store)!r} (the VM's own "
                            "disk): share another folder, or pass --share-readonly")


def check_default_owner(path: Path, uid: int, explicit: bool) -> None:
    """Raise :class:`UserError` when the share's files would belong to root (``uid`` 0) without ``explicit``
    asking for it (the owner came from the root-owned folder ``path``)."""
    if uid == 0 and not explicit:
        raise UserError(f"shared folder {str(path)!r} belongs to root, so Windows' files would too: give the owner "
                        "with --uid/--gid (UID/GID), for example 1000, or --uid 0 to accept root")


def check_password_meaning(password: str) -> None:
    """Raise :class:`UserError` for a share password that ``net use`` would read as something else: ``*`` (ask
    for one) or one starting with ``/`` (an option, like ``/delete``)."""
    if password == "*" or password.startswith("/"):
        raise UserError("the share password cannot be '*' or start with '/' (net use reads those as a prompt or an "
                        "option): choose another")
