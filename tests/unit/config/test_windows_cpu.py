"""Windows 11 24H2 (build 26100) and later need Armv8.1 atomics: a KVM host without them, or a TCG CPU model
that does not boot it, is refused in one line before anything is written. The host's cpuinfo is injected."""

from __future__ import annotations

from pathlib import Path

import pytest

from winarm.config.host import HostFacts, check_windows_cpu, cpu_features
from winarm.config.paths import VmPaths
from winarm.config.vm import load_config
from winarm.errors import UserError
from winarm.qemu.firmware import Firmware
from winarm.vm import launch
from winarm.vm.facts import BUILD_FACT, write_facts

FW = Firmware("test", Path("/fw/CODE.fd"), Path("/fw/VARS.fd"), False, Path("/fw/x.json"))

ARMV82 = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
"""
RASPBERRY_PI_4 = """processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU part\t: 0xd08
"""


def test_cpu_features_are_what_every_core_lists() -> None:
    assert "atomics" in cpu_features(ARMV82)
    mixed = ARMV82 + "\nprocessor\t: 2\nFeatures\t: fp asimd crc32\n"
    assert "atomics" not in cpu_features(mixed), "one core without atomics is enough to lack them"
    assert cpu_features("model name\t: Intel\nflags\t: sse2 avx\n") == frozenset()


def test_kvm_without_atomics_refuses_24h2_naming_the_way_out() -> None:
    with pytest.raises(UserError) as error:
        check_windows_cpu("kvm", None, 26100, lambda: RASPBERRY_PI_4)
    message = str(error.value)
    assert "\n" not in message
    assert "26100" in message and "atomics" in message
    assert "22631" in message and "Armv8.1" in message


def test_kvm_with_atomics_or_an_older_build_passes() -> None:
    check_windows_cpu("kvm", None, 26100, lambda: ARMV82)
    check_windows_cpu("kvm", None, 22631, lambda: RASPBERRY_PI_4)


def test_an_unknown_build_or_tcg_never_reads_cpuinfo() -> None:
    def unreadable() -> str:
        raise AssertionError("cpuinfo read when it does not matter")

    check_windows_cpu("kvm", None, None, unreadable)
    check_windows_cpu("kvm", None, 22631, unreadable)
    check_windows_cpu("tcg", None, 26100, unreadable)


def test_an_unreadable_cpuinfo_is_not_held_against_the_host() -> None:
    def missing() -> str:
        raise FileNotFoundError("/proc/cpuinfo")

    check_windows_cpu("kvm", None, 26100, missing)


@pytest.mark.parametrize("model", ["neoverse-n1", "cortex-a76", "Cortex-A76,pauth=off", "cortex-a72"])
def test_tcg_refuses_models_that_do_not_boot_24h2(model: str) -> None:
    with pytest.raises(UserError) as error:
        check_windows_cpu("tcg", model, 26100)
    message = str(error.value)
    assert "\n" not in message
    assert model in message and "--cpu-model max,pauth-impdef=on" in message


@pytest.mark.parametrize("model", [None, "max,pauth-impdef=on", "max", "cortex-a710"])
def test_tcg_lets_other_models_boot_24h2(model: str | None) -> None:
    check_windows_cpu("tcg", model, 26100)


def test_tcg_lets_any_model_boot_an_older_build() -> None:
    check_windows_cpu("tcg", "neoverse-n1", 22631)
    check_windows_cpu("tcg", "cortex-a76", None)


def test_launch_refuses_before_writing_anything(tmp_path: Path, run_base: Path, host: HostFacts,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config({"storage": str(tmp_path / "s"), "run_base": str(run_base), "disk_size": "1G",
                       "cpu_model": "neoverse-n1"}, {}, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    paths.state_dir.mkdir(parents=True)
    paths.disk.write_bytes(b"")
    write_facts(paths, {BUILD_FACT: 26100, "install_complete": True})  # a 24H2 disk from an earlier install
    before = sorted(p.name for p in paths.state_dir.iterdir())
    monkeypatch.setattr(launch, "_preflight", lambda cfg: None)
    monkeypatch.setattr(launch, "find_firmware", lambda secure_boot: FW)
    with pytest.raises(UserError, match="neoverse-n1"):
        launch.launch(cfg, 0.0)
    assert sorted(p.name for p in paths.state_dir.iterdir()) == before
    assert not paths.run_dir.exists()
