"""The guest's disk images, written without root or loop devices: the FAT image that holds GRUB (its EFI
System Partition and the El Torito image of its ISO) made with mkfs.fat and mtools, and the GPT "seed" disk
the guest copies onto its virtio disk, partitioned with sfdisk on a plain file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from winarm_testbed.tools import run

__all__ = ["make_fat", "make_seed"]

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


def make_fat(efi_binary: Path, out: Path) -> None:
    """Write a FAT image OUT holding EFI_BINARY as /EFI/BOOT/BOOTAA64.EFI (mkfs.fat + mtools).

    The image (about 40 MiB, the kernel is stored uncompressed) is larger than the 32 MiB an El Torito
    entry can count: xorriso then records a load size of 0, which EDK2 (AAVMF) reads as "up to the
    end of the medium". A gzip'd kernel would fit but GRUB takes about 4 s longer to inflate it
    under TCG, at every boot. Raises GuestBuildError when a tool fails.
    """
    size = -(-(efi_binary.stat().st_size + 2 * _MIB) // _MIB) * _MIB
    run(["mkfs.fat", "-C", "-n", "WINARM-EFI", "-i", _FAT_VOLUME_ID, str(out), str(size // 1024)])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    run(["mmd", "-i", str(out), "::/EFI", "::/EFI/BOOT"], env=env)
    run(["mcopy", "-i", str(out), str(efi_binary), "::/EFI/BOOT/BOOTAA64.EFI"], env=env)


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
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(out)], stdin=script)
    with fat.open("rb") as src, out.open("r+b") as dst:
        dst.seek(start * _SECTOR)
        shutil.copyfileobj(src, dst, _MIB)
    if data_mib <= 0:
        return
    with tempfile.TemporaryDirectory(prefix=".seed-", dir=out.parent) as tmp:
        data = Path(tmp) / "data.img"
        run(["mkfs.fat", "-C", "-n", data_label, "-i", _DATA_VOLUME_ID, str(data),
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
