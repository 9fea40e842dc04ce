"""Hostile values cannot escape their field: arbitrary text (hypothesis) in every string setting.

- QEMU's argv: storage and ISO paths of any text; each ``key=value,...`` option is parsed back the way QEMU
  parses it (a doubled comma is a comma) and must have exactly the keys winarm wrote, the path whole in its own.
- The answer file: username, password, computer name, language, keyboard, product key and share login of any
  text are either refused with one line or rendered into XML that parses, validates and gives each value back.
- The answer medium: whatever the values, its ISO holds only the file names winarm chose.
- (A real VM on a storage path full of separators: tests/system/test_hostile_values.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pycdlib
import pytest
from defusedxml import ElementTree
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from winarm.answer.logon_scripts import share_login
from winarm.answer.medium import medium_files, product_key_files, write_iso
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings, check_settings, decode_password
from winarm.answer.validate import validate
from winarm.config.host import HostFacts
from winarm.config.paths import VmPaths
from winarm.config.vm import load_config
from winarm.errors import UserError
from winarm.media.drivers import DRIVER_FILE_RE, DriverRequest, pick_drivers
from winarm.qemu.argv import Endpoints, build_argv
from winarm.qemu.firmware import Firmware
from winarm_testbed.virtio_tree import make_fake_virtio_tree

NS = {"u": "urn:schemas-microsoft-com:unattend"}
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
FW = Firmware("test", Path("/fw/CODE.fd"), Path("/fw/VARS.fd"), False, Path("/fw/x.json"))
# a file name of any characters a Linux file name can hold (no '/', no NUL), "." and ".." excluded
file_names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]), min_size=1,
                     max_size=40).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 200)
anything = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


def qemu_options(text: str) -> list[tuple[str, str]]:
    """Split a QEMU option string as QEMU does: ``,`` separates, ``,,`` is a literal comma, ``key=value``."""
    parts, current, i = [], "", 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1 : i + 2] == ",":
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    parts.append(current)
    return [(p.split("=", 1)[0], p.split("=", 1)[1] if "=" in p else "") for p in parts]


@FAST
@given(storage_name=file_names, iso_name=file_names)
def test_any_path_stays_whole_in_its_qemu_option(tmp_path: Path, host: HostFacts, storage_name: str,
                                                 iso_name: str) -> None:
    storage = tmp_path / "s" / storage_name
    iso = tmp_path / "i" / iso_name
    iso.parent.mkdir(exist_ok=True)
    iso.write_bytes(b"")
    cfg = load_config({"storage": str(storage), "run_base": str(tmp_path / "r"), "disk_size": "1G", "iso": str(iso),
                       "unattend": False}, {}, host)
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    argv = build_argv(cfg, FW, paths, Endpoints(qmp=7, serial=8), media=[iso], tpm_socket=paths.tpm_socket)
    drives = [dict(qemu_options(argv[i + 1])) for i, a in enumerate(argv) if a == "-drive"]
    assert [d["file"] for d in drives] == [str(FW.code), str(paths.efivars), str(paths.disk), str(iso)]
    assert [sorted(d) for d in drives] == [
        ["file", "format", "if", "readonly", "unit"], ["file", "format", "if", "unit"],
        ["cache", "detect-zeroes", "discard", "file", "format", "id", "if"],
        ["file", "format", "id", "if", "media", "readonly"]]
    tpm = [dict(qemu_options(argv[i + 1])) for i, a in enumerate(argv) if a == "-chardev" and "chrtpm" in argv[i + 1]]
    assert tpm == [{"socket": "", "id": "chrtpm", "path": str(paths.tpm_socket)}]


def mostly(good: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Good values with arbitrary text mixed in, so both the refusal and the round trip are exercised."""
    return st.one_of(good, good, anything)


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@FAST
@given(username=mostly(st.from_regex(r"\A[A-Za-z0-9._-][A-Za-z0-9 ._-]{0,18}[A-Za-z0-9._-]\Z")),
       password=mostly(printable), computer=mostly(st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,13}[A-Za-z0-9]\Z")),
       language=mostly(st.sampled_from(["en-US", "de-DE", "ja-JP"])), keyboard=mostly(st.just("")),
       key=mostly(st.one_of(st.just(""), st.from_regex(r"\A[A-Z0-9]{5}(-[A-Z0-9]{5}){4}\Z"))),
       share_user=mostly(st.one_of(st.just(""), st.from_regex(r"\A[a-z][a-z0-9]{0,8}\Z"))),
       share_password=mostly(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20)))
@example(username="E", password="", computer="J", language="en-US", keyboard="", key="", share_user="A",
         share_password="0")  # a share login always tried: hypothesis found the stale expectation only by chance
def test_any_answer_value_is_refused_or_comes_back_whole(*, username: str, password: str, computer: str,
                                                         language: str, keyboard: str, key: str, share_user: str,
                                                         share_password: str) -> None:
    values = AnswerSettings(username=username, password=password, computer_name=computer, language=language,
                            keyboard=keyboard or None, product_key=key or None, shares=("Data",),
                            share_user=share_user or None, share_password=share_password if share_user else None)
    try:
        check_settings(values)
    except UserError as error:
        assert "\n" not in str(error) and str(error)
        return
    event("accepted")
    text = render(values)
    assert validate(text) == []
    root = ElementTree.fromstring(text.encode())
    assert [n.text for n in root.iterfind(".//u:LocalAccount/u:Name", NS)] == [username]
    assert [decode_password(v.text or "") for v in root.iterfind(".//u:Password/u:Value", NS)] == [password] * 2
    assert [c.text for c in root.iter("{urn:schemas-microsoft-com:unattend}ComputerName")] == [computer]
    assert [k.text for k in root.iterfind(".//u:ProductKey/u:Key", NS)] == [], "never a key for Setup"
    if key:
        assert key not in text and product_key_files(values)[1].read() == f"{key}\r\n".encode(), "on the medium"
    commands = [c.text for c in root.iter("{urn:schemas-microsoft-com:unattend}CommandLine")]
    if share_user:  # issue 13, item 14: the login is on the medium, in no command line Setup keeps
        assert not any(share_password in (c or "") and "/pass" in (c or "") for c in commands), commands
        assert share_login(values) == f"{share_user} {share_password}\r\n".encode()


@pytest.fixture(scope="module")
def driver_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_virtio_tree(tmp_path_factory.mktemp("virtio") / "virtio-win", windows=("11",), payload=16)


def medium_names(iso_path: Path) -> tuple[list[str], list[str]]:
    """The file paths of an ISO as its Joliet and its UDF trees name them."""
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        trees = []
        for kind in ("joliet_path", "udf_path"):
            trees.append(sorted(f"{root}/{name}".lstrip("/") for root, _, names in iso.walk(**{kind: "/"})
                                for name in names))
    finally:
        iso.close()
    return trees[0], trees[1]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(extra=st.lists(file_names, max_size=4, unique=True))
def test_the_answer_medium_holds_only_plain_names(driver_tree: Path, tmp_path: Path, extra: list[str]) -> None:
    """A driver folder holding files of any name: the medium gets the plain ones, each whole, and nothing else."""
    tree = tmp_path / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(driver_tree, tree)
    storage_folder = next(tree.glob("viostor/w11/ARM64"))
    for name in extra:
        (storage_folder / name).write_bytes(b"x")
    request = DriverRequest("11", "virtio-blk", "specialize", {"virtio-blk-pci"}, secure_boot=False)
    selection = pick_drivers(tree, request)
    files = medium_files(AnswerSettings(), selection)
    out = tmp_path / "answer.iso"
    write_iso(files, out)
    joliet, udf = medium_names(out)
    expected = sorted(f.path for f in files)
    assert joliet == expected and udf == expected
    plain = {n for n in extra if DRIVER_FILE_RE.fullmatch(n)}
    winpe = {f.path.rsplit("/", 1)[1] for f in files if f.path.startswith("$WinPEDriver$/")}
    assert plain <= winpe and not ({*extra} - plain) & winpe


