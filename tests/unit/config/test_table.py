"""The settings table and the one picker over it: flag, then environment, then default; yes/no and choices
checked as they are read."""

from __future__ import annotations

import pytest

from winarm.config.share import ENV_NAMES as SHARE_ENV_NAMES
from winarm.config.table import BY_NAME, SETTINGS, UP
from winarm.config.values import Values
from winarm.config.vm import ENV_NAMES
from winarm.errors import UserError


def test_flag_wins_over_env_which_wins_over_the_default() -> None:
    assert Values({"ram": "2G"}, {"RAM_SIZE": "3G"})["ram"] == "2G"
    assert Values({"ram": None}, {"RAM_SIZE": "3G"})["ram"] == "3G"
    assert Values({}, {"RAM_SIZE": "  "})["ram"] == BY_NAME["ram"].default == "4G", "a blank variable is not given"
    assert Values({}, {"ISO": "/b.iso"})["iso"] == "/b.iso", "the second env name counts when the first is unset"
    assert Values({}, {"BOOT": "/a.iso", "ISO": "/b.iso"})["iso"] == "/a.iso", "the anchor's name first"
    assert Values({"shared": ()}, {"SHARED": "/srv"})["shared"] == "/srv", "an empty repeated flag is not given"
    assert Values({}, {}).given("ram") is None


def test_yes_no_and_choices_are_checked_as_read() -> None:
    assert Values({}, {"TPM": "n"})["tpm"] is False
    assert Values({"tpm": True}, {"TPM": "maybe"})["tpm"] is True, "a flag given leaves the variable unread"
    with pytest.raises(UserError, match="^TPM 'maybe' is not yes or no: use Y or N$"):
        Values({}, {"TPM": "maybe"})["tpm"]
    assert Values({}, {"DISK_TYPE": "SCSI"})["disk_bus"] == "virtio-scsi"
    assert Values({"drivers_pass": "windowspe"}, {})["drivers_pass"] == "windowsPE"
    with pytest.raises(UserError, match=r"^disk bus 'ide' is not known: use virtio-blk \(blk\), virtio-scsi \(scsi\) "
                       "or nvme$"):
        Values({"disk_bus": "ide"}, {})["disk_bus"]
    values = Values({}, {"TPM": "maybe"})
    assert values["ram"] == "4G", "a bad setting that is not read refuses nothing"
    with pytest.raises(KeyError):
        values["no_such_setting"]


def test_every_row_is_whole_and_written_once() -> None:
    assert len(BY_NAME) == len(SETTINGS), "a setting's name is used once"
    flags = [s.flag for s in SETTINGS if s.flag]
    assert len(flags) == len(set(flags))
    envs = [e for s in SETTINGS for e in s.env]
    assert len(envs) == len(set(envs)), "an environment name stands for one setting"
    for setting in SETTINGS:
        assert setting.help and setting.help_text.endswith("."), setting.name
        assert setting.flag is not None or setting.env, f"{setting.name} can be given no way"
        assert not setting.choices or setting.default in setting.choices, setting.name
        assert not setting.choices or setting.what, f"{setting.name}: a refused choice names what it is"
    assert set(UP) <= set(BY_NAME)


def test_the_old_env_name_tables_are_the_tables_rows() -> None:
    assert ENV_NAMES["ram"] == ("RAM_SIZE",) and ENV_NAMES["iso"] == ("BOOT", "ISO")
    assert SHARE_ENV_NAMES["uid"] == ("UID", "PUID")
    for name, env in {**ENV_NAMES, **SHARE_ENV_NAMES}.items():
        assert BY_NAME[name].env == env
