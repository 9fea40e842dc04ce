"""swtpm's and smbd's own ends, on a stand-in process (``sleep``): the programs themselves run in the system
tier; what is tested here is only how each ends a child it holds."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from winarm.config.share import Share, ShareSettings
from winarm.procs import spawn
from winarm.services.smbd import Smbd
from winarm.services.swtpm import Swtpm


def test_swtpm_wait_returns_its_status_and_close_ends_it_gracefully(tmp_path: Path) -> None:
    swtpm = Swtpm(tmp_path / "tpm", tmp_path / "tpm.sock", tmp_path / "swtpm.log")
    assert asyncio.run(swtpm.wait()) is None, "a swtpm never started has ended at once"
    swtpm.proc = spawn(["sleep", "60"])
    assert swtpm.alive and swtpm.returncode is None
    asyncio.run(swtpm.close())
    assert not swtpm.alive and swtpm.returncode == -signal.SIGTERM, "SIGTERM first, not a kill"
    assert asyncio.run(swtpm.wait()) == -signal.SIGTERM


def test_kill_now_kills_and_reaps_synchronously_and_is_safe_twice(tmp_path: Path) -> None:
    swtpm = Swtpm(tmp_path / "tpm", tmp_path / "tpm.sock", tmp_path / "swtpm.log")
    swtpm.proc = spawn(["sleep", "60"])
    swtpm.kill_now()
    assert swtpm.proc.returncode == -signal.SIGKILL, "reaped, with the kill's status"
    swtpm.kill_now()
    smbd = Smbd(ShareSettings(shares=(Share("Data", tmp_path),), uid=4321, gid=4322), tmp_path / "samba", port=1)
    smbd.proc = spawn(["sleep", "60"])
    smbd.kill_now()
    assert smbd.proc.returncode == -signal.SIGKILL and not smbd.alive
    asyncio.run(asyncio.wait_for(smbd.supervise(lambda kind, **details: None, lambda line: None), 5))
    assert smbd.pid == smbd.proc.pid, "a smbd killed by the teardown is not restarted"
