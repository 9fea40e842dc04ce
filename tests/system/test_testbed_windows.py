"""The test guest playing Windows Setup's passes from the Windows-shaped test ISO, as Windows would.

The booting tests run qemu-system-aarch64 directly (winarm's own argv from ``winarm up --dry-run``, plus a second
USB CD: winarm's own answer medium, built from a stand-in virtio-win tree, see tests/system/testbed_runs.py) and
follow the guest through windowsPE -> specialize -> oobeSystem -> first logon from its serial console, QMP events
and the reports it sends through the guest channel (relayed to a listener of the test's). Playing Windows, the
guest prints no phase marker: Windows for ARM64 has no COM port, so what it tells winarm comes as reports.
Windows itself cannot run here: the guest plays what the answer file and the medium say.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import cache_dir
from tests.system.testbed_runs import ReportListener, Run, boot, qemu_argv
from winarm.answer.medium import driver_folder, medium_files, write_iso
from winarm.answer.settings import AnswerSettings
from winarm.media.drivers import DriverRequest, DriverSelection, load_catalog, pick_drivers
from winarm_testbed.virtio_tree import make_fake_virtio_tree


@pytest.fixture(scope="session")
def windows_iso() -> Path:
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), log=lambda line: None)


# --------------------------------------------------------------------------------------------------
# Answer media: winarm's own, and a hand-made one with a broken answer file

COMPONENT = ('processorArchitecture="arm64" publicKeyToken="31bf3856ad364e35" language="neutral" '
             'versionScope="nonSxS"')
RUN = r'cmd /c "for %d in (D E F G H) do if exist %d:\winarm.marker %d:\winarm\install-drivers.cmd specialize"'


def answer_xml(*, specialize: bool, firstlogon: bool, image_install: bool = True) -> str:
    """A small unattend file with the parts the guest checks (and a decoy comment)."""
    image = "<ImageInstall><OSImage><InstallFrom><MetaData><Key>/IMAGE/INDEX</Key><Value>2</Value></MetaData>" \
            "</InstallFrom></OSImage></ImageInstall>" if image_install else ""
    spec = f"""
    <component name="Microsoft-Windows-Deployment" {COMPONENT}>
      <RunSynchronous>
        <RunSynchronousCommand wcm:action="add"><Order>1</Order><Path>reg add HKLM\\X /v BypassNRO</Path>
        </RunSynchronousCommand>
        <RunSynchronousCommand wcm:action="add"><Order>2</Order><Path>{RUN}</Path></RunSynchronousCommand>
      </RunSynchronous>
    </component>""" if specialize else ""
    logon = f"""
      <FirstLogonCommands>
        <SynchronousCommand wcm:action="add"><Order>1</Order><CommandLine>{RUN}</CommandLine>
        </SynchronousCommand>
      </FirstLogonCommands>""" if firstlogon else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
  <!-- decoy: <Path>install-drivers.cmd</Path> in a comment is not a command -->
  <settings pass="windowsPE">
    <component name="Microsoft-Windows-Setup" {COMPONENT}>
      <DiskConfiguration><Disk wcm:action="add"><DiskID>0</DiskID></Disk></DiskConfiguration>
      {image}
    </component>
  </settings>
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup" {COMPONENT}><ComputerName>WINARM</ComputerName></component>{spec}
  </settings>
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" {COMPONENT}>{logon}
    </component>
  </settings>
</unattend>
""".replace("\n", "\r\n")


def write_answer_medium(out: Path, xml: str, *, winpe: list[str], drivers: list[tuple[str, str]]) -> Path:
    """An ISO 9660 + Joliet + UDF answer medium: Autounattend.xml, winarm.marker, $WinPEDriver$/<winpe>,
    winarm/drivers.txt listing ``drivers`` in order, winarm/drivers/<folder>/<inf> plus a 256 KiB .sys each."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, udf="2.60", vol_ident="WINARM_ANSWER")
    names = iter(range(1, 1000))

    def add_dir(path: str) -> None:
        iso.add_directory(f"/D{next(names)}", joliet_path=path, udf_path=path)

    def add_file(path: str, data: bytes) -> None:
        iso.add_fp(io.BytesIO(data), len(data), f"/F{next(names)}.;1", joliet_path=path, udf_path=path)

    add_file("/Autounattend.xml", xml.encode())
    add_file("/winarm.marker", b"winarm\r\n")
    add_dir("/$WinPEDriver$")
    for folder in winpe:
        add_dir(f"/$WinPEDriver$/{folder}")
        add_file(f"/$WinPEDriver$/{folder}/{folder.lower()}.inf", b"[Version]\r\n")
    add_dir("/winarm")
    add_file("/winarm/install-drivers.cmd", b"@echo off\r\n")
    add_file("/winarm/drivers.txt", "".join(f"{f} {inf}\r\n" for f, inf in drivers).encode())
    add_dir("/winarm/drivers")
    for folder, inf in drivers:
        add_dir(f"/winarm/drivers/{folder}")
        add_file(f"/winarm/drivers/{folder}/{inf}", b"[Version]\r\n")
        add_file(f"/winarm/drivers/{folder}/{folder.lower()}.sys", os.urandom(256 * 1024))
    iso.write(str(out))
    iso.close()
    return out


DRIVERS = [("viorng", "viorng.inf"), ("Balloon", "balloon.inf"), ("vioserial", "vioser.inf")]


def winarm_medium(tmp_path: Path, drivers_pass: str, *, skip: tuple[str, ...] = ()) -> tuple[Path, list[str]]:
    """winarm's own answer medium for a virtio-blk VM (drivers in DRIVERS_PASS, from a stand-in virtio-win tree
    without the drivers in SKIP): its path and the driver folders its driver script installs, in order. Every
    catalog device counts as attached (these tests are about the passes, not the selection) and Secure Boot is
    off (the placeholders are unsigned)."""
    tree = make_fake_virtio_tree(tmp_path / "virtio-win", skip=skip)
    every = frozenset(device for driver in load_catalog() for device in driver.devices)
    request = DriverRequest("11", "virtio-blk", drivers_pass, every, secure_boot=False)
    selection: DriverSelection = pick_drivers(tree, request)
    settings = AnswerSettings(drivers_pass=drivers_pass, has_drivers=bool(selection.others))
    medium = tmp_path / "answer.iso"
    write_iso(medium_files(settings, selection), medium)
    return medium, [driver_folder(p) for p in selection.others]


class Vm:
    """One test VM: a fresh disk and firmware variables, the ISO and the answer medium, the channel's listener."""

    def __init__(self, tmp_path: Path, run_base: Path, windows_iso: Path, answer: Path) -> None:
        self.tmp_path, self.run_base = tmp_path, run_base
        self.listener = ReportListener(run_base / "t-report.sock")
        self.argv = qemu_argv(tmp_path, run_base, windows_iso, answer, self.listener.path)

    def install(self) -> Run:
        """Boot until the guest powers off after the first logon (three boots: CD, specialize, oobeSystem)."""
        return boot(self.argv, self.run_base, self.listener, log=self.tmp_path / "install.log", press_key=True)

    def boot_again(self) -> Run:
        """One later boot of the installed disk (no key at a CD prompt: the disk boots first)."""
        return boot(self.argv, self.run_base, self.listener, log=self.tmp_path / "again.log", press_key=False)

    def close(self) -> None:
        self.listener.close()


MakeVm = Callable[[Path, Path], Vm]


@pytest.fixture
def vms(run_base: Path, windows_iso: Path) -> Iterator[MakeVm]:
    """Makes test VMs (``vms(tmp_path, answer medium)``); their listeners are closed at the end."""
    made: list[Vm] = []

    def make(tmp_path: Path, answer: Path) -> Vm:
        vm = Vm(tmp_path, run_base, windows_iso, answer)
        made.append(vm)
        return vm

    yield make
    for vm in made:
        vm.close()


def drivers_body(pass_name: str, folders: list[str]) -> bytes:
    """The body of the ``drivers`` report for FOLDERS installed in PASS_NAME (each pnputil exit code 0)."""
    return "".join([f"pass {pass_name}\r\n", *(f"driver {f} 0\r\n" for f in folders)]).encode()


def windows_steps(boot_lines: list[str]) -> None:
    """Assert that a boot played as Windows shows the Linux guest's own steps as events only."""
    assert boot_lines[0] == "+init", boot_lines
    assert not [line for line in boot_lines if not line.startswith("+")], f"a phase marker: {boot_lines}"


@pytest.mark.qemu
def test_setup_reports_drivers_in_specialize_and_desktop_ready_at_every_logon(
        tmp_path: Path, vms: MakeVm) -> None:
    answer, folders = winarm_medium(tmp_path, "specialize")
    assert "20-NetKVM" in folders
    vm = vms(tmp_path, answer)
    run = vm.install()
    assert run.markers() == [], "playing Windows, nothing but error is a phase marker on the serial console"
    boots = run.by_boot()
    assert len(boots) == 3 and run.qmp_events.count("RESET") == 2 and run.keys == 1, run.console[-30:]
    for lines in boots:
        windows_steps(lines)
    assert boots[0] == ["+init", "+winpe-driver viostor"]
    assert boots[1] == ["+init", *(f"+driver-installed {f}" for f in folders), "+report-sent drivers"]
    assert boots[2][-2:] == ["+ready", "+poweroff"]
    extended = [line for line in boots[2] if line.startswith("+volume-extended ")]
    assert len(extended) == 1 and extended[0].startswith("+volume-extended C: 128 "), boots[2]
    assert sorted(set(boots[2][1:-2]) - set(extended)) == [
        "+report-sent desktop-ready", "+report-sent first-logon", "+run-key-added WinarmDesktopReady",
        "+task-added WinarmExtendC"]
    assert [(r.boot, r.line, r.body) for r in run.reports] == [
        (2, "POST /report/drivers HTTP/1.1", drivers_body("specialize", folders)),
        (3, "POST /report/first-logon HTTP/1.1", b""),
        (3, "POST /report/desktop-ready HTTP/1.1", b""),
    ]

    again = vm.boot_again()
    assert again.markers() == [] and again.keys == 0
    assert again.by_boot() == [["+init", "+fsck clean", "+volume-not-extended C: no unallocated space after C:",
                                "+report-sent desktop-ready", "+ready", "+poweroff"]], "the start task, then the logon"
    assert [(r.boot, r.name, r.body) for r in again.reports] == [(1, "desktop-ready", b"")], "through the Run key"


@pytest.mark.qemu
def test_setup_reports_drivers_at_first_logon(tmp_path: Path, vms: MakeVm) -> None:
    answer, folders = winarm_medium(tmp_path, "firstlogon")
    run = vms(tmp_path, answer).install()
    assert run.markers() == []
    boots = run.by_boot()
    assert boots[:2] == [["+init", "+winpe-driver viostor"], ["+init"]], run.console[-30:]
    windows_steps(boots[2])
    installed = [line for line in boots[2] if line.startswith("+driver-installed ")]
    assert installed == [f"+driver-installed {f}" for f in folders]
    reports = [(r.boot, r.name) for r in run.reports]
    # first-logon is started before the drivers and sent once NetKVM brings the network up: either may be first
    assert sorted(reports[:2]) == [(3, "drivers"), (3, "first-logon")] and reports[2:] == [(3, "desktop-ready")]
    assert next(r.body for r in run.reports if r.name == "drivers") == drivers_body("oobeSystem", folders)


@pytest.mark.qemu
def test_no_network_driver_no_report(tmp_path: Path, vms: MakeVm) -> None:
    """Without NetKVM Windows has no network: every report fails, the install goes on and ends."""
    answer, folders = winarm_medium(tmp_path, "specialize", skip=("NetKVM",))
    run = vms(tmp_path, answer).install()
    assert run.reports == [] and run.markers() == []
    boots = run.by_boot()
    assert len(boots) == 3, run.console[-30:]
    assert boots[1] == ["+init", *(f"+driver-installed {f}" for f in folders),
                        "+report-failed drivers no network driver"]
    assert sorted(e for e in boots[2] if e.startswith("+report-")) == [
        "+report-failed desktop-ready no network driver", "+report-failed first-logon no network driver"]
    assert boots[2][-2:] == ["+ready", "+poweroff"]


@pytest.mark.qemu
def test_drivers_from_winpe_bring_the_network_without_a_driver_script(tmp_path: Path, vms: MakeVm) -> None:
    """Every driver in $WinPEDriver$ (drivers pass windowsPE): no driver script and no drivers report, but Setup
    put NetKVM in the image, so the first logon's reports arrive."""
    answer, folders = winarm_medium(tmp_path, "windowsPE")
    assert folders == []
    run = vms(tmp_path, answer).install()
    boots = run.by_boot()
    assert "+winpe-driver NetKVM" in boots[0] and boots[1] == ["+init"], run.console[-30:]
    assert [(r.boot, r.name) for r in run.reports] == [(3, "first-logon"), (3, "desktop-ready")]


@pytest.mark.qemu
def test_setup_stops_on_a_bad_answer_file(tmp_path: Path, vms: MakeVm) -> None:
    answer = write_answer_medium(tmp_path / "answer.iso",
                                 answer_xml(specialize=True, firstlogon=False, image_install=False),
                                 winpe=["viostor"], drivers=DRIVERS)
    run = vms(tmp_path, answer).install()
    assert run.markers() == ["error answer file: windowsPE Microsoft-Windows-Setup has no ImageInstall"]
    assert run.events() == ["init"] and "RESET" not in run.qmp_events and run.reports == []
