"""Builder of the winarm test guest: a small real arm64 Linux, as a bootable ISO, from Debian packages.

The ISO boots a standalone GRUB from its El Torito EFI image (``efi.img``, also visible in the ISO tree).
Loaded from the CD, GRUB prints ``Press any key to boot from CD or DVD``: on a key it boots Linux with
``winarm.boot=cd``, which copies ``seed.img`` (a GPT disk image whose EFI System Partition is the same
FAT image) onto the virtio-blk disk and reboots; with no key GRUB exits back to the firmware. Loaded from
the disk, GRUB boots Linux with ``winarm.boot=disk`` at once, which checks its FAT file systems (fsck.fat
from dosfstools), waits for the ACPI power button and powers off. ``init.sh`` prints a line
``WINARM-PHASE <name>`` on the serial console at each step.

Nothing here needs root or loop devices: the cpio archive is written in Python, the FAT image with
mtools, the partition table with sfdisk on a plain file.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EFI_IMAGE_NAME", "ISO_NAME", "GuestBuildError", "build_guest", "build_guest_efi_image", "make_seed"]

ISO_NAME = "winarm-testguest.iso"
EFI_IMAGE_NAME = "efi.img"
ARCH = "arm64"
KERNEL_META = "linux-image-arm64"
BUSYBOX = "busybox-static"
GRUB_BIN = "grub-efi-arm64-bin"
DOSFSTOOLS = "dosfstools"
LIBC = "libc6"

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

# Host tools, with the Debian package that provides each.
HOST_TOOLS: Mapping[str, str] = {
    "apt-cache": "apt",
    "apt-get": "apt",
    "dpkg": "dpkg",
    "depmod": "kmod",
    "grub-mkstandalone": "grub-common",
    "mkfs.fat": "dosfstools",
    "mmd": "mtools",
    "mcopy": "mtools",
    "sfdisk": "fdisk",
    "xorriso": "xorriso",
}

_HERE = Path(__file__).resolve().parent
_INIT_SH = _HERE / "init.sh"
_GRUB_CFG = _HERE / "grub.cfg"
_APT_LISTS = Path("/var/lib/apt/lists")
_RESOLUTION_FILE = "apt-resolution-2.json"  # another name than before dosfstools: older builders share the cache
_MIB = 1024 * 1024
_SECTOR = 512
_ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
# Fixed identifiers keep the images reproducible from one build to the next.
_DISK_GUID = "57494E41-524D-4775-6573-740000000001"
_PART_GUID = "57494E41-524D-4775-6573-740000000002"
_FAT_VOLUME_ID = "57494e41"
_BASIC_DATA_TYPE = "EBD0A0A2-B9E5-4433-87C0-68B99B26C7C7"
_DATA_PART_GUID = "57494E41-524D-4775-6573-740000000003"
_DATA_VOLUME_ID = "57494e42"


class GuestBuildError(Exception):
    """One-line, user-facing reason (e.g. 'arm64 packages not in apt lists: run make deps')."""


@dataclass(frozen=True)
class _Package:
    """One arm64 Debian package pinned to the version apt would download now."""

    name: str
    version: str
    sha256: str

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` gives this package (epoch colon escaped as %3a)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{ARCH}.deb"


# --------------------------------------------------------------------------------------------------
# Public entry point


def build_guest(cache_dir: Path, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Build (or reuse from cache) the test guest ISO and return its path.

    Idempotent: a second call with the same inputs (package versions in the apt lists, ``init.sh``,
    ``grub.cfg`` and this file) returns the cached ISO in milliseconds without rebuilding. ``force``
    rebuilds anyway (downloaded .debs are still reused). The ISO is written atomically (temp file +
    rename) to ``cache_dir/guest-<key>/winarm-testguest.iso``; concurrent builders serialise on a lock.

    Raises GuestBuildError (one line) when a host tool is missing, the arm64 packages are not in the
    apt lists, a download or tool fails, or the cache directory cannot be written.
    """
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        packages = _resolve_packages(cache_dir)
        key = _cache_key(packages)
        iso = cache_dir / f"guest-{key}" / ISO_NAME
        if iso.is_file() and not force:
            return iso
        _check_tools()
        with _locked(cache_dir / ".lock"):
            if iso.is_file() and not force:
                return iso
            started = time.monotonic()
            log(f"testguest: building {iso} ({', '.join(f'{p.name} {p.version}' for p in packages)})")
            _build(cache_dir, packages, iso, log)
            log(f"testguest: built {iso.name} ({iso.stat().st_size // _MIB} MiB) "
                f"in {time.monotonic() - started:.1f} s")
            return iso
    except OSError as exc:
        raise GuestBuildError(f"cannot build the test guest in {cache_dir}: {exc}") from exc


def build_guest_efi_image(cache_dir: Path, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Build (or reuse) the test guest and return its EFI boot image: the FAT image holding GRUB, the kernel
    and the initramfs at ``/EFI/BOOT/BOOTAA64.EFI``, the same bytes as the guest ISO's El Torito image.

    The image is kept beside the ISO (``cache_dir/guest-<key>/efi.img``) and shares its cache key, so it
    changes whenever the guest does; callers must treat it as read-only. Raises GuestBuildError like
    build_guest.
    """
    iso = build_guest(cache_dir, force=force, log=log)
    image = iso.parent / EFI_IMAGE_NAME
    if not image.is_file():  # a cache entry written before the image was kept: build it again
        iso = build_guest(cache_dir, force=True, log=log)
        image = iso.parent / EFI_IMAGE_NAME
        if not image.is_file():
            raise GuestBuildError(f"the guest build left no {image}")
    return image


# --------------------------------------------------------------------------------------------------
# Inputs: host tools, package resolution, cache key


def _tool(name: str) -> str:
    """Return the path of host tool NAME (also looked up in the sbin directories).

    Raises GuestBuildError naming the Debian package to install when it is missing.
    """
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which(name, path=path)
    if found is None:
        raise GuestBuildError(f"host tool {name} not found: apt-get install {HOST_TOOLS.get(name, name)}")
    return found


def _check_tools() -> None:
    """Raise GuestBuildError listing every missing host tool and the packages that provide them."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/sbin"
    missing = [name for name in HOST_TOOLS if shutil.which(name, path=path) is None]
    if missing:
        pkgs = sorted({HOST_TOOLS[name] for name in missing})
        raise GuestBuildError(f"host tools missing ({', '.join(missing)}): apt-get install {' '.join(pkgs)}")


def _run(argv: Sequence[str], *, cwd: Path | None = None, stdin: str | None = None,
         env: Mapping[str, str] | None = None) -> str:
    """Run ARGV (no shell) and return its stdout; the tool is resolved with _tool().

    Raises GuestBuildError with the tool's last line of error output when it fails.
    """
    full = [_tool(argv[0]), *argv[1:]]
    run_env = None if env is None else {**os.environ, **env}
    proc = subprocess.run(full, cwd=cwd, input=stdin, capture_output=True, text=True, env=run_env,
                          check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise GuestBuildError(f"{argv[0]} failed: {reason}")
    return proc.stdout


def _apt_stamp() -> list[list[str | int]]:
    """Fingerprint of the apt package lists (name, size, mtime); empty when they cannot be read."""
    try:
        entries = sorted(p for p in _APT_LISTS.iterdir() if "_Packages" in p.name)
        return [[p.name, st.st_size, st.st_mtime_ns] for p in entries for st in [p.stat()]]
    except OSError:
        return []


def _apt_show(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Return the candidate stanza of each arm64 package in NAMES, by package name.

    Raises GuestBuildError when apt does not know one of them (no arm64 lists).
    """
    argv = ["apt-cache", "show", "--no-all-versions", *(f"{n}:{ARCH}" for n in names)]
    _tool("apt-cache")
    try:
        out = _run(argv)
    except GuestBuildError as exc:
        raise GuestBuildError(f"arm64 packages not in apt lists: run make deps ({exc})") from exc
    stanzas: dict[str, dict[str, str]] = {}
    for block in out.split("\n\n"):
        fields = {m[1]: m[2] for m in re.finditer(r"^([A-Za-z0-9-]+): ?(.*)$", block, re.M)}
        if fields.get("Architecture") == ARCH and "Package" in fields:
            stanzas.setdefault(fields["Package"], fields)
    missing = [n for n in names if n not in stanzas]
    if missing:
        raise GuestBuildError(f"arm64 packages not in apt lists: run make deps (no {', '.join(missing)})")
    return stanzas


def _resolve_packages(cache_dir: Path) -> list[_Package]:
    """Pin the kernel image (the versioned dependency of linux-image-arm64), busybox-static,
    grub-efi-arm64-bin, dosfstools and libc6 to their current candidate versions.

    apt-cache takes about two seconds here (no pkgcache), so the answer is memoised in cache_dir
    against a fingerprint of the apt lists and the names asked for. Raises GuestBuildError when apt
    cannot answer.
    """
    memo = cache_dir / _RESOLUTION_FILE
    stamp = _apt_stamp()
    names = [KERNEL_META, BUSYBOX, GRUB_BIN, DOSFSTOOLS, LIBC]
    if stamp:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(memo.read_text())
            if saved["stamp"] == stamp and saved["names"] == names:
                return [_Package(**p) for p in saved["packages"]]
    first = _apt_show(names)
    depends = first[KERNEL_META].get("Depends", "")
    match = re.search(r"(linux-image-\d[^\s,(]*)", depends)
    if match is None:
        raise GuestBuildError(f"cannot resolve {KERNEL_META}:{ARCH} to a kernel (Depends: {depends!r})")
    kernel = match.group(1)
    second = _apt_show([kernel])
    stanzas = {kernel: second[kernel], **{n: first[n] for n in names if n != KERNEL_META}}
    packages = [_Package(n, s["Version"], s.get("SHA256", "")) for n, s in stanzas.items()]
    if stamp:
        record = {"stamp": stamp, "names": names, "packages": [vars(p) for p in packages]}
        _write_atomic(memo, json.dumps(record, indent=1).encode())
    return packages


def _cache_key(packages: Sequence[_Package]) -> str:
    """Short hash of the package versions and of init.sh, grub.cfg and this module's source."""
    digest = hashlib.sha256()
    for pkg in packages:
        digest.update(f"{pkg.name}={pkg.version}\n".encode())
    for path in (_INIT_SH, _GRUB_CFG, Path(__file__)):
        data = path.read_bytes()
        digest.update(f"{path.name}:{len(data)}\n".encode() + data)
    return digest.hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# Build steps


def _build(cache_dir: Path, packages: Sequence[_Package], iso: Path, log: Callable[[str], None]) -> None:
    """Build the whole guest in a scratch directory under cache_dir and move the ISO to ISO.

    Raises GuestBuildError on any failing step.
    """
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache_dir) as tmp:
        work = Path(tmp)
        debs = _download(cache_dir / "debs", packages, log)
        root = work / "extract"
        for deb in debs:
            _run(["dpkg", "-x", str(deb), str(root)])
        kernel_pkg = next(p.name for p in packages if p.name.startswith("linux-image-"))
        kver = kernel_pkg.removeprefix("linux-image-")
        vmlinuz = root / "boot" / f"vmlinuz-{kver}"
        if not vmlinuz.is_file():
            raise GuestBuildError(f"{kernel_pkg} has no /boot/vmlinuz-{kver}")

        log("testguest: initramfs")
        initrd = work / "initrd.gz"
        _write_initramfs(root, kver, work / "initroot", initrd)

        log("testguest: GRUB, EFI image, seed disk, ISO")
        grub_cfg = work / "grub.cfg"
        grub_cfg.write_text(_render(_GRUB_CFG.read_text(), {"KERNEL_VERSION": kver}))
        efi_binary = work / "BOOTAA64.EFI"
        _run(["grub-mkstandalone", "-O", "arm64-efi", "-d", str(root / "usr/lib/grub/arm64-efi"),
              "-o", str(efi_binary), "--locales=", "--fonts=", "--themes=",
              f"boot/grub/grub.cfg={grub_cfg}", f"boot/vmlinuz={vmlinuz}", f"boot/initrd.gz={initrd}"])

        stage = work / "iso"
        stage.mkdir()
        _make_fat(efi_binary, stage / EFI_IMAGE_NAME)
        make_seed(stage / EFI_IMAGE_NAME, stage / "seed.img")
        iso.parent.mkdir(parents=True, exist_ok=True)
        # The EFI image is kept beside the ISO (build_guest_efi_image); the ISO, renamed last, marks the
        # cache entry complete.
        tmp_efi = iso.parent / f".{EFI_IMAGE_NAME}.{os.getpid()}.tmp"
        tmp_iso = iso.with_name(f".{iso.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(stage / EFI_IMAGE_NAME, tmp_efi)
            os.replace(tmp_efi, iso.parent / EFI_IMAGE_NAME)
            _run(["xorriso", "-as", "mkisofs", "-o", str(tmp_iso), "-V", "WINARM_TESTGUEST", "-r", "-J",
                  "-e", EFI_IMAGE_NAME, "-no-emul-boot", str(stage)])
            os.replace(tmp_iso, iso)
        finally:
            tmp_efi.unlink(missing_ok=True)
            tmp_iso.unlink(missing_ok=True)


def _download(debs_dir: Path, packages: Sequence[_Package], log: Callable[[str], None]) -> list[Path]:
    """Return the .deb of each package in debs_dir, downloading with apt-get the ones not there yet.

    A cached .deb whose SHA256 differs from the apt lists is downloaded again. Raises GuestBuildError
    when apt-get fails or a download does not match.
    """
    debs_dir.mkdir(parents=True, exist_ok=True)
    result = []
    for pkg in packages:
        deb = debs_dir / pkg.deb_name
        if deb.is_file() and _sha256_ok(deb, pkg.sha256):
            result.append(deb)
            continue
        log(f"testguest: apt-get download {pkg.name}:{ARCH}={pkg.version}")
        with tempfile.TemporaryDirectory(prefix=".download-", dir=debs_dir) as tmp:
            _run(["apt-get", "download", "-q", f"{pkg.name}:{ARCH}={pkg.version}"], cwd=Path(tmp))
            got = Path(tmp) / pkg.deb_name
            if not got.is_file():
                raise GuestBuildError(f"apt-get download gave no {pkg.deb_name}")
            if not _sha256_ok(got, pkg.sha256):
                raise GuestBuildError(f"{pkg.deb_name}: SHA256 does not match the apt lists")
            os.replace(got, deb)
        result.append(deb)
    return result


def _sha256_ok(path: Path, expected: str) -> bool:
    """True when PATH hashes to EXPECTED (or when no hash is known)."""
    if not expected:
        return True
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_MIB), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected.lower()


def _render(template: str, values: Mapping[str, str]) -> str:
    """Replace each @NAME@ in TEMPLATE by values[NAME]; raise GuestBuildError on an unknown name."""
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise GuestBuildError(f"unknown placeholder @{name}@ in a testbed template")
        return values[name]
    return re.sub(r"@([A-Z_]+)@", sub, template)


# --------------------------------------------------------------------------------------------------
# Initramfs


def _write_initramfs(root: Path, kver: str, initroot: Path, out: Path) -> None:
    """Write a gzip'd newc cpio to OUT: busybox, GUEST_PROGRAMS and GUEST_LIBRARIES, init.sh as /init,
    GUEST_MODULES and SHARE_MODULES with their dependencies (listed for init.sh in /etc/winarm-modules and
    /etc/winarm-share-modules) and a modules.dep made by depmod. INITROOT is a scratch copy of the tree.

    Raises GuestBuildError when busybox, a program, a library it needs or a module is missing, or depmod
    fails.
    """
    busybox = root / "bin" / "busybox"
    if not busybox.is_file():
        raise GuestBuildError(f"{BUSYBOX} has no /bin/busybox")
    moddir = root / "lib" / "modules" / kver
    wanted, files = _module_closure(moddir, (*GUEST_MODULES, *SHARE_MODULES))
    share_modules = {m.replace("-", "_") for m in SHARE_MODULES}

    dst_moddir = initroot / "lib" / "modules" / kver
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
    _run(["depmod", "-b", str(initroot), kver])

    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "mnt", "tmp", "run"):
        (initroot / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(busybox, initroot / "bin" / "busybox")
    (initroot / "bin" / "busybox").chmod(0o755)
    (initroot / "bin" / "sh").symlink_to("busybox")
    _copy_programs(root, initroot)
    shutil.copyfile(_INIT_SH, initroot / "init")
    (initroot / "init").chmod(0o755)
    (initroot / "etc" / "winarm-modules").write_text("".join(f"{m}\n" for m in wanted if m not in share_modules))
    (initroot / "etc" / "winarm-share-modules").write_text("".join(f"{m}\n" for m in wanted if m in share_modules))

    archive = _Cpio()
    archive.add_tree(initroot)
    archive.add_node("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    out.write_bytes(gzip.compress(archive.finish(), compresslevel=9, mtime=0))


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
        missing = sorted(set(_elf_needed(root / rel)) - have)
        if missing:
            raise GuestBuildError(f"/{rel} needs {', '.join(missing)}: add it to GUEST_LIBRARIES")


def _elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED names (shared libraries) of the ELF64 little-endian file at PATH.

    Raises GuestBuildError when the file is not such an ELF file.
    """
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise GuestBuildError(f"{path.name} is not an ELF64 little-endian file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    needed: list[str] = []
    for _name, sh_type, _flags, _addr, offset, size, link, *_rest in sections:
        if sh_type != 6:  # SHT_DYNAMIC; its sh_link is the string table of the names
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab + value)
                needed.append(data[strtab + value:end].decode())
    return needed


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
        deps = _modinfo(moddir / by_name[name]).get("depends", "")
        todo.extend(norm(d) for d in deps.split(",") if d)
    return wanted, sorted(seen.values())


def _modinfo(path: Path) -> dict[str, str]:
    """Return the key=value pairs of the .modinfo section of the ELF64 little-endian module at PATH.

    Raises GuestBuildError when the file is not such an ELF file.
    """
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise GuestBuildError(f"{path.name} is not an ELF64 little-endian kernel module")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        fields = struct.unpack_from("<IIQQQQ", data, shoff + index * shentsize)
        name, offset, size = fields[0], fields[4], fields[5]
        return name, offset, size

    _, names_off, _ = section(shstrndx)
    info: dict[str, str] = {}
    for index in range(shnum):
        name, offset, size = section(index)
        end = data.index(b"\0", names_off + name)
        if data[names_off + name:end] == b".modinfo":
            for item in data[offset:offset + size].split(b"\0"):
                key, sep, value = item.partition(b"=")
                if sep:
                    info.setdefault(key.decode(errors="replace"), value.decode(errors="replace"))
    return info


class _Cpio:
    """Writer of a "newc" (SVR4, no CRC) cpio archive, as the Linux initramfs expects.

    Owners are root, times are zero, so the same inputs give the same bytes.
    """

    def __init__(self) -> None:
        """Start an empty archive."""
        self._buf = io.BytesIO()
        self._ino = 0

    def add_node(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        """Append one entry NAME (relative, no leading slash) with MODE, contents DATA and device RDEV."""
        self._ino += 1
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._buf.write(header + encoded)
        self._pad()
        self._buf.write(data)
        self._pad()

    def add_tree(self, top: Path) -> None:
        """Append every directory, regular file and symlink under TOP, parents before children."""
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            base = Path(dirpath)
            for name in [*dirnames, *sorted(filenames)]:
                path = base / name
                rel = path.relative_to(top).as_posix()
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    self.add_node(rel, stat.S_IFLNK | 0o777, os.readlink(path).encode())
                elif stat.S_ISDIR(st.st_mode):
                    self.add_node(rel, stat.S_IFDIR | 0o755)
                elif stat.S_ISREG(st.st_mode):
                    perm = 0o755 if st.st_mode & 0o111 else 0o644
                    self.add_node(rel, stat.S_IFREG | perm, path.read_bytes())

    def finish(self) -> bytes:
        """Append the trailer and return the whole archive."""
        self.add_node("TRAILER!!!", 0)
        return self._buf.getvalue()

    def _pad(self) -> None:
        """Pad the archive with zeros to a multiple of four bytes."""
        self._buf.write(b"\0" * (-self._buf.tell() % 4))


# --------------------------------------------------------------------------------------------------
# Images


def _make_fat(efi_binary: Path, out: Path) -> None:
    """Write a FAT image OUT holding EFI_BINARY as /EFI/BOOT/BOOTAA64.EFI (mkfs.fat + mtools).

    The image (about 40 MiB, the kernel is stored uncompressed) is larger than the 32 MiB an El Torito
    entry can count: xorriso then records a load size of 0, which EDK2 (AAVMF) reads as "up to the
    end of the medium". A gzip'd kernel would fit but GRUB takes about 4 s longer to inflate it
    under TCG, at every boot. Raises GuestBuildError when a tool fails.
    """
    size = -(-(efi_binary.stat().st_size + 2 * _MIB) // _MIB) * _MIB
    _run(["mkfs.fat", "-C", "-n", "WINARM-EFI", "-i", _FAT_VOLUME_ID, str(out), str(size // 1024)])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    _run(["mmd", "-i", str(out), "::/EFI", "::/EFI/BOOT"], env=env)
    _run(["mcopy", "-i", str(out), str(efi_binary), "::/EFI/BOOT/BOOTAA64.EFI"], env=env)


def make_seed(fat: Path, out: Path, *, data_mib: int = 0, data_label: str = "WINDOWS") -> None:
    """Write OUT: a GPT disk image whose first partition, an EFI System Partition at 1 MiB, holds the FAT
    image FAT byte for byte.

    With DATA_MIB > 0 a second partition of that many MiB follows (Microsoft basic data, where Windows
    would live), formatted FAT with label DATA_LABEL. OUT then stops after that file system's metadata:
    its free clusters and the backup GPT are left out, so that writing OUT onto a disk of at least
    1 MiB + the ESP + DATA_MIB MiB gives a disk whose primary GPT and both file systems are complete
    (the rest of the data partition is free space; Linux uses the primary GPT and warns about the backup).
    Without DATA_MIB the image is the guest's usual seed (ESP only, backup GPT included).

    Raises GuestBuildError when sfdisk or mkfs.fat fails.
    """
    fat_size = fat.stat().st_size
    start = _MIB // _SECTOR
    sectors = fat_size // _SECTOR
    data_start = start + sectors
    data_sectors = data_mib * _MIB // _SECTOR
    with out.open("wb") as fh:
        fh.truncate(_MIB + fat_size + data_mib * _MIB + _MIB)
    script = (
        "label: gpt\n"
        f"label-id: {_DISK_GUID}\n"
        "unit: sectors\n"
        f"first-lba: {start}\n"
        f'start={start}, size={sectors}, type={_ESP_TYPE}, uuid={_PART_GUID}, name="EFI system partition"\n'
    )
    if data_mib > 0:
        script += (f"start={data_start}, size={data_sectors}, type={_BASIC_DATA_TYPE}, uuid={_DATA_PART_GUID}, "
                   f'name="Basic data partition"\n')
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(out)], stdin=script)
    with fat.open("rb") as src, out.open("r+b") as dst:
        dst.seek(start * _SECTOR)
        shutil.copyfileobj(src, dst, _MIB)
    if data_mib <= 0:
        return
    with tempfile.TemporaryDirectory(prefix=".seed-", dir=out.parent) as tmp:
        data = Path(tmp) / "data.img"
        _run(["mkfs.fat", "-C", "-n", data_label, "-i", _DATA_VOLUME_ID, str(data),
              str(data_mib * 1024)])
        used = _used_prefix(data)
        with data.open("rb") as src, out.open("r+b") as dst:
            dst.seek(data_start * _SECTOR)
            shutil.copyfileobj(src, dst, _MIB)
            dst.truncate(data_start * _SECTOR + used)


def _used_prefix(path: Path) -> int:
    """Length of PATH up to its last non-zero byte, rounded up to a whole MiB (at least one MiB)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        end = 0
        offset = 0
        for chunk in iter(lambda: fh.read(_MIB), b""):
            if chunk.strip(b"\0"):
                end = offset + len(chunk)
            offset += len(chunk)
    return min(size, max(end, _MIB))


# --------------------------------------------------------------------------------------------------
# Small helpers


def _write_atomic(path: Path, data: bytes) -> None:
    """Write DATA to PATH through a temp file in the same directory and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on PATH (created if needed) for the duration of the block."""
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
