"""The driver catalog, picking drivers from a virtio-win tree, and the answer medium read back by other tools.

The virtio-win drivers cannot be downloaded here: the tree is a stand-in with the real layout and names
(winarm_testbed.virtio_tree), which is all winarm reads of it.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest

from winarm.answer.medium import build_answer_medium, medium_files
from winarm.answer.render import render_report_script
from winarm.answer.settings import AnswerSettings, decode_password
from winarm.answer.validate import validate
from winarm.errors import UserError
from winarm.guest import REPORT_URL
from winarm.media.drivers import DriverRequest, DriverSelection, load_catalog, pick_drivers, storage_driver_for
from winarm_testbed.virtio_tree import make_fake_virtio_tree

EVERY_DEVICE = frozenset(device for driver in load_catalog() for device in driver.devices)
"""Every device the catalog knows, as if the VM attached them all: these tests are about where drivers go."""


def pick(tree: Path, disk_bus: str = "virtio-blk", drivers_pass: str = "specialize") -> DriverSelection:
    """The placeholder drivers (unsigned) picked with Secure Boot off, every device attached."""
    return pick_drivers(tree, DriverRequest("11", disk_bus, drivers_pass, EVERY_DEVICE, secure_boot=False))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_fake_virtio_tree(tmp_path / "virtio-win")


def test_catalog_knows_the_storage_driver_of_each_bus() -> None:
    catalog = load_catalog()
    assert storage_driver_for("virtio-blk", catalog).name == "viostor"  # type: ignore[union-attr]
    assert storage_driver_for("virtio-scsi", catalog).name == "vioscsi"  # type: ignore[union-attr]
    assert storage_driver_for("nvme", catalog) is None
    assert catalog[-1].name == "viogpudo", "the display driver is installed last"


def test_only_the_storage_driver_goes_to_winpe(tree: Path) -> None:
    selection = pick(tree, "virtio-blk", "specialize")
    assert [p.driver.name for p in selection.boot_critical] == ["viostor"]
    others = [p.driver.name for p in selection.others]
    assert "vioscsi" not in others and "viostor" not in others
    assert others[0] == "NetKVM" and others[-1] == "viogpudo"
    assert selection.missing == [] and [item.name for item in selection.left_out] == ["vioscsi"]


def test_windowspe_pass_puts_every_driver_in_winpe(tree: Path) -> None:
    selection = pick(tree, "virtio-scsi", "windowsPE")
    assert selection.others == []
    assert [p.driver.name for p in selection.boot_critical][0] == "vioscsi"


def test_missing_drivers_are_named_and_a_missing_storage_driver_is_an_error(tmp_path: Path) -> None:
    tree = make_fake_virtio_tree(tmp_path / "t", skip=("Balloon", "viorng"))
    selection = pick(tree, "virtio-blk", "specialize")
    assert selection.missing == ["Balloon", "viorng"]
    assert {item.name: item.reason for item in selection.left_out}["viorng"] == "not in the driver tree"
    shutil.rmtree(tree / "viostor")
    with pytest.raises(UserError, match="has no viostor for Windows 11 ARM64"):
        pick(tree, "virtio-blk", "specialize")


def test_windows11_falls_back_to_the_w10_build(tmp_path: Path) -> None:
    tree = make_fake_virtio_tree(tmp_path / "t", windows=("10",))
    selection = pick(tree, "virtio-blk", "specialize")
    assert selection.boot_critical[0].source.parts[-2:] == ("w10", "ARM64")


def read_joliet(iso_path: Path) -> dict[str, bytes]:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    files: dict[str, bytes] = {}
    try:
        for parent, _dirs, names in iso.walk(joliet_path="/"):
            for name in names:
                path = f"{parent.rstrip('/')}/{name}"
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, joliet_path=path)
                files[path.lstrip("/")] = out.getvalue()
    finally:
        iso.close()
    return files


def test_answer_medium_layout_read_back(tmp_path: Path, tree: Path) -> None:
    settings = AnswerSettings(username="Alice", password="p<&>w", drivers_pass="specialize")
    selection = pick(tree, "virtio-blk", "specialize")
    medium, built = build_answer_medium(tmp_path, settings, selection)
    assert built and oct(medium.stat().st_mode & 0o777) == "0o600"
    files = read_joliet(medium)
    assert validate(files["Autounattend.xml"]) == []
    assert "p<&>w" not in files["Autounattend.xml"].decode()
    assert any(name.startswith("$WinPEDriver$/viostor/") and name.endswith("viostor.inf") for name in files)
    assert not any(name.startswith("$WinPEDriver$/NetKVM") for name in files)
    manifest = files["winarm/drivers.txt"].decode().splitlines()
    assert manifest[0] == "20-NetKVM netkvm.inf" and manifest[-1].endswith("viogpudo.inf")
    for line in manifest:
        folder, inf = line.split()
        assert f"winarm/drivers/{folder}/{inf}" in files
    assert "winarm.marker" in files and "winarm/install-drivers.cmd" in files
    script = files["winarm/report.vbs"]
    assert script == render_report_script().encode("ascii") and b"\r\n" in script
    assert re.findall(rb'"(http://[^"]*)"', script) == [REPORT_URL.encode()]
    assert b"COM1" not in b"".join(files.values())
    encoded = re.search(rb"<Password>\s*<Value>([^<]+)</Value>", files["Autounattend.xml"])
    assert encoded is not None and decode_password(encoded.group(1).decode()) == "p<&>w"


def test_the_same_inputs_build_nothing_and_older_media_are_deleted(tmp_path: Path, tree: Path) -> None:
    selection = pick(tree, "virtio-blk", "specialize")
    first, built = build_answer_medium(tmp_path, AnswerSettings(), selection)
    again, built_again = build_answer_medium(tmp_path, AnswerSettings(), selection)
    assert built and not built_again and first == again
    other, _ = build_answer_medium(tmp_path, AnswerSettings(username="Bob"), selection)
    assert other != first and not first.exists() and other.exists()


@pytest.mark.skipif(shutil.which("7z") is None, reason="7z (Debian p7zip-full) is not installed: make deps installs it")
def test_7z_reads_the_real_names(tmp_path: Path, tree: Path) -> None:
    selection = pick(tree, "virtio-blk", "specialize")
    medium, _ = build_answer_medium(tmp_path, AnswerSettings(), selection)
    listing = subprocess.run(["7z", "l", str(medium)], capture_output=True, text=True, check=True).stdout
    assert "Autounattend.xml" in listing and "$WinPEDriver$" in listing and "install-drivers.cmd" in listing


def test_firstlogon_and_windowspe_media(tmp_path: Path, tree: Path) -> None:
    winpe = pick(tree, "virtio-blk", "windowsPE")
    names = [f.path for f in medium_files(AnswerSettings(drivers_pass="windowsPE", has_drivers=False), winpe)]
    assert not any(n.startswith("winarm/drivers/") for n in names)
    assert any(n.startswith("$WinPEDriver$/NetKVM/") for n in names)
    assert "winarm/report.vbs" in names, "the report script is on every medium, with or without driver script"
    assert "winarm/install-drivers.cmd" not in names
