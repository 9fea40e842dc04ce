"""The QEMU command line, built without QEMU: what each setting turns into, and escaping."""

from __future__ import annotations

from pathlib import Path

import pytest

from winarm.config.host import HostFacts
from winarm.config.paths import VmPaths
from winarm.config.vm import GiB, load_config
from winarm.qemu.argv import Endpoints, build_argv, opt
from winarm.qemu.firmware import Firmware

FW = Firmware("test", Path("/fw/CODE.fd"), Path("/fw/VARS.fd"), False, Path("/fw/x.json"))


def argv_for(
    tmp_path: Path, host: HostFacts, media: list[Path] | None = None, tpm: bool = False, **flags: object
) -> list[str]:
    base: dict[str, object] = {"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}
    base.update(flags)
    cfg = load_config(base, {}, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    return build_argv(
        cfg, FW, paths, Endpoints(qmp=7, serial=8), media=media or [], tpm_socket=paths.tpm_socket if tpm else None
    )


def value_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_tcg_uses_the_cheap_pointer_authentication(tmp_path: Path, host: HostFacts) -> None:
    argv = argv_for(tmp_path, host)
    assert value_after(argv, "-cpu") == ["max,pauth-impdef=on"]
    assert value_after(argv, "-accel") == ["tcg,thread=multi"]
    assert "-S" in argv, "QEMU must start paused so no console output is missed"


def test_kvm_uses_the_host_cpu(tmp_path: Path) -> None:
    arm = HostFacts("aarch64", 16 * GiB, 16 * GiB, 4, kvm_usable=True)
    argv = argv_for(tmp_path, arm)
    assert value_after(argv, "-cpu") == ["host"] and value_after(argv, "-accel") == ["kvm"]


def test_sizes_and_sockets(tmp_path: Path, host: HostFacts) -> None:
    argv = argv_for(tmp_path, host, ram="3G", cpus="3")
    assert value_after(argv, "-m") == ["3072M"]
    assert value_after(argv, "-smp") == ["3,sockets=1,cores=3,threads=1"]
    chardevs = value_after(argv, "-chardev")
    assert "socket,id=serial0,fd=8,server=on,wait=off" in chardevs
    assert "socket,id=qmp0,fd=7,server=on,wait=off" in chardevs


def test_disk_boots_before_the_cd_and_the_nic_has_no_rom(tmp_path: Path, host: HostFacts) -> None:
    argv = argv_for(tmp_path, host, media=[tmp_path / "a.iso", tmp_path / "b.iso"])
    devices = value_after(argv, "-device")
    assert "virtio-blk-pci,drive=disk0,bootindex=0" in devices
    assert "usb-storage,id=media0,bus=xhci.0,drive=cd0,bootindex=1" in devices
    assert "usb-storage,id=media1,bus=xhci.0,drive=cd1,bootindex=2" in devices
    assert "virtio-net-pci,id=nic0,netdev=net0,romfile=" in devices
    assert any(d.startswith("qemu-xhci") for d in devices) and "ramfb" in devices


@pytest.mark.parametrize(
    ("bus", "device"),
    [("nvme", "nvme,drive=disk0,serial=winarm0,bootindex=0"), ("scsi", "scsi-hd,bus=scsi0.0,drive=disk0,bootindex=0")],
)
def test_other_disk_buses(tmp_path: Path, host: HostFacts, bus: str, device: str) -> None:
    assert device in value_after(argv_for(tmp_path, host, disk_bus=bus), "-device")


def test_a_preallocated_disk_keeps_its_space_and_a_sparse_one_gives_back_what_is_trimmed(
    tmp_path: Path, host: HostFacts
) -> None:
    def system_disk(argv: list[str]) -> list[str]:
        return next(d.split(",") for d in value_after(argv, "-drive") if "id=disk0" in d.split(","))

    sparse = system_disk(argv_for(tmp_path, host))
    reserved = system_disk(argv_for(tmp_path, host, allocate=True))
    assert "discard=unmap" in sparse and "detect-zeroes=unmap" in sparse
    assert "discard=ignore" in reserved and "detect-zeroes=on" in reserved
    assert not any(o.startswith("werror=") for o in sparse), "QEMU's default werror=enospc pauses on a full storage"


def test_tpm_device_only_when_asked(tmp_path: Path, host: HostFacts) -> None:
    assert "tpm-tis-device,tpmdev=tpm0" not in value_after(argv_for(tmp_path, host), "-device")
    assert "tpm-tis-device,tpmdev=tpm0" in value_after(argv_for(tmp_path, host, tpm=True), "-device")


def test_commas_in_paths_are_doubled(tmp_path: Path, host: HostFacts) -> None:
    weird = tmp_path / "my,iso=x.iso"
    weird.write_bytes(b"")
    argv = argv_for(tmp_path, host, media=[weird])
    drive = [d for d in value_after(argv, "-drive") if "id=cd0" in d][0]
    assert f"file={str(weird).replace(',', ',,')}," in drive
    assert opt("a,b,,c") == "a,,b,,,,c"


def test_vnc_listens_on_its_socket_in_the_run_directory_by_default(tmp_path: Path, host: HostFacts) -> None:
    assert value_after(argv_for(tmp_path, host), "-vnc") == [f"unix:{tmp_path / 'r' / 'windows' / 'vnc.sock'}"]
    assert value_after(argv_for(tmp_path, host, vnc="127.0.0.1"), "-vnc") == ["127.0.0.1:0,to=99"]


def test_vnc_on_ipv6_and_with_a_password_that_stays_off_the_command_line(tmp_path: Path, host: HostFacts) -> None:
    secret = tmp_path / "vnc.txt"
    secret.write_text("pa55word\n")
    argv = argv_for(tmp_path, host, vnc="::1", vnc_password_file=str(secret))
    assert value_after(argv, "-vnc") == ["[::1]:0,to=99,password=on"]
    assert not any("pa55word" in a for a in argv)


def test_the_share_is_relayed_from_the_guest_s_445_to_smbd_s_loopback_port(tmp_path: Path, host: HostFacts) -> None:
    base: dict[str, object] = {"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}
    cfg = load_config(base, {}, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    argv = build_argv(cfg, FW, paths, Endpoints(qmp=7, serial=8), share_port=45123)
    share, report = value_after(argv, "-netdev")[0].split(",guestfwd=")[1:]
    assert share == "tcp:10.0.2.4:445-cmd:socat STDIO TCP4:127.0.0.1:45123"
    assert report.startswith("tcp:10.0.2.5:80-cmd:socat STDIO "), "the guest channel beside the share"
    assert "10.0.2.4" not in value_after(argv_for(tmp_path, host), "-netdev")[0], "no share, no relay"


def test_the_whole_command_line_in_order(tmp_path: Path, host: HostFacts) -> None:
    argv = argv_for(tmp_path, host, media=[tmp_path / "a.iso"], tpm=True, ram="2G", cpus="2")
    run, state = tmp_path / "r" / "windows", tmp_path / "s" / "windows"
    assert argv == [
        "qemu-system-aarch64", "-name", "windows,debug-threads=on", "-nodefaults", "-no-user-config", "-S",
        "-machine", "virt,gic-version=max", "-rtc", "base=localtime",
        "-accel", "tcg,thread=multi", "-cpu", "max,pauth-impdef=on",
        "-smp", "2,sockets=1,cores=2,threads=1", "-m", "2048M",
        "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
        "-drive", f"if=pflash,format=raw,unit=1,file={state}/efivars.fd", "-boot", "menu=on,splash-time=0",
        "-device", "ramfb", "-display", "none", "-vnc", f"unix:{run}/vnc.sock",
        "-device", "qemu-xhci,id=xhci", "-device", "usb-kbd,bus=xhci.0", "-device", "usb-tablet,bus=xhci.0",
        "-drive", f"if=none,id=disk0,file={state}/disk.qcow2,format=qcow2,cache=writeback,discard=unmap,"
        "detect-zeroes=unmap",
        "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
        "-drive", f"if=none,id=cd0,file={tmp_path}/a.iso,format=raw,media=cdrom,readonly=on",
        "-device", "usb-storage,id=media0,bus=xhci.0,drive=cd0,bootindex=1",
        "-netdev", f"user,id=net0,guestfwd=tcp:10.0.2.5:80-cmd:socat STDIO UNIX-CONNECT:{run}/report.sock",
        "-device", "virtio-net-pci,id=nic0,netdev=net0,romfile=",
        "-chardev", "socket,id=serial0,fd=8,server=on,wait=off", "-serial", "chardev:serial0",
        "-chardev", "socket,id=qmp0,fd=7,server=on,wait=off", "-mon", "chardev=qmp0,mode=control",
        "-chardev", f"socket,id=chrtpm,path={run}/swtpm.sock", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
        "-device", "tpm-tis-device,tpmdev=tpm0",
    ]
