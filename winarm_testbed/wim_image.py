"""Windows-shaped install ISOs for tests, built with pycdlib: no Windows media needed.

:func:`build_bridge_iso` writes what Microsoft's media look like to :func:`winarm.media.iso.inspect_iso` and to
firmware: a "UDF bridge" whose ISO 9660 tree holds only ``README.TXT`` while the UDF tree holds
``efi/boot/bootaa64.efi`` (``bootx64.efi`` for x64), ``boot/``, ``sources/install.wim`` (a real WIM header
and XML metadata from :func:`winarm_testbed.wim_writer.write_wim`) and any extra files; optionally an El Torito EFI boot
entry pointing at a FAT image. The WIM's padding is a hole in a temporary file and the ISO is written
sparsely, so a 5 GiB install image costs neither memory nor disk.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypedDict, Unpack

from winarm_testbed.wim_writer import write_wim

__all__ = ["DEFAULT_EDITIONS", "BridgeIso", "IsoOptions", "build_bridge_iso"]

DEFAULT_EDITIONS = ("Windows 11 Home", "Windows 11 Pro")
README = (
    b"This disc contains a UDF file system. Read it with an operating system or tool that supports UDF;\r\n"
    b"the ISO 9660 tree holds only this file. (winarm test media)\r\n"
)
LOADERS = {"arm64": "bootaa64.efi", "x64": "bootx64.efi", "x86": "bootia32.efi", "arm": "bootarm.efi"}
PLACEHOLDER = b"MZ winarm test media: a placeholder, not a real EFI loader\n"
EL_TORITO_IMAGE = "/EFIBOOT.IMG;1"
EL_TORITO_MAX_SECTORS = 0xFFFF
"""El Torito counts the boot image in 16-bit 512-byte sectors; a larger image is recorded with load size 0,
as xorriso does, which EDK2 reads as "to the end of the medium" (the FAT file system knows its own size)."""
Layout = Literal["bridge", "joliet", "iso9660"]


class _SparseFile(io.FileIO):
    """A file that turns runs of zeros into holes: pycdlib writes every byte of a padded image."""

    _zeros: dict[int, bytes] = {}  # zero buffers by length, shared by all instances on purpose

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        size = len(data)
        if size >= 4096:
            zeros = self._zeros.get(size)
            if zeros is None:
                zeros = self._zeros.setdefault(size, bytes(size))
            if data == zeros:
                self.seek(size, os.SEEK_CUR)
                return size
        return super().write(data)


def _iso9660_name(name: str, is_dir: bool) -> str:
    """A level-3 ISO 9660 name: upper case, ``[A-Z0-9_]`` only, ``;1`` on files."""
    stem, dot, ext = name.upper().rpartition(".") if not is_dir and "." in name else (name.upper(), "", "")
    clean = re.sub(r"[^A-Z0-9_]", "_", stem)[:30] or "_"
    if is_dir:
        return clean
    return f"{clean}.{re.sub(r'[^A-Z0-9_]', '_', ext)[:30]};1" if dot else f"{clean}.;1"


class IsoOptions(TypedDict, total=False):
    """The keywords of :func:`build_bridge_iso`; see :class:`BridgeIso` for their meaning and defaults."""

    editions: Sequence[str]
    build: str
    arch: str
    wim_padding: int
    wim_size: int | None
    image_bytes: int | Sequence[int]
    extra_files: Mapping[str, bytes | Path] | None
    efi_boot_image: Path | None
    install_image: str | None
    layout: Layout
    volume_id: str
    readme: bytes
    hide_boot_image: bool


@dataclass(frozen=True)
class BridgeIso:
    """What goes on a Windows-shaped ISO.

    ``editions``, ``build``, ``arch``, ``wim_padding``, ``wim_size`` (the image file's exact size, filled) and
    ``image_bytes`` (each edition's TOTALBYTES) go to :func:`winarm_testbed.wim_writer.write_wim` for the install
    image at ``install_image`` (None: no install image at all). ``extra_files`` maps relative paths
    (any case, ``/``-separated) to contents or to a file to copy; they replace default files at the same path
    (the boot loader, the install image). ``efi_boot_image`` is a FAT image made the El Torito boot entry
    (platform EFI, no emulation; any size). With ``hide_boot_image`` (bridge layout), the boot image and catalog
    leave the ISO 9660 tree, as on Microsoft's media, and the image is linked as ``efi/microsoft/boot/efisys.bin``
    in UDF. ``layout`` ``bridge`` is the Windows layout; ``joliet`` and ``iso9660`` put every file in an ISO 9660
    tree (with Joliet names or without) and have no UDF. Raises :class:`ValueError` for an unknown ``arch`` or
    ``hide_boot_image`` without the bridge layout.
    """

    editions: Sequence[str] = DEFAULT_EDITIONS
    build: str = "26100"
    arch: str = "arm64"
    wim_padding: int = 0
    wim_size: int | None = None
    image_bytes: int | Sequence[int] = 0
    extra_files: Mapping[str, bytes | Path] | None = None
    efi_boot_image: Path | None = None
    install_image: str | None = "sources/install.wim"
    layout: Layout = "bridge"
    volume_id: str = "WINARM_TEST"
    readme: bytes = README
    hide_boot_image: bool = False

    def __post_init__(self) -> None:
        """Check ``arch`` and ``hide_boot_image`` (see the class)."""
        if self.arch not in LOADERS and not self.arch.isdigit():
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(LOADERS)} or a number")
        if self.hide_boot_image and self.layout != "bridge":
            raise ValueError("hide_boot_image needs the bridge layout (the image stays reachable through UDF)")

    def files(self) -> dict[str, bytes | Path]:
        """The files of the ISO but the install image, by relative path: the boot loader, ``boot/bcd`` and
        ``extra_files``."""
        files: dict[str, bytes | Path] = {}
        loader = LOADERS.get(self.arch)
        if loader is not None:
            files[f"efi/boot/{loader}"] = PLACEHOLDER
        files["boot/bcd"] = b"winarm test media: placeholder boot configuration\n"
        for name, content in (self.extra_files or {}).items():
            files[name.strip("/")] = content
        return files


def build_bridge_iso(out: Path, **options: Unpack[IsoOptions]) -> Path:
    """Write a Windows-shaped install ISO described by ``options`` (see :class:`BridgeIso`) to ``out`` atomically
    (written in a scratch folder beside it, then renamed); return ``out``.

    Raises :class:`ValueError` for bad options and :class:`OSError` from the file system.
    """
    import pycdlib

    spec = BridgeIso(**options)
    files = spec.files()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="winarm-wim-", dir=out.parent)))
        if spec.install_image is not None and spec.install_image.strip("/") not in files:
            wim = scratch / "install.wim"
            write_wim(wim, spec.editions, build=spec.build, arch=spec.arch, padding=spec.wim_padding,
                      size=spec.wim_size, image_bytes=spec.image_bytes)
            files[spec.install_image.strip("/")] = wim
        iso = pycdlib.PyCdlib()
        if spec.layout == "bridge":
            iso.new(interchange_level=3, vol_ident=spec.volume_id, udf="2.60")
            iso.add_fp(io.BytesIO(spec.readme), len(spec.readme), iso_path="/README.TXT;1")
        else:
            iso.new(interchange_level=3, vol_ident=spec.volume_id, joliet=3 if spec.layout == "joliet" else None)
        made = _add_files(iso, files, spec.layout, stack)
        if spec.efi_boot_image is not None:
            _add_boot_image(iso, spec, made, stack.enter_context(spec.efi_boot_image.open("rb")))
        built = scratch / out.name
        _write_sparse(iso, built)
        os.replace(built, out)
    return out


def _add_files(iso: Any, files: Mapping[str, bytes | Path], layout: Layout, stack: contextlib.ExitStack) -> set[str]:
    """Add FILES (and their folders) to the new pycdlib ISO in LAYOUT; files to copy are opened on STACK.
    Return the folders made, in lower case."""
    made: set[str] = set()
    for name in sorted(files):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory.lower() in made:
                continue
            made.add(directory.lower())
            iso.add_directory(**_paths(directory, layout, is_dir=True))
        content = files[name]
        fp: BinaryIO
        if isinstance(content, Path):
            fp = stack.enter_context(content.open("rb"))
            length = content.stat().st_size
        else:
            fp = io.BytesIO(content)
            length = len(content)
        iso.add_fp(fp, length, **_paths(name, layout, is_dir=False))
    return made


def _add_boot_image(iso: Any, spec: BridgeIso, made: set[str], image_fp: BinaryIO) -> None:
    """Add spec.efi_boot_image (open as IMAGE_FP) as the El Torito EFI entry; with spec.hide_boot_image, move it
    and the boot catalog out of the ISO 9660 tree into UDF's ``efi/microsoft/boot/efisys.bin`` (MADE: the
    folders already there)."""
    assert spec.efi_boot_image is not None
    size = spec.efi_boot_image.stat().st_size
    if spec.layout == "joliet":
        iso.add_fp(image_fp, size, iso_path=EL_TORITO_IMAGE, joliet_path="/efiboot.img")
    else:
        iso.add_fp(image_fp, size, iso_path=EL_TORITO_IMAGE)
    sectors = -(-size // 512)
    iso.add_eltorito(EL_TORITO_IMAGE, bootcatfile="/BOOT.CAT;1", platform_id=0xEF, media_name="noemul",
                     boot_load_size=sectors if sectors <= EL_TORITO_MAX_SECTORS else 0)
    if spec.hide_boot_image:
        for directory in ("efi", "efi/microsoft", "efi/microsoft/boot"):
            if directory not in made:
                made.add(directory)
                iso.add_directory(udf_path=f"/{directory}")
        iso.add_hard_link(iso_old_path=EL_TORITO_IMAGE, udf_new_path="/efi/microsoft/boot/efisys.bin")
        iso.rm_hard_link(iso_path=EL_TORITO_IMAGE)
        iso.rm_hard_link(iso_path="/BOOT.CAT;1")


def _write_sparse(iso: Any, path: Path) -> None:
    """Write the pycdlib ISO to PATH with runs of zeros as holes, at its full size, and close the ISO."""
    with _SparseFile(path, "wb") as handle:
        iso.write_fp(handle, blocksize=1024 * 1024)
        expected = iso.pvd.space_size * iso.logical_block_size
        if handle.seek(0, os.SEEK_END) < expected:
            handle.truncate(expected)
    iso.close()


def _paths(name: str, layout: str, *, is_dir: bool) -> dict[str, Any]:
    """pycdlib's path keywords for ``name`` in ``layout``: the UDF path for a bridge, else ISO 9660 (+ Joliet)."""
    if layout == "bridge":
        return {"udf_path": "/" + name}
    iso_path = "/" + "/".join(
        _iso9660_name(part, is_dir or depth < name.count("/")) for depth, part in enumerate(name.split("/"))
    )
    paths: dict[str, Any] = {"iso_path": iso_path}
    if layout == "joliet":
        paths["joliet_path"] = "/" + name
    return paths
