"""No input bytes make inspect_iso raise anything but UserError, nor the WIM parser anything but WimError."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.media.isotools import GOOD_WIM
from winarm.errors import UserError
from winarm.media.iso import inspect_iso
from winarm.media.wim import HEADER_SIZE, WimError, parse_header, parse_xml


@pytest.fixture(scope="module")
def fuzz_base(good_iso: Path) -> bytes:
    return good_iso.read_bytes()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_iso_bytes_give_only_user_errors(fuzz_base: bytes, tmp_path: Path, data: st.DataObject) -> None:
    wim_at = fuzz_base.index(b"MSWIM\x00\x00\x00")
    region = data.draw(
        st.sampled_from(["descriptors", "directories", "wim header", "wim xml", "anywhere"]), label="region"
    )
    low, high = {
        "descriptors": (16 * 2048, 32 * 2048),
        "directories": (32 * 2048, wim_at),
        "wim header": (wim_at, wim_at + HEADER_SIZE),
        "wim xml": (wim_at + HEADER_SIZE, wim_at + len(GOOD_WIM)),
        "anywhere": (0, len(fuzz_base)),
    }[region]
    mutated = bytearray(fuzz_base)
    for _ in range(data.draw(st.integers(1, 8), label="changes")):
        offset = data.draw(st.integers(low, high - 1), label="offset")
        mutated[offset] = data.draw(st.integers(0, 255), label="byte")
    if data.draw(st.booleans(), label="truncate"):
        del mutated[data.draw(st.integers(0, len(mutated)), label="length") :]
    target = tmp_path / "fuzz.iso"
    target.write_bytes(bytes(mutated))
    try:
        inspect_iso(target)
    except UserError as error:
        assert "\n" not in str(error)


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=4096), count=st.integers(0, 2000))
def test_fuzzed_wim_bytes_give_only_wim_errors(blob: bytes, count: int) -> None:
    with contextlib.suppress(WimError):
        parse_header(blob if len(blob) % 3 else GOOD_WIM[:HEADER_SIZE] + blob, len(blob) + 10**6)
    with contextlib.suppress(WimError):
        parse_xml(blob if count % 2 else b"\xff\xfe" + blob.decode("latin-1").encode("utf-16-le"), count)
