"""Who may see and drive the screen (issue 14, finding 8: VNC had no password by default while Windows logs on
as an administrator by itself, and the image listened on all addresses)."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from winarm.config.host import HostFacts
from winarm.config.paths import VmPaths
from winarm.config.vm import Config, load_config
from winarm.vm.vnc_secret import ALPHABET, vnc_access, with_vnc_password


def config(tmp_path: Path, host: HostFacts, env: dict[str, str]) -> tuple[Config, VmPaths]:
    base = {"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "disk_size": "1G"}
    cfg = load_config(base, env, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir)
    paths.state_dir.mkdir(parents=True)
    return cfg, paths


def test_the_socket_and_loopback_need_no_password(tmp_path: Path, host: HostFacts) -> None:
    for env in ({}, {"VNC": "127.0.0.1"}, {"VNC": "::1"}):
        cfg, paths = config(tmp_path / str(len(env) + len(env.get("VNC", ""))), host, env)
        assert with_vnc_password(cfg, paths) == cfg
        assert not paths.vnc_password.exists()


def test_beyond_loopback_a_password_is_made_once_kept_private_and_reused(tmp_path: Path, host: HostFacts) -> None:
    cfg, paths = config(tmp_path, host, {"VNC": "0.0.0.0"})
    first = with_vnc_password(cfg, paths)
    assert first.vnc_password is not None and len(first.vnc_password) == 8
    assert set(first.vnc_password) <= set(ALPHABET)
    assert stat.S_IMODE(paths.vnc_password.stat().st_mode) == 0o600
    assert paths.vnc_password.read_text().strip() == first.vnc_password
    assert with_vnc_password(cfg, paths).vnc_password == first.vnc_password, "the same at every start"
    line = vnc_access(first)
    assert str(paths.vnc_password) in line and first.vnc_password not in line, "the file is said, not the secret"


def test_the_users_own_password_wins(tmp_path: Path, host: HostFacts) -> None:
    secret = tmp_path / "mine"
    secret.write_text("mine-123\n")
    cfg, paths = config(tmp_path, host, {"VNC": "0.0.0.0", "VNC_PASSWORD_FILE": str(secret)})
    assert with_vnc_password(cfg, paths).vnc_password == "mine-123"
    assert not paths.vnc_password.exists()


def test_the_opt_out_is_warned(tmp_path: Path, host: HostFacts) -> None:
    cfg, paths = config(tmp_path, host, {"VNC": "0.0.0.0", "VNC_NO_PASSWORD": "Y"})
    kept = with_vnc_password(cfg, paths)
    assert kept.vnc_password is None and not paths.vnc_password.exists()
    assert "WITHOUT A PASSWORD" in vnc_access(kept)
    assert vnc_access(replace(kept, vnc="127.0.0.1")) == ""
