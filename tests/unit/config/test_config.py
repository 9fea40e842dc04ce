"""Configuration: sizes, counts, names, the environment's anchor names, and errors that name the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from winarm.config.host import HostFacts, choose_accel
from winarm.config.vm import GiB, MiB, format_size, load_config, parse_cpus, parse_size
from winarm.errors import UserError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8G", 8 * GiB),
        ("8192M", 8 * GiB),
        ("8g", 8 * GiB),
        ("1.5G", 1536 * MiB),
        ("512MiB", 512 * MiB),
        ("2GB", 2 * GiB),
        ("1T", 1024 * GiB),
    ],
)
def test_sizes_parse_in_binary_units(text: str, expected: int) -> None:
    assert parse_size(text, "RAM size") == expected


def test_half_and_max_are_relative_to_the_given_total() -> None:
    assert parse_size("half", "RAM size", relative_to=16 * GiB) == 8 * GiB
    assert parse_size("max", "RAM size", relative_to=16 * GiB) == 16 * GiB


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("8X", "'8X' is not a size"),
        ("8", "'8' has no unit: write it as 8G"),
        ("-1G", "'-1G' is not a size"),
        ("0G", "must be larger than zero"),
        ("", "is not a size"),
        ("half", "is not a size"),
    ],
)
def test_bad_sizes_name_the_value(text: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        parse_size(text, "RAM size")


def test_format_size_is_exact() -> None:
    assert format_size(4 * GiB) == "4G"
    assert format_size(1536 * MiB) == "1536M"


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("4", 4), ("max", 4), ("half", 2)])
def test_cpu_counts(text: str, expected: int) -> None:
    assert parse_cpus(text, 4) == expected


@pytest.mark.parametrize("text", ["0", "5", "two", "-1", "1.5"])
def test_bad_cpu_counts(text: str) -> None:
    with pytest.raises(UserError, match=repr(text) if text != "5" else "more than this host has"):
        parse_cpus(text, 4)


def flags(tmp_path: Path, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {"storage": str(tmp_path / "storage"), "run_base": str(tmp_path / "run")}
    base.update(extra)
    return base


def test_defaults_follow_the_anchor(tmp_path: Path, host: HostFacts) -> None:
    cfg = load_config(flags(tmp_path), {}, host)
    assert (cfg.name, cfg.ram, cfg.cpus, cfg.disk_size, cfg.timeout) == ("windows", 4 * GiB, 2, 64 * GiB, 105.0)
    assert cfg.accel == "tcg" and cfg.tpm and cfg.disk_format == "qcow2"
    assert cfg.state_dir == tmp_path / "storage" / "windows"


def test_environment_is_read_and_flags_win(tmp_path: Path, host: HostFacts) -> None:
    env = {"RAM_SIZE": "6G", "CPU_CORES": "3", "DISK_SIZE": "10G", "TIMEOUT": "30", "TPM": "N", "USERNAME": "alice"}
    cfg = load_config(flags(tmp_path), env, host)
    assert (cfg.ram, cfg.cpus, cfg.disk_size, cfg.timeout, cfg.tpm, cfg.username) == (
        6 * GiB,
        3,
        10 * GiB,
        30.0,
        False,
        "alice",
    )
    cfg = load_config(flags(tmp_path, ram="2G", cpus="1", tpm=True), env, host)
    assert (cfg.ram, cfg.cpus, cfg.tpm) == (2 * GiB, 1, True)


def test_password_is_kept_out_of_repr(tmp_path: Path, host: HostFacts) -> None:
    cfg = load_config(flags(tmp_path, password="s3cret-value"), {}, host)
    assert "s3cret-value" not in repr(cfg)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"ram": "64G"}, "more than this host has"),
        ({"ram": "64M"}, "too small"),
        ({"cpus": "9"}, "more than this host has"),
        ({"name": "../etc"}, "VM name '../etc' is not allowed"),
        ({"name": "a b"}, "is not allowed"),
        ({"name": "tab\there"}, r"'tab\\there'"),
        ({"disk_format": "vmdk"}, "disk format 'vmdk' is not known"),
        ({"disk_bus": "ide"}, "disk bus 'ide' is not known"),
        ({"accel": "hvf"}, "accelerator 'hvf' is not known"),
        ({"accel": "kvm"}, "needs an aarch64 host"),
        ({"timeout": "soon"}, "timeout 'soon' is not a number"),
        ({"timeout": "0"}, "out of range"),
        ({"iso": "/nonexistent/win.iso"}, "does not exist"),
        ({"disk_size": "900T", "allocate": True}, "needs more room"),
        ({"allocate": "maybe"}, "ALLOCATE 'maybe' is not yes or no"),
    ],
)
def test_bad_values_raise_one_line_naming_them(
    tmp_path: Path, host: HostFacts, extra: dict[str, object], fragment: str
) -> None:
    with pytest.raises(UserError, match=fragment) as info:
        load_config(flags(tmp_path, **extra), {}, host)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "storage").exists(), "a rejected configuration must create nothing"


def test_bad_environment_values_are_named_too(tmp_path: Path, host: HostFacts) -> None:
    with pytest.raises(UserError, match="CPU count 'lots'"):
        load_config(flags(tmp_path), {"CPU_CORES": "lots"}, host)
    with pytest.raises(UserError, match="TPM 'maybe' is not yes or no"):
        load_config(flags(tmp_path), {"TPM": "maybe"}, host)


def test_a_sparse_disk_may_outgrow_the_free_space_with_a_note(tmp_path: Path, host: HostFacts) -> None:
    """Thin provisioning, as every hypervisor does it: the default image is sparse, so a disk larger than the
    free space starts (with a note naming what happens when the storage fills); a preallocated one cannot."""
    cfg = load_config(flags(tmp_path, disk_size="900T"), {}, host)
    assert cfg.disk_size == 900 * 1024 * GiB and not cfg.allocate
    assert len(cfg.notes) == 1
    assert "900T disk may outgrow" in cfg.notes[0] and "paused" in cfg.notes[0] and "--allocate" in cfg.notes[0]
    assert load_config(flags(tmp_path, disk_size="1G"), {}, host).notes == (), "a disk that fits needs no note"
    with pytest.raises(UserError, match=r"disk size '900T' needs more room .*the whole disk, preallocated"):
        load_config(flags(tmp_path, disk_size="900T"), {"ALLOCATE": "Y"}, host)
    assert not (tmp_path / "storage").exists()


def test_an_existing_disk_is_never_shrunk(tmp_path: Path, host: HostFacts) -> None:
    state = tmp_path / "storage" / "windows"
    state.mkdir(parents=True)
    image = state / "disk.raw"
    with image.open("wb") as handle:
        handle.truncate(2 * GiB)
    with pytest.raises(UserError, match="smaller than the existing disk"):
        load_config(flags(tmp_path, disk_format="raw", disk_size="1G"), {}, host)
    assert load_config(flags(tmp_path, disk_format="raw", disk_size="3G"), {}, host).disk_size == 3 * GiB


def test_kvm_only_on_aarch64_with_a_usable_device() -> None:
    arm = HostFacts("aarch64", 8 * GiB, 8 * GiB, 4, kvm_usable=True)
    arm_nokvm = HostFacts("aarch64", 8 * GiB, 8 * GiB, 4, kvm_usable=False)
    x86_kvm = HostFacts("x86_64", 8 * GiB, 8 * GiB, 4, kvm_usable=True)
    assert choose_accel("auto", arm) == "kvm"
    assert choose_accel("auto", arm_nokvm) == "tcg"
    assert choose_accel("auto", x86_kvm) == "tcg", "an x86 /dev/kvm cannot run an aarch64 guest"
    with pytest.raises(UserError, match="/dev/kvm is missing"):
        choose_accel("kvm", arm_nokvm)
    assert choose_accel("tcg", arm) == "tcg"


def test_an_iso_at_the_top_of_the_storage_is_found(tmp_path: Path, host: HostFacts) -> None:
    if Path("/boot.iso").exists():  # pragma: no cover - depends on the machine
        pytest.skip("this machine has a /boot.iso, which wins over the storage directory")
    base = {"storage": str(tmp_path), "run_base": str(tmp_path / "run"), "disk_size": "1G"}
    assert load_config(base, {}, host).iso is None
    (tmp_path / "win11.iso").write_bytes(b"x")
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm" / "answer-1.iso").write_bytes(b"x")  # winarm's own media, one level down: not candidates
    assert load_config(base, {}, host).iso == tmp_path / "win11.iso"
    (tmp_path / "other.iso").write_bytes(b"x")
    with pytest.raises(UserError, match=r"several ISOs in .* \(other.iso, win11.iso\): say which with --iso"):
        load_config(base, {}, host)
    assert load_config(base, {"BOOT": str(tmp_path / "other.iso")}, host).iso == tmp_path / "other.iso"


def test_vnc_address_from_the_environment(tmp_path: Path, host: HostFacts) -> None:
    base = {"storage": str(tmp_path), "run_base": str(tmp_path / "run"), "disk_size": "1G"}
    assert load_config(base, {}, host).vnc == "socket", "issue 14: a unix socket by default, not TCP"
    assert load_config(base, {"VNC": "127.0.0.1"}, host).vnc == "127.0.0.1"
    assert load_config(base, {"VNC": "0.0.0.0"}, host).vnc == "0.0.0.0"
    with pytest.raises(UserError, match="VNC address 'localhost,to=1' is not an IP address"):
        load_config(base, {"VNC": "localhost,to=1"}, host)


def test_host_memory_is_meminfo_capped_by_the_container_s_cgroup_limit(tmp_path: Path) -> None:
    """The host probe reads /proc/meminfo and the cgroup v2 limit itself (not psutil, which shows the host's
    memory inside a container with ``--memory``): a limit below the host's RAM caps total and available."""
    from winarm.config.host import memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:  100 kB\nMemAvailable:   12288000 kB\n")
    cgroup = tmp_path / "cgroup"
    (cgroup / "box").mkdir(parents=True)
    (cgroup / "box" / "memory.max").write_text(f"{4 * GiB}\n")
    (cgroup / "box" / "memory.current").write_text(f"{1 * GiB}\n")
    membership = tmp_path / "self-cgroup"
    membership.write_text("0::/box\n")
    assert memory(meminfo, cgroup, membership) == (4 * GiB, 3 * GiB)
    (cgroup / "box" / "memory.max").write_text("max\n")
    assert memory(meminfo, cgroup, membership) == (16384000 * 1024, 12288000 * 1024), "no limit: the host's"
    assert memory(meminfo, cgroup, tmp_path / "no-such-file") == (16384000 * 1024, 12288000 * 1024)

