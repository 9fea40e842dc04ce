"""Which drivers an install gets (issue 13, item 15): only those whose device the VM attaches, never the display
driver in ``$WinPEDriver$``, and a driver missing from an older virtio-win said to be missing for that reason.

The drivers are placeholders (winarm_testbed.virtio_tree): real virtio-win cannot be had here. The devices are
the ones winarm's own QEMU command line attaches (read from ``build_argv``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pycdlib
import pytest
from click.testing import CliRunner

from tests.unit.media.catalogs import always, issue, signed_catalog
from winarm.answer.medium import WINPE_DRIVERS, medium_files
from winarm.answer.plan import attached_devices
from winarm.answer.settings import AnswerSettings
from winarm.cli.main import main
from winarm.config import host
from winarm.config.vm import Config, load_config
from winarm.config.windows import DRIVERS_PASSES
from winarm.media.drivers import DriverRequest, load_catalog, pick_drivers, tree_version
from winarm_testbed.virtio_tree import make_fake_virtio_tree

CATALOG = load_catalog()
EVERY_DEVICE = frozenset(device for driver in CATALOG for device in driver.devices)


def config(tmp_path: Path, **flags: Any) -> Config:
    return load_config({"name": "d", "storage": str(tmp_path / "s"), "disk_size": "64M", **flags}, {}, host.probe())


@pytest.mark.parametrize(("bus", "storage_device"), [("virtio-blk", "virtio-blk-pci"),
                                                     ("virtio-scsi", "virtio-scsi-pci"), ("nvme", "nvme")])
def test_the_devices_are_those_of_the_vms_own_command_line(tmp_path: Path, bus: str, storage_device: str) -> None:
    devices = attached_devices(config(tmp_path, disk_bus=bus))
    assert {storage_device, "virtio-net-pci", "ramfb", "usb-kbd", "usb-tablet"} <= devices
    catalog_devices = devices & EVERY_DEVICE
    assert catalog_devices == ({storage_device} & EVERY_DEVICE) | {"virtio-net-pci"}, (
        "winarm attaches no balloon, rng, serial, virtio input, pvpanic, memory, fs or gpu device")


def test_only_the_drivers_of_attached_devices_are_installed_and_the_rest_are_named(tmp_path: Path) -> None:
    tree = make_fake_virtio_tree(tmp_path / "virtio-win")
    devices = attached_devices(config(tmp_path))
    selection = pick_drivers(tree, DriverRequest("11", "virtio-blk", "specialize", devices, secure_boot=False))
    assert [p.driver.name for p in selection.boot_critical] == ["viostor"]
    assert [p.driver.name for p in selection.others] == ["NetKVM"]
    reasons = {item.name: item.reason for item in selection.left_out}
    assert set(reasons) == {d.name for d in CATALOG} - {"viostor", "NetKVM"}
    assert reasons["Balloon"] == "no virtio-balloon-pci attached to this VM"
    assert reasons["vioinput"].startswith("no virtio-keyboard-pci or virtio-mouse-pci or virtio-tablet-pci")
    assert reasons["vioscsi"] == "the storage driver of a virtio-scsi disk (this VM's disk is virtio-blk)"
    assert selection.missing == []
    names = [f.path for f in medium_files(AnswerSettings(), selection)]
    assert not any(n.startswith(("winarm/drivers/40-Balloon", "winarm/drivers/99-viogpudo")) for n in names)
    assert selection.lines("specialize")[:2] == [
        "driver viostor: windowsPE ($WinPEDriver$), viostor.cat is not a readable PKCS#7 signature (Unable to parse "
        "PKCS7 data)",
        "driver NetKVM: specialize, netkvm.cat is not a readable PKCS#7 signature (Unable to parse PKCS7 data)"]
    assert "driver Balloon left out: no virtio-balloon-pci attached to this VM" in selection.lines("specialize")


def test_a_windows_10_install_leaves_out_the_windows_11_only_driver(tmp_path: Path) -> None:
    tree = make_fake_virtio_tree(tmp_path / "virtio-win")
    selection = pick_drivers(tree, DriverRequest("10", "virtio-blk", "specialize", EVERY_DEVICE, secure_boot=False))
    assert {item.name: item.reason for item in selection.left_out}["viomem"] == "no Windows 10 build in the catalog"


@pytest.mark.parametrize("drivers_pass", DRIVERS_PASSES)
def test_the_display_driver_never_goes_into_winpedriver(tmp_path: Path, drivers_pass: str) -> None:
    """Even with a virtio-gpu attached (winarm attaches ramfb): every drivers pass, the medium read back."""
    tree = make_fake_virtio_tree(tmp_path / "virtio-win")
    selection = pick_drivers(tree, DriverRequest("11", "virtio-scsi", drivers_pass, EVERY_DEVICE, secure_boot=False))
    assert "viogpudo" not in [p.driver.name for p in selection.boot_critical]
    settings = AnswerSettings(drivers_pass=drivers_pass, has_drivers=bool(selection.others))
    winpe = {f.path.split("/")[1] for f in medium_files(settings, selection) if f.path.startswith(WINPE_DRIVERS)}
    assert "viogpudo" not in winpe and "vioscsi" in winpe
    if drivers_pass == "windowsPE":
        assert winpe == {d.folder for d in CATALOG} - {"viostor", "viogpudo"}
        reason = {item.name: item.reason for item in selection.left_out}["viogpudo"]
        assert reason.startswith("never from $WinPEDriver$") and "--drivers-pass specialize or firstlogon" in reason
    else:
        assert [p.driver.name for p in selection.others][-1] == "viogpudo"


def test_the_catalog_marks_viofs_arm64_from_0_1_285_and_viogpudo_out_of_winpe() -> None:
    by_name = {d.name: d for d in CATALOG}
    assert by_name["viofs"].arm64_since == "0.1.285"
    assert [d.name for d in CATALOG if not d.winpe] == ["viogpudo"]
    assert all(d.arm64_since is None for d in CATALOG if d.name != "viofs")


def test_an_older_virtio_win_says_why_viofs_is_missing(tmp_path: Path) -> None:
    old = make_fake_virtio_tree(tmp_path / "virtio-win-0.1.266", version="0.1.266")
    assert not (old / "viofs").exists() and (old / "viostor").is_dir()
    version = tree_version(old)
    assert version == "0.1.266"
    request = DriverRequest("11", "virtio-blk", "specialize", EVERY_DEVICE, secure_boot=False, version=version)
    selection = pick_drivers(old, request)
    reasons = {item.name: item.reason for item in selection.left_out}
    too_old = "virtio-win 0.1.266 has no ARM64 build of it (ARM64 from 0.1.285 on)"
    assert reasons["viofs"] == f"not in the driver tree; {too_old}"
    assert selection.missing == ["viofs"]
    unattached = pick_drivers(old, DriverRequest("11", "virtio-blk", "specialize", {"virtio-blk-pci"},
                                                 secure_boot=False, version=version))
    unattached_reasons = {i.name: i.reason for i in unattached.left_out}
    assert unattached_reasons["viofs"] == f"no vhost-user-fs-pci attached to this VM; {too_old}"
    new = make_fake_virtio_tree(tmp_path / "virtio-win-0.1.285", version="0.1.285")
    request = DriverRequest("11", "virtio-blk", "specialize", EVERY_DEVICE, secure_boot=False, version="0.1.285")
    assert "viofs" in [p.driver.name for p in pick_drivers(new, request).others]
    unknown = pick_drivers(old, DriverRequest("11", "virtio-blk", "specialize", EVERY_DEVICE, secure_boot=False))
    assert {i.name: i.reason for i in unknown.left_out}["viofs"] == "not in the driver tree", "no release, no claim"


def test_the_release_comes_from_the_name_or_the_iso_label(tmp_path: Path) -> None:
    assert tree_version(tmp_path / "virtio-win-0.1.285.iso") == "0.1.285"
    assert tree_version(tmp_path / "virtio-win") is None
    labelled = tmp_path / "drivers.iso"
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="virtio-win-0.1.266")
    iso.add_directory("/VIOSTOR")
    iso.write(str(labelled))
    iso.close()
    assert tree_version(labelled) == "0.1.266"
    garbage = tmp_path / "random.iso"
    garbage.write_bytes(b"not an iso" * 100)
    assert tree_version(garbage) is None


def prepare(tmp_path: Path, iso: Path, drivers: Path, *extra: str) -> Any:
    return CliRunner().invoke(main, ["prepare", "--name", "p", "--storage", str(tmp_path / "storage"), "--iso",
                                     str(iso), "--drivers", str(drivers), *extra])


def test_prepare_lists_each_driver_with_its_verdict_and_each_left_out_one(tmp_path: Path, good_iso: Path) -> None:
    tree = make_fake_virtio_tree(tmp_path / "virtio-win")
    result = prepare(tmp_path, good_iso, tree, "--no-secure-boot")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert "driver viostor: windowsPE ($WinPEDriver$), viostor.cat is not a readable PKCS#7 signature (Unable to " \
           "parse PKCS7 data)" in lines
    assert "driver NetKVM: specialize, netkvm.cat is not a readable PKCS#7 signature (Unable to parse PKCS7 data)" \
        in lines
    assert "driver viorng left out: no virtio-rng-pci attached to this VM" in lines
    assert not any(line.startswith("winarm: warning") for line in lines), "Secure Boot off: nothing to warn about"


def test_prepare_with_secure_boot_refuses_unsigned_or_foreign_storage_drivers(tmp_path: Path,
                                                                            good_iso: Path) -> None:
    vendor = issue("Example Driver Vendor", ca=False)
    for name, data in (("unsigned", signed_catalog(vendor, certificates=False)), ("foreign", signed_catalog(vendor))):
        tree = make_fake_virtio_tree(tmp_path / name / "virtio-win", catalog=always(data))
        result = prepare(tmp_path / name, good_iso, tree)
        assert result.exit_code == 2, result.output
        assert result.stdout == "" and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("winarm: viostor, the virtio-blk storage driver Setup loads in windowsPE, is "
                                        "not signed by Microsoft (viostor.cat ")
        assert result.stderr.endswith("or pass --no-secure-boot\n")
        assert ("Example Driver Vendor" in result.stderr) == (name == "foreign")
        assert not (tmp_path / name / "storage").exists(), "nothing written"
