"""The share's desktop-ready marker: the guest is untrusted, so only a regular file counts (issue 14, finding 5:
a folder at the marker's name made every later ``winarm up`` fail with IsADirectoryError)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from winarm.guest import DESKTOP_READY_FILE
from winarm.vm.share_watch import ShareWatch


def test_a_folder_at_the_marker_name_is_left_alone_and_said_once(tmp_path: Path) -> None:
    (tmp_path / DESKTOP_READY_FILE).mkdir()
    (tmp_path / DESKTOP_READY_FILE / "keep.txt").write_text("the guest's")
    said: list[str] = []
    watch = ShareWatch(tmp_path, said.append)
    try:
        assert watch.take_marker() is False
    finally:
        watch.close()
    assert (tmp_path / DESKTOP_READY_FILE / "keep.txt").read_text() == "the guest's"
    assert len(said) == 1 and "not a regular file" in said[0], said


def test_a_link_at_the_marker_name_is_not_followed_nor_removed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("host file")
    share = tmp_path / "share"
    share.mkdir()
    (share / DESKTOP_READY_FILE).symlink_to(outside)
    watch = ShareWatch(share)
    watch.close()
    assert (share / DESKTOP_READY_FILE).is_symlink() and outside.read_text() == "host file"


def test_a_regular_file_left_by_an_earlier_run_is_removed(tmp_path: Path) -> None:
    (tmp_path / DESKTOP_READY_FILE).write_text("")
    ShareWatch(tmp_path).close()
    assert not (tmp_path / DESKTOP_READY_FILE).exists()


def test_writing_the_file_reports_ready_and_a_folder_does_not(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, list[str]]:
        ready, ignored = asyncio.Event(), asyncio.Event()
        count = 0
        said: list[str] = []

        async def on_ready() -> None:
            nonlocal count
            count += 1
            ready.set()

        def say(line: str) -> None:
            said.append(line)
            ignored.set()

        watch = ShareWatch(tmp_path, say)
        task = asyncio.create_task(watch.run(on_ready))
        (tmp_path / "other").mkdir()
        (tmp_path / "other").rename(tmp_path / DESKTOP_READY_FILE)  # a folder moved in: IN_MOVED_TO, ignored
        await asyncio.wait_for(ignored.wait(), 5)
        assert count == 0 and (tmp_path / DESKTOP_READY_FILE).is_dir()
        (tmp_path / DESKTOP_READY_FILE).rmdir()
        (tmp_path / DESKTOP_READY_FILE).write_text("")  # a regular file written: counts
        await asyncio.wait_for(ready.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return count, said

    count, said = asyncio.run(scenario())
    assert count == 1 and len(said) == 1
    assert not (tmp_path / DESKTOP_READY_FILE).exists()
