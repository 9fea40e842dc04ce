"""The share's free-space watermark (issue 14: nothing stopped the guest filling the host's disk through the
share). The real smbd on a real 64 MiB tmpfs and smbprotocol as the guest: once the guest's writes leave less
than the watermark free, the share turns read-only for the connection the guest already has (after its
reconnect) and for new ones; what was written stays; once there is room again it is writable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import smbclient
from smbprotocol.exceptions import SMBException

from tests.system.test_share import login, running, unc
from tests.vmtools import mounted_tmpfs
from winarm.config.share import Share, ShareSettings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: smbd's forced owner and a tmpfs mount")
MiB = 2**20


def write(port: int, name: str, size: int) -> bool:
    """Whether the guest could write ``size`` bytes to ``name``: False when the server refuses it as read-only
    or denied; a connection smbd closed is made again first, as Windows reconnects."""
    for _attempt in range(2):
        try:
            with smbclient.open_file(unc(port, name), "wb", port=port) as handle:
                handle.write(b"\xab" * size)
            return True
        except SMBException as error:
            if "NETWORK_NAME_DELETED" not in str(error) and "NetworkNameDelegated" not in repr(error):
                assert "ACCESS_DENIED" in str(error) or "WRITE_PROTECTED" in str(error), error
                return False
            smbclient.reset_connection_cache(fail_on_error=False)
            login(port)
    raise AssertionError("the share could not be reached again")


def test_the_share_turns_read_only_below_the_watermark_and_back(run_base: Path, share_root: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    lines: list[str] = []
    with mounted_tmpfs(share_root / "small", "size=64m,mode=0775,uid=4321,gid=4322") as folder:
        settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322, min_free=24 * MiB)
        with running(settings, run_base) as smbd:
            port = smbd.port
            login(port)

            def check() -> None:
                smbd.check_space(lambda kind, **details: events.append((str(kind), details)), lines.append)

            assert write(port, "first.bin", 16 * MiB)
            check()
            assert not smbd.space_full and events == []
            assert write(port, "second.bin", 30 * MiB)  # 64 - 46 = 18 MiB free: under 24
            check()
            assert smbd.space_full and [k for k, _ in events] == ["share-readonly"], events
            assert events[0][1]["error"] is None
            assert not write(port, "third.bin", MiB), "the guest writes no more"
            assert (folder / "second.bin").stat().st_size == 30 * MiB, "what was written stays"
            (folder / "second.bin").unlink()  # room again: 48 MiB free, twice the watermark
            check()
            assert not smbd.space_full and [k for k, _ in events] == ["share-readonly", "share-writable"]
            assert write(port, "third.bin", MiB)
            assert smbd.status()["readonly_for_space"] is False and smbd.status()["min_free"] == 24 * MiB
    assert "read-only until there is room" in lines[0] and "writable" in lines[1], lines
