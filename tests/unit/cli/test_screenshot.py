"""``winarm screenshot`` and the control socket's ``screenshot`` request. No VM runs in the unit tier: a real
:class:`ControlServer` answers with a fake screenshot handler (what the supervisor's stall watch does with
QEMU's screen), and the real command runs as a subprocess against it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from winarm.cli.main import main
from winarm.qemu.screen import Frame
from winarm.vm.control_server import ControlServer
from winarm.vm.status import VmStatus

PIXELS = bytes(range(256)) * 9  # 24 x 32 pixels, 3 bytes each


def running() -> VmStatus:
    return VmStatus(name="t", state="running", run_dir="", state_dir="")


def cli(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def where(tmp_path: Path, run_base: Path) -> dict[str, str]:
    return {"WINARM_RUN_DIR": str(run_base), "STORAGE": str(tmp_path / "storage")}


@pytest.mark.parametrize("name, message", [
    ("shot.jpg", "screenshot file '{dir}/shot.jpg' does not end in .png: name it like screen.png"),
    ("shot", "screenshot file '{dir}/shot' does not end in .png: name it like screen.png"),
    ("missing/shot.png", "screenshot file '{dir}/missing/shot.png': the folder '{dir}/missing' does not exist"),
    ("folder.png", "screenshot file '{dir}/folder.png' is a directory: give a file name ending in .png"),
])
def test_a_file_that_cannot_be_the_png_is_one_line_before_the_vm_is_asked(
        tmp_path: Path, where: dict[str, str], name: str, message: str) -> None:
    (tmp_path / "folder.png").mkdir()
    result = cli("screenshot", str(tmp_path / name), env=where)
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"winarm: {message.format(dir=tmp_path)}"]


def test_a_vm_that_is_not_running_is_one_line_and_a_failure(tmp_path: Path, where: dict[str, str]) -> None:
    result = cli("screenshot", "--name", "gone", str(tmp_path / "shot.png"), env=where)
    assert result.exit_code == 1
    assert result.output.splitlines() == ["winarm: VM 'gone' is not running: there is no screen to save (start it "
                                          "with winarm up)"]
    assert not (tmp_path / "shot.png").exists()


async def serve_and_run(run_dir: Path, handler: Any, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """A control server in ``run_dir`` with ``handler``, and ``winarm screenshot ARGS`` run against it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    async with ControlServer(run_dir / "control.sock", running, lambda: {}, handler):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "winarm", "screenshot", "--name", "t", *args, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)  # a bound for a hung client
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_the_png_the_daemon_takes_lands_in_file(tmp_path: Path, run_base: Path, where: dict[str, str]) -> None:
    asked: list[Path] = []

    async def take(path: Path) -> dict[str, Any]:
        asked.append(path)
        path.write_bytes(Frame(24, 32, PIXELS).png())
        return {"ok": True, "path": str(path), "width": 24, "height": 32}

    shot = tmp_path / "shot.png"
    code, out, err = asyncio.run(serve_and_run(run_base / "t", take, str(shot), env=where))
    assert (code, out, err) == (0, f"{shot} (24x32)\n", "")
    (made,) = asked
    assert made.parent == run_base / "t" and not made.exists(), "made in the run directory, taken away"
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (24, 32) and image.tobytes() == PIXELS


def test_a_screen_the_daemon_cannot_take_is_one_line(tmp_path: Path, run_base: Path, where: dict[str, str]) -> None:
    async def refuse(path: Path) -> dict[str, Any]:
        return {"error": "QEMU refused screendump: no surface"}

    shot = tmp_path / "shot.png"
    code, out, err = asyncio.run(serve_and_run(run_base / "t", refuse, str(shot), env=where))
    assert (code, out) == (1, "")
    assert err.splitlines() == ["winarm: VM 't': no screenshot: QEMU refused screendump: no surface"]
    assert not shot.exists()


def test_a_daemon_answer_pointing_elsewhere_is_not_followed(tmp_path: Path, run_base: Path,
                                                            where: dict[str, str]) -> None:
    """The client copies only from the daemon's own run directory (a confused daemon cannot make it read
    another file)."""
    elsewhere = tmp_path / "secret.png"
    elsewhere.write_bytes(Frame(1, 1, b"abc").png())

    async def confused(path: Path) -> dict[str, Any]:
        return {"ok": True, "path": str(elsewhere), "width": 1, "height": 1}

    shot = tmp_path / "shot.png"
    code, _, err = asyncio.run(serve_and_run(run_base / "t", confused, str(shot), env=where))
    assert code == 1 and "outside its run directory" in err and not shot.exists() and elsewhere.exists()


def test_the_request_without_a_handler_and_unknown_ones(tmp_path: Path) -> None:
    async def ask(server: ControlServer, request: bytes) -> dict[str, Any]:
        async with server:
            reader, writer = await asyncio.open_unix_connection(str(server.path))
            writer.write(request)
            reply = json.loads(await reader.readline())
            writer.close()
        assert isinstance(reply, dict)
        return reply

    plain = ControlServer(tmp_path / "c.sock", running, lambda: {})
    assert asyncio.run(ask(plain, b'{"command": "screenshot"}\n')) == {"error": "this daemon takes no screenshots"}
    assert asyncio.run(ask(plain, b'{"command": "status"}\n'))["state"] == "running", "the others unchanged"
    assert asyncio.run(ask(plain, b'["screenshot"]\n')) == {"error": "unknown command None"}


def test_help_names_the_file(where: dict[str, str]) -> None:
    result = cli("screenshot", "--help", env=where)
    assert result.exit_code == 0 and "FILE.png" in result.output and "--name" in result.output
    assert io.StringIO(result.output).readline().startswith("Usage: ")
