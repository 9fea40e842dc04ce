"""The ISOs the reader's tests share (built once for the package, the big one sparse) and the read counter."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.unit.media.isotools import EDITION_BYTES, EDITIONS, CountingFile, GiB
from winarm.media import iso as isoread
from winarm_testbed.wim_image import build_bridge_iso


@pytest.fixture(scope="package")
def isos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isos")


@pytest.fixture(scope="package")
def good_iso(isos: Path) -> Path:
    return build_bridge_iso(isos / "good.iso", editions=EDITIONS, build="26100", image_bytes=EDITION_BYTES)


@pytest.fixture(scope="package")
def big_iso(isos: Path) -> Path:
    """A 1 GiB install.wim (sparse on disk): the XML sits past a gigabyte of padding."""
    return build_bridge_iso(isos / "big.iso", wim_padding=GiB)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CountingFile]]:
    opened: list[CountingFile] = []

    def fake_open(path: Path) -> BinaryIO:
        handle = CountingFile(path)
        opened.append(handle)
        return io.BufferedReader(handle)

    monkeypatch.setattr(isoread, "_open", fake_open)
    yield opened
