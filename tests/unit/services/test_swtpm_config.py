"""swtpm_setup's own configuration: the files winarm writes so that the TPM's certificates are signed by an
authority kept with the VM (not the system one in /var/lib, which only root may write), and what a failed
manufacture leaves behind. swtpm_setup itself is a stand-in script here; the real one runs in the system tier."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from winarm.errors import RuntimeFailure
from winarm.services.swtpm import LOCALCA_CONF, LOCALCA_OPTIONS, SETUP_CONF, Swtpm, ca_config_files


def parse(text: str) -> dict[str, str]:
    """``key = value`` lines as swtpm_setup and swtpm_localca read them."""
    pairs = [line.split("=", 1) for line in text.splitlines() if line.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_files_point_swtpm_setup_at_an_authority_in_the_given_folder() -> None:
    files = ca_config_files("./tpm-ca", "/usr/bin/swtpm_localca")
    assert set(files) == {SETUP_CONF, LOCALCA_CONF, LOCALCA_OPTIONS}
    assert parse(files[SETUP_CONF]) == {
        "create_certs_tool": "/usr/bin/swtpm_localca",
        "create_certs_tool_config": "./tpm-ca/swtpm-localca.conf",
        "create_certs_tool_options": "./tpm-ca/swtpm-localca.options",
        "active_pcr_banks": "sha256",
    }
    assert parse(files[LOCALCA_CONF]) == {
        "statedir": "./tpm-ca",
        "signingkey": "./tpm-ca/signkey.pem",
        "issuercert": "./tpm-ca/issuercert.pem",
        "certserial": "./tpm-ca/certserial",
    }
    assert "/var/lib" not in "".join(files.values()), "nothing of the system-wide authority"
    assert files[LOCALCA_OPTIONS].splitlines() == [
        "--platform-manufacturer winarm", "--platform-version 2.1", "--platform-model QEMU"]


@pytest.mark.parametrize("bad", ["./a#b", "./a\nstatedir = /etc", "./${HOME}"])
def test_a_path_the_files_cannot_carry_is_refused(bad: str) -> None:
    with pytest.raises(RuntimeFailure, match="cannot name"):
        ca_config_files(bad, "/usr/bin/swtpm_localca")
    with pytest.raises(RuntimeFailure, match="cannot name"):
        ca_config_files("./tpm-ca", "/opt" + bad[1:])


def stub_programs(bin_dir: Path, setup_status: int) -> Path:
    """A swtpm_localca that does nothing and a swtpm_setup that records its argv and working folder, writes a
    state file as the real one does before it fails, and exits with ``setup_status``; returns the record."""
    bin_dir.mkdir()
    record = bin_dir / "argv"
    (bin_dir / "swtpm_localca").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "swtpm_setup").write_text(
        f'#!/bin/sh\npwd > {record}\nprintf "%s\\n" "$@" >> {record}\n'
        f': > tpm/tpm2-00.permall\nexit {setup_status}\n')
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    return record


def test_manufacture_passes_the_config_relative_to_the_vm_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    record = stub_programs(tmp_path / "bin", 0)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    vm = tmp_path / "vm,with comma"
    (vm / "tpm-ca").mkdir(parents=True, mode=0o755)
    swtpm = Swtpm(vm / "tpm", tmp_path / "tpm.sock", tmp_path / "swtpm.log")
    swtpm._manufacture()
    cwd, *argv = record.read_text().splitlines()
    assert cwd == str(vm)
    assert argv[argv.index("--config") + 1] == "./tpm-ca/swtpm_setup.conf"
    assert argv[argv.index("--tpmstate") + 1] == "./tpm"
    assert stat.S_IMODE((vm / "tpm-ca").stat().st_mode) == 0o700, "an existing folder is made private too"
    setup = parse((vm / "tpm-ca" / SETUP_CONF).read_text())
    assert setup["create_certs_tool"] == str((tmp_path / "bin" / "swtpm_localca").resolve())
    assert parse((vm / "tpm-ca" / LOCALCA_CONF).read_text())["statedir"] == "./tpm-ca"
    assert (vm / "tpm" / "tpm2-00.permall").exists(), "a manufactured state is kept"


def test_a_failed_manufacture_leaves_no_state_so_the_next_start_tries_again(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    stub_programs(tmp_path / "bin", 1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    swtpm = Swtpm(tmp_path / "vm" / "tpm", tmp_path / "tpm.sock", tmp_path / "swtpm.log")
    with pytest.raises(RuntimeFailure, match=r"swtpm_setup failed \(status 1\)"):
        swtpm._manufacture()
    assert list((tmp_path / "vm" / "tpm").iterdir()) == [], "the half-made tpm2-00.permall is gone"


def test_a_missing_swtpm_localca_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    swtpm = Swtpm(tmp_path / "vm" / "tpm", tmp_path / "tpm.sock", tmp_path / "swtpm.log")
    with pytest.raises(RuntimeFailure, match="swtpm_localca not found"):
        swtpm.write_ca_config()
