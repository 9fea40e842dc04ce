"""The two things the guest build reads from ELF64 little-endian files: the shared libraries a program needs
(DT_NEEDED) and the ``.modinfo`` of a kernel module (its ``depends=``)."""

from __future__ import annotations

import struct
from pathlib import Path

from winarm_testbed.tools import GuestBuildError

__all__ = ["elf_needed", "modinfo"]

_SHT_DYNAMIC = 6
_DT_NULL = 0
_DT_NEEDED = 1


def _elf64(path: Path, what: str) -> bytes:
    """The bytes of PATH; raises GuestBuildError (naming WHAT was expected) unless it is ELF64 little-endian."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise GuestBuildError(f"{path.name} is not an ELF64 little-endian {what}")
    return data


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED names (shared libraries) of the ELF64 little-endian file at PATH.

    Raises GuestBuildError when the file is not such an ELF file.
    """
    data = _elf64(path, "file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    needed: list[str] = []
    for _name, sh_type, _flags, _addr, offset, size, link, *_rest in sections:
        if sh_type != _SHT_DYNAMIC:  # its sh_link is the string table of the names
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == _DT_NULL:
                break
            if tag == _DT_NEEDED:
                end = data.index(b"\0", strtab + value)
                needed.append(data[strtab + value:end].decode())
    return needed


def modinfo(path: Path) -> dict[str, str]:
    """Return the key=value pairs of the .modinfo section of the ELF64 little-endian module at PATH.

    Raises GuestBuildError when the file is not such an ELF file.
    """
    data = _elf64(path, "kernel module")
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
