"""The test guest's initramfs: busybox, ``init.sh`` as ``/init`` with its awk programs beside it, fsck.fat and
the libraries it needs, and the kernel modules the guest loads, as a gzip'd cpio archive.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from winarm_testbed.cpio import Cpio
from winarm_testbed.elf import elf_needed, modinfo
from winarm_testbed.packages import BUSYBOX
from winarm_testbed.tools import GuestBuildError, run

__all__ = ["GUEST_MODULES", "GUEST_PROGRAMS", "SHARE_MODULES", "guest_scripts", "write_initramfs"]

# Programs copied into the initramfs beside busybox (which has no FAT checker), from the extracted packages,
# and the files they need: the guest checks its FAT file systems with fsck.fat at each boot from the installed
# disk (init.sh). fsck.fat converts names from code page 850 through iconv: glibc's gconv module for it and
# the module cache. The build fails when an ELF file here needs a library not listed.
GUEST_PROGRAMS = ("sbin/fsck.fat",)
GUEST_LIBRARIES = (
    "lib/aarch64-linux-gnu/libc.so.6",
    "lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
    "lib/ld-linux-aarch64.so.1",
    "usr/lib/aarch64-linux-gnu/gconv/IBM850.so",
    "usr/lib/aarch64-linux-gnu/gconv/gconv-modules.cache",
)

# Kernel modules the guest loads at every boot, in this order (dependencies come from modules.dep).
# Everything else the guest needs (PCI host, PL011 serial, ACPI power button, devtmpfs, IPv4) is built in.
GUEST_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "xhci_pci",
    "usb_storage",
    "sr_mod",
    "isofs",
    "udf",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "evdev",
    "gpio_keys",
)

# Kernel modules loaded, in this order, only when the first logon maps a share of the host (`net use`):
# they take 1.4 s or more to load under TCG. virtio_net (net_failover comes from modinfo), then the crypto
# cifs asks for by soft dependency or by name at mount time, which busybox modprobe does not follow:
# signing (cmac; sha512 for SMB 3.1.1), encryption (ccm; gcm with ghash and ctr), ecb. hmac, md5,
# sha256, aes, af_packet and ipv6 are built in.
SHARE_MODULES = (
    "virtio_net",
    "ecb",
    "ctr",
    "cmac",
    "ccm",
    "gcm",
    "ghash_generic",
    "sha512_generic",
    "cifs",
)

_HERE = Path(__file__).resolve().parent
_INIT_SH = _HERE / "init.sh"


def guest_scripts() -> list[Path]:
    """The files of this package that run inside the guest: ``init.sh`` and every ``*.awk`` beside it (the
    awk programs init.sh runs with ``awk -f /NAME.awk``)."""
    return [_INIT_SH, *sorted(_HERE.glob("*.awk"))]


def write_initramfs(root: Path, kver: str, initroot: Path, out: Path) -> None:
    """Write a gzip'd newc cpio to OUT: busybox, GUEST_PROGRAMS and GUEST_LIBRARIES, init.sh as /init and the
    awk programs beside it, GUEST_MODULES and SHARE_MODULES with their dependencies (listed for init.sh in
    /etc/winarm-modules and /etc/winarm-share-modules) and a modules.dep made by depmod. ROOT holds the
    extracted packages, INITROOT is a scratch copy of the tree.

    Raises GuestBuildError when busybox, a program, a library it needs or a module is missing, or depmod
    fails; OSError from the file system.
    """
    busybox = root / "bin" / "busybox"
    if not busybox.is_file():
        raise GuestBuildError(f"{BUSYBOX} has no /bin/busybox")
    wanted = _copy_modules(root / "lib" / "modules" / kver, initroot / "lib" / "modules" / kver)
    run(["depmod", "-b", str(initroot), kver])

    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "mnt", "tmp", "run"):
        (initroot / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(busybox, initroot / "bin" / "busybox")
    (initroot / "bin" / "busybox").chmod(0o755)
    (initroot / "bin" / "sh").symlink_to("busybox")
    _copy_programs(root, initroot)
    shutil.copyfile(_INIT_SH, initroot / "init")
    (initroot / "init").chmod(0o755)
    for script in guest_scripts()[1:]:
        shutil.copyfile(script, initroot / script.name)
        (initroot / script.name).chmod(0o644)
    share_modules = {m.replace("-", "_") for m in SHARE_MODULES}
    (initroot / "etc" / "winarm-modules").write_text("".join(f"{m}\n" for m in wanted if m not in share_modules))
    (initroot / "etc" / "winarm-share-modules").write_text("".join(f"{m}\n" for m in wanted if m in share_modules))

    archive = Cpio()
    archive.add_tree(initroot)
    archive.add_node("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    out.write_bytes(gzip.compress(archive.finish(), compresslevel=9, mtime=0))


def _copy_modules(moddir: Path, dst_moddir: Path) -> list[str]:
    """Copy GUEST_MODULES and SHARE_MODULES with their dependencies from the kernel tree MODDIR to DST_MODDIR,
    with modules.builtin(.modinfo) and a modules.order trimmed to what was copied; return the names that are
    real modules (not built in), in the order asked for.

    Raises GuestBuildError when a module is missing.
    """
    wanted, files = _module_closure(moddir, (*GUEST_MODULES, *SHARE_MODULES))
    for rel in files:
        (dst_moddir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(moddir / rel, dst_moddir / rel)
    for name in ("modules.builtin", "modules.builtin.modinfo"):
        if (moddir / name).is_file():
            shutil.copyfile(moddir / name, dst_moddir / name)
    keep = {str(rel) for rel in files}
    order_file = moddir / "modules.order"
    order = order_file.read_text().splitlines() if order_file.is_file() else []
    (dst_moddir / "modules.order").write_text("".join(f"{ln}\n" for ln in order if ln in keep))
    return wanted


def _copy_programs(root: Path, initroot: Path) -> None:
    """Copy GUEST_PROGRAMS and GUEST_LIBRARIES (symlinks kept as symlinks) from the extracted packages in ROOT
    to INITROOT, and check that every library an ELF file among them needs (DT_NEEDED) is there too.

    Raises GuestBuildError when a file is missing or a needed library is not copied.
    """
    for rel in (*GUEST_PROGRAMS, *GUEST_LIBRARIES):
        src, dst = root / rel, initroot / rel
        if not (src.is_file() or src.is_symlink()):
            raise GuestBuildError(f"the guest packages have no /{rel}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copyfile(src, dst)
            dst.chmod(0o755 if src.stat().st_mode & 0o111 else 0o644)
    have = {Path(rel).name for rel in GUEST_LIBRARIES}
    for rel in (*GUEST_PROGRAMS, *GUEST_LIBRARIES):
        if (root / rel).is_symlink() or (root / rel).read_bytes()[:4] != b"\x7fELF":
            continue
        missing = sorted(set(elf_needed(root / rel)) - have)
        if missing:
            raise GuestBuildError(f"/{rel} needs {', '.join(missing)}: add it to GUEST_LIBRARIES")


def _module_closure(moddir: Path, names: Sequence[str]) -> tuple[list[str], list[Path]]:
    """Resolve NAMES against the kernel tree in MODDIR.

    Returns the names that are real modules (built-in ones are left out, in NAMES order) and the
    relative paths of those modules plus everything they depend on (read from each module's
    .modinfo ``depends=``). Raises GuestBuildError when a module is neither a file nor built in.
    """
    def norm(name: str) -> str:
        return name.replace("-", "_")

    by_name: dict[str, Path] = {}
    for path in (moddir / "kernel").rglob("*.ko"):
        by_name.setdefault(norm(path.name[: -len(".ko")]), path.relative_to(moddir))
    builtin = set()
    if (moddir / "modules.builtin").is_file():
        for line in (moddir / "modules.builtin").read_text().splitlines():
            base = line.rsplit("/", 1)[-1]
            builtin.add(norm(base[: -len(".ko")] if base.endswith(".ko") else base))

    wanted = [norm(n) for n in names if norm(n) not in builtin]
    seen: dict[str, Path] = {}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in seen or name in builtin:
            continue
        if name not in by_name:
            raise GuestBuildError(f"kernel module {name} not found in the kernel package")
        seen[name] = by_name[name]
        deps = modinfo(moddir / by_name[name]).get("depends", "")
        todo.extend(norm(d) for d in deps.split(",") if d)
    return wanted, sorted(seen.values())
