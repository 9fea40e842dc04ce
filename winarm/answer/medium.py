"""The answer medium: a small ISO beside the user's untouched Windows ISO, holding what Setup needs from us.

Layout (Joliet and UDF carry the real names; ISO9660 names are generated, since ``$`` is not allowed there):
```
/Autounattend.xml                      the answer file (found by Setup at the root of removable media)
/winarm.marker                         lets the driver script find its own drive letter
/winarm/report.vbs                     the report script (specialize copies it to the disk), always there
/winarm/extend-c.cmd, extend-c.txt     the script that extends C: over a grown disk, and its diskpart script
/winarm/map-shares.cmd                 with shares: the script that stores the share login and maps the shares
/winarm/share-login.txt                with a share login: "USER PASSWORD", read by that script at the first logon
/$WinPEDriver$/<driver>/...            the boot-critical storage driver (with windowsPE every picked driver
                                       but the display driver, which never goes here)
/winarm/install-drivers.cmd            the script the specialize (or first-logon) command runs
/winarm/drivers.txt                    the install order: "<folder> <inf>" per line
/winarm/drivers/<folder>/...           the other drivers
/winarm/product-key.cmd                the first-logon script that installs the product key (with a key only)
/winarm/product-key.txt                the key itself, read by that script: in no command line of the answer file
```
Which drivers are on it (only those of devices the VM attaches) and the signature check that may refuse
them are decided before, by :func:`winarm.media.drivers.pick_drivers`. The medium is built once per set of
inputs (cached by their hash), written under a temporary name and renamed, and kept at mode 0600: it holds
the (obfuscated, not encrypted) password, the product key and the share login.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from winarm.answer.logon_scripts import logon_files
from winarm.answer.render import render, render_driver_script, render_product_key_script, render_report_script
from winarm.answer.settings import AnswerSettings
from winarm.config.paths import ANSWER_PREFIX as PREFIX
from winarm.config.paths import remove_answer_media
from winarm.guest import MEDIUM_MARKER, MEDIUM_PRODUCT_KEY_FILE, MEDIUM_PRODUCT_KEY_SCRIPT, MEDIUM_REPORT_SCRIPT
from winarm.media.drivers import DriverSelection, PickedDriver

WINPE_DRIVERS = "$WinPEDriver$"


@dataclass(frozen=True)
class MediumFile:
    """One file of the medium: its path on the medium (``/``-separated, no leading slash) and its content."""

    path: str
    data: bytes | None = None
    source: Path | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.source is not None
        return self.source.read_bytes()


def driver_folder(picked: PickedDriver) -> str:
    """The folder name a driver gets on the medium: its catalog order and name, so listings sort by order."""
    return f"{picked.driver.order:02d}-{picked.driver.folder}"


def product_key_files(settings: AnswerSettings) -> list[MediumFile]:
    """The product-key script and the key's file, when the user gave a key (nothing otherwise). The key travels
    as a file so that it is in no command line of the answer file (Setup keeps a copy of that in
    ``C:\\Windows\\Panther``). Raises what :func:`render_product_key_script` raises."""
    if settings.product_key is None:
        return []
    return [
        MediumFile(MEDIUM_PRODUCT_KEY_SCRIPT.replace("\\", "/"), render_product_key_script().encode("ascii")),
        MediumFile(MEDIUM_PRODUCT_KEY_FILE.replace("\\", "/"), settings.product_key.encode("ascii") + b"\r\n"),
    ]


def medium_files(settings: AnswerSettings, selection: DriverSelection) -> list[MediumFile]:
    """Everything the medium holds, answer file rendered and validated (raises what :func:`render` raises)."""
    files = [
        MediumFile("Autounattend.xml", render(settings).encode("ascii")),
        MediumFile(MEDIUM_MARKER, b"winarm answer medium\r\n"),
        MediumFile(MEDIUM_REPORT_SCRIPT.replace("\\", "/"), render_report_script().encode("ascii")),
        *product_key_files(settings),
    ]
    files += logon_medium_files(settings)
    for picked in selection.boot_critical:
        files += [MediumFile(f"{WINPE_DRIVERS}/{picked.driver.folder}/{f.name}", source=f) for f in picked.files]
    if selection.others:
        folders = [driver_folder(p) for p in selection.others]
        files.append(MediumFile("winarm/install-drivers.cmd", render_driver_script(folders).encode("ascii")))
        manifest = "".join(f"{folder} {p.driver.inf}\n" for folder, p in zip(folders, selection.others, strict=True))
        files.append(MediumFile("winarm/drivers.txt", manifest.encode("ascii")))
        for folder, picked in zip(folders, selection.others, strict=True):
            files += [MediumFile(f"winarm/drivers/{folder}/{f.name}", source=f) for f in picked.files]
    return files


def logon_medium_files(settings: AnswerSettings) -> list[MediumFile]:
    """The logon scripts and, with a share login, the login file (see :mod:`winarm.answer.logon_scripts`)."""
    return [MediumFile(path.replace("\\", "/"), data) for path, data in logon_files(settings)]


def inputs_key(files: list[MediumFile]) -> str:
    """A hash of the medium's names and contents: the same inputs give the same medium."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.path):
        content = item.read()
        digest.update(item.path.encode() + b"\0" + len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()[:20]


def _iso_names() -> Iterator[str]:
    counter = 0
    while True:
        counter += 1
        yield f"W{counter:06d}"


def write_iso(files: list[MediumFile], out: Path) -> None:
    """Write ``files`` as an ISO9660 (level 3) + Joliet + UDF image at ``out``, atomically, mode 0600."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, udf="2.60", vol_ident="WINARM_ANSWER")
    names = _iso_names()
    made: dict[str, str] = {"": ""}  # medium directory -> ISO9660 directory

    def ensure_dir(directory: str) -> str:
        if directory in made:
            return made[directory]
        parent, _, _ = directory.rpartition("/")
        iso_parent = ensure_dir(parent)
        iso_dir = f"{iso_parent}/{next(names)}"
        iso.add_directory(iso_dir, joliet_path=f"/{directory}", udf_path=f"/{directory}")
        made[directory] = iso_dir
        return iso_dir

    for item in files:
        directory, _, name = item.path.rpartition("/")
        iso_dir = ensure_dir(directory)
        content = item.read()
        iso_name = "AUTOUNAT.XML;1" if item.path == "Autounattend.xml" else f"{next(names)}.;1"
        iso.add_fp(io.BytesIO(content), len(content), f"{iso_dir}/{iso_name}",
                   joliet_path=f"/{item.path}", udf_path=f"/{item.path}")
    partial = out.with_name(out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            iso.write_fp(handle)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        iso.close()


def build_answer_medium(directory: Path, settings: AnswerSettings, selection: DriverSelection) -> tuple[Path, bool]:
    """The answer medium for these inputs in ``directory``: ``(path, built)``, ``built`` False on a cache hit.

    Older media in ``directory`` are deleted (they hold a password too).
    """
    files = medium_files(settings, selection)
    target = directory / f"{PREFIX}{inputs_key(files)}.iso"
    built = False
    if not target.exists():
        write_iso(files, target)
        built = True
    remove_answer_media(directory, keep=target)
    return target, built
