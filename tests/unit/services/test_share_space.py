"""The watermark's decision and its setting, without smbd (the system test runs the real one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from winarm.config.share import load_share_settings
from winarm.errors import UserError
from winarm.services.share_space import ROOM_FACTOR, should_be_full


def test_read_only_below_the_line_writable_only_with_room_to_spare() -> None:
    assert should_be_full(False, 99, 100) and not should_be_full(False, 100, 100)
    assert should_be_full(True, 150, 100), "no flapping: still full just above the line"
    assert not should_be_full(True, 100 * ROOM_FACTOR, 100)


def test_the_setting(share_root: Path) -> None:
    os.chown(share_root, 4321, 4321)

    def min_free(value: str | None) -> int:
        flags = {"shared": (str(share_root),), **({"share_min_free": value} if value is not None else {})}
        settings = load_share_settings(flags, {}, euid=0, egid=0)
        assert settings is not None
        return settings.min_free

    assert min_free(None) == 2**30, "1 GiB by default"
    assert min_free("5G") == 5 * 2**30 and min_free("off") == 0 and min_free("0") == 0
    with pytest.raises(UserError, match="share minimum free space 'lots' is not a size"):
        min_free("lots")
