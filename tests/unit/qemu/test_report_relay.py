"""The guest channel on QEMU's command line: the guest's 10.0.2.5:80 relayed by socat to the report socket,
whatever characters the run directory holds, and nothing when the channel is off. (That the relay really carries
a report: tests/unit/vm/test_guest_channel_relay.py.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.config.test_hostile_values import qemu_options
from winarm.config.host import HostFacts
from winarm.config.paths import VmPaths
from winarm.config.vm import load_config
from winarm.qemu.argv import Endpoints, build_argv, report_relay_command
from winarm.qemu.firmware import Firmware

FW = Firmware("test", Path("/fw/CODE.fd"), Path("/fw/VARS.fd"), False, Path("/fw/x.json"))


def guestfwds(tmp_path: Path, host: HostFacts, run_base: Path, env: dict[str, str] | None = None,
              **flags: object) -> tuple[VmPaths, list[str], list[str]]:
    """The VM's paths, its ``guestfwd`` rules as QEMU reads them, and its ``-device`` values."""
    base: dict[str, object] = {"storage": str(tmp_path / "s"), "run_base": str(run_base), "disk_size": "1G", **flags}
    cfg = load_config(base, env or {}, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    argv = build_argv(cfg, FW, paths, Endpoints(qmp=7, serial=8), share_port=45123)
    (netdev,) = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    return paths, [value for key, value in qemu_options(netdev) if key == "guestfwd"], devices


def socket_of(rule: str) -> str:
    """The socket a ``tcp:10.0.2.5:80-cmd:...`` rule relays to, read the way QEMU and socat read it: the command
    split like a shell, the socat address's backslash escapes undone."""
    prefix = "tcp:10.0.2.5:80-cmd:"
    assert rule.startswith(prefix), rule
    argv = shlex.split(rule.removeprefix(prefix))
    assert argv[:2] == ["socat", "STDIO"] and len(argv) == 3 and argv[2].startswith("UNIX-CONNECT:"), argv
    address = argv[2].removeprefix("UNIX-CONNECT:")
    assert not re.search(r"(?<!\\)[,:!'\"()\[\]{} ]", address), f"a socat separator left bare: {address}"
    return re.sub(r"\\(.)", r"\1", address, flags=re.DOTALL)


def test_the_channel_is_on_by_default_beside_the_share_and_the_nic_has_an_id(tmp_path: Path, host: HostFacts) -> None:
    paths, rules, devices = guestfwds(tmp_path, host, tmp_path / "r")
    assert rules[0] == "tcp:10.0.2.4:445-cmd:socat STDIO TCP4:127.0.0.1:45123", "the share's relay is unchanged"
    assert socket_of(rules[1]) == str(paths.report_socket) == str(tmp_path / "r" / "windows" / "report.sock")
    assert "virtio-net-pci,id=nic0,netdev=net0,romfile=" in devices


def test_no_guest_channel_blocks_the_relay_by_flag_or_environment(tmp_path: Path, host: HostFacts) -> None:
    for flags, env in (({"guest_channel": False}, {}), ({}, {"GUEST_CHANNEL": "N"})):
        _, rules, devices = guestfwds(tmp_path, host, tmp_path / "r", env, **flags)
        assert rules == ["tcp:10.0.2.4:445-cmd:socat STDIO TCP4:127.0.0.1:45123"], (flags, env)
        assert "virtio-net-pci,id=nic0,netdev=net0,romfile=" in devices


def test_a_run_dir_with_a_space_and_a_comma_stays_whole(tmp_path: Path, host: HostFacts) -> None:
    paths, rules, _ = guestfwds(tmp_path, host, tmp_path / "my run, dir")
    assert socket_of(rules[1]) == str(tmp_path / "my run, dir" / "windows" / "report.sock")
    assert report_relay_command(paths.report_socket) == (
        f"socat STDIO 'UNIX-CONNECT:{tmp_path}/my\\ run\\,\\ dir/windows/report.sock'")


run_names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]), min_size=1,
                    max_size=30).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 60)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=run_names)
def test_any_run_dir_reaches_socat_whole(tmp_path: Path, host: HostFacts, name: str) -> None:
    paths, rules, _ = guestfwds(tmp_path, host, tmp_path / name)
    assert socket_of(rules[1]) == str(paths.report_socket)
