"""The shared folders' settings: every accepted and refused value, without starting anything."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winarm.config.share import Share as ShareEntry
from winarm.config.share import ShareSettings, check_path, load_share_settings, parse_mode
from winarm.errors import UserError
from winarm.services.smb_conf import render_conf


def load(flags: dict[str, object] | None = None, env: dict[str, str] | None = None, *, euid: int = 0,
         egid: int = 0) -> ShareSettings | None:
    return load_share_settings(flags or {}, env or {}, euid=euid, egid=egid)


def test_off_without_a_folder_and_off_by_flag_or_env(share_root: Path) -> None:
    if Path("/shared").is_dir():  # pragma: no cover - depends on the machine
        pytest.skip("this machine has a /shared directory, which is shared by default")
    assert load() is None
    assert load({"shared": (str(share_root),), "share": False}) is None
    assert load({"shared": (str(share_root),)}, {"SAMBA": "N"}) is None


def test_defaults_owner_of_the_folder_when_root(share_root: Path) -> None:
    os.chown(share_root, 4321, 4322)
    s = load({"shared": (str(share_root),)})
    assert s is not None
    assert (s.uid, s.gid, s.file_mode, s.dir_mode) == (4321, 4322, 0o664, 0o775)
    assert s.shares == (ShareEntry("Data", share_root, False),)
    assert s.guest_login and s.port is None


def test_environment_names_and_puid_convention(share_root: Path) -> None:
    s = load({}, {"SHARED": str(share_root), "PUID": "1001", "PGID": "1002", "SHARE_FILE_MODE": "0640",
                  "SHARE_DIR_MODE": "750", "SAMBA_READONLY": "Y"})
    assert s is not None
    assert (s.uid, s.gid, s.file_mode, s.dir_mode) == (1001, 1002, 0o640, 0o750)
    assert s.shares[0].readonly
    # UID/GID win over PUID/PGID, flags over both
    os.chmod(share_root, 0o777)
    s = load({"uid": "7"}, {"SHARED": str(share_root), "UID": "5", "PUID": "6", "GID": "8", "PGID": "9"})
    assert s is not None and (s.uid, s.gid) == (7, 8)


def test_named_shares(share_root: Path) -> None:
    for name in ("a", "b=c"):
        (share_root / name).mkdir()
        os.chown(share_root / name, 4321, 4321)
    s = load({"shared": (f"Music={share_root / 'a'}", str(share_root / "b=c"))})
    assert s is not None
    assert [(x.name, x.path) for x in s.shares] == [("Music", share_root / "a"), ("Data", share_root / "b=c")]


def test_non_root_owner_is_winarm_s_own_user(share_root: Path) -> None:
    os.chown(share_root, 1000, 1000)
    s = load({"shared": (str(share_root),)}, euid=1000, egid=1000)
    assert s is not None and (s.uid, s.gid) == (1000, 1000)


@pytest.mark.parametrize(
    ("flags", "env", "euid", "needle"),
    [
        ({"shared": ("/nonexistent/winarm-share",)}, {}, 0, "does not exist: create it, or pass --no-share"),
        ({"shared": ("{file}",)}, {}, 0, "is not a directory"),
        ({"shared": ("{dir}",), "uid": "1234"}, {}, 1000, "cannot give the share's files another owner"),
        ({"shared": ("{dir}",), "gid": "1234"}, {}, 1000, "cannot give the share's files another group"),
        ({"shared": ("{dir}",), "uid": "12a"}, {}, 0, "uid '12a' is not a numeric id"),
        ({"shared": ("{dir}",), "uid": "-1"}, {}, 0, "uid '-1' is not a numeric id"),
        ({"shared": ("{dir}",), "file_mode": "0999"}, {}, 0, "file mode '0999' is not a permission mode"),
        ({"shared": ("{dir}",), "file_mode": "01777"}, {}, 0, "is not a permission mode"),
        ({"shared": ("{dir}",), "dir_mode": "0444"}, {}, 0, "does not let the owner enter and write"),
        ({"shared": ("{dir}", "{dir}")}, {}, 0, "has no name and another one has none either"),
        ({"shared": ("X={dir}", "x={dir}")}, {}, 0, "share name 'x' is given twice"),
        ({"shared": ("global={dir}",)}, {}, 0, "share name 'global' is reserved"),
        ({"shared": ("bad name={dir}",)}, {}, 0, "share name 'bad name' is not allowed"),
        ({"shared": ("{dir}",), "share_password": "x"}, {}, 0, "without a share user"),
        ({"shared": ("{dir}",), "share_user": "guest", "share_password": "x"}, {}, 0, "share user 'guest' is not"),
        ({"shared": ("{dir}",), "share_user": "alice"}, {}, 0, "has no password"),
        ({"shared": ("{dir}",), "share_user": "alice", "share_password": "a b"}, {}, 0, "without spaces"),
        ({"shared": ("{dir}",), "share_user": "alice", "share_password": "a&b"}, {}, 0, "without spaces"),
        ({"shared": ("{dir}",), "share_user": "alice", "share_password": "pässwort"}, {}, 0, "printable ASCII"),
        ({"shared": ("{dir}",), "share_port": "70000"}, {}, 0, "is not a TCP port"),
        ({"shared": ("{dir}",), "share_port": "445"}, {}, 1000, "needs root"),
        ({"shared": ("{dir}",)}, {"SAMBA": "maybe"}, 0, "SAMBA 'maybe' is not yes or no"),
        ({"shared": ("{dir}",)}, {"SAMBA_READONLY": "perhaps"}, 0, "SAMBA_READONLY 'perhaps' is not yes or no"),
    ],
)
def test_bad_values_are_one_clear_line(share_root: Path, flags: dict[str, object], env: dict[str, str], euid: int,
                                       needle: str) -> None:
    folder = share_root / "dir"
    folder.mkdir()
    os.chown(folder, euid or 4321, euid or 4321)  # not root's: root as the default owner is refused
    (share_root / "file").write_text("x")

    def fill(value: object) -> object:
        if isinstance(value, tuple):
            return tuple(str(v).format(dir=folder, file=share_root / "file") for v in value)
        return value

    with pytest.raises(UserError) as caught:
        load({k: fill(v) for k, v in flags.items()}, env, euid=euid, egid=euid)
    message = str(caught.value)
    assert needle in message, message
    assert "\n" not in message


def test_not_writable_by_the_owner_unless_read_only(share_root: Path) -> None:
    os.chown(share_root, 0, 0)
    os.chmod(share_root, 0o755)
    (share_root / "theirs.txt").write_text("x")  # not empty: not winarm's to take over
    with pytest.raises(UserError, match="is not writable by uid 1000 gid 1000: chown it"):
        load({"shared": (str(share_root),), "uid": "1000", "gid": "1000"})
    with pytest.raises(UserError, match="is not writable by uid 1000 gid 1000: chown it"):
        load({"shared": (str(share_root),), "uid": "1000", "gid": "1000"}, euid=1000, egid=1000)
    assert load({"shared": (str(share_root),), "uid": "1000", "gid": "1000", "share_readonly": True}) is not None
    os.chmod(share_root, 0o775)
    os.chown(share_root, 0, 1000)  # the group may write: enough
    assert load({"shared": (str(share_root),), "uid": "1000", "gid": "1000"}) is not None


def test_a_folder_the_owner_cannot_reach(tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    os.chown(folder, 1000, 1000)
    with pytest.raises(UserError, match="cannot be reached by uid 1000 gid 1000: .* has mode 0700"):
        load({"shared": (str(folder),), "uid": "1000", "gid": "1000"})


def test_port_in_use_is_refused() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"share port {port} on 127.0.0.1 is in use"):
            load({"shared": ("/tmp",), "share_port": str(port), "share_readonly": True, "uid": "0"})


@pytest.mark.parametrize("place", ["/", "/etc", "/usr/share", "/home", "/var", "/proc/self", "/dev"])
def test_a_system_folder_is_refused_unless_read_only(place: str) -> None:
    """Issue 14, finding 3: --shared / and --shared /etc were accepted, writable, as root."""
    with pytest.raises(UserError, match="system folder"):
        load({"shared": (place,), "uid": "0"})
    if place not in ("/proc/self", "/dev"):
        assert load({"shared": (place,), "uid": "0", "share_readonly": True}) is not None


def test_a_link_to_a_system_folder_counts_as_that_folder(share_root: Path) -> None:
    (share_root / "innocent").symlink_to("/etc")
    with pytest.raises(UserError, match="system folder /etc"):
        load({"shared": (str(share_root / "innocent"),), "uid": "0"})


def test_a_share_overlapping_the_storage_is_refused(share_root: Path) -> None:
    storage = share_root / "storage"
    storage.mkdir()
    for shared in (share_root, storage, storage / "windows"):
        shared.mkdir(exist_ok=True)
        with pytest.raises(UserError, match="overlaps winarm's storage"):
            load({"shared": (str(shared),), "uid": "0", "storage": str(storage)})
    elsewhere = share_root / "music"
    elsewhere.mkdir()
    assert load({"shared": (str(elsewhere),), "uid": "0", "storage": str(storage)}) is not None


def test_root_as_the_owner_only_when_asked(share_root: Path) -> None:
    """Issue 14, finding 3: a root-owned folder (Docker's auto-created ./shared) made Windows' files root's."""
    folder = share_root / "docker-made"
    folder.mkdir()
    with pytest.raises(UserError, match="belongs to root, so Windows' files would too"):
        load({"shared": (str(folder),)})
    assert load({"shared": (str(folder),), "uid": "0", "gid": "0"}) is not None
    settings_ = load({"shared": (str(folder),)}, {"UID": "1000", "GID": "1000"})
    assert settings_ is not None and (settings_.uid, settings_.gid) == (1000, 1000)


@pytest.mark.parametrize("password", ["*", "/delete", "/user:x"])
def test_a_password_net_use_would_read_otherwise_is_refused(share_root: Path, password: str) -> None:
    os.chown(share_root, 4321, 4321)
    with pytest.raises(UserError, match="cannot be '\\*' or start with '/'"):
        load({"shared": (str(share_root),), "share_user": "alice", "share_password": password})


def test_the_share_password_from_a_file(share_root: Path, tmp_path: Path) -> None:
    os.chown(share_root, 4321, 4321)
    secret = tmp_path / "share-password"
    secret.write_text("from-a-file\n")
    s = load({"shared": (str(share_root),), "share_user": "alice"}, {"SHARE_PASSWORD_FILE": str(secret)})
    assert s is not None and s.password == "from-a-file"
    with pytest.raises(UserError, match="share password file .* cannot be read"):
        load({"shared": (str(share_root),), "share_user": "alice", "share_password_file": str(tmp_path / "none")})


@pytest.mark.parametrize("text", ["/tmp/a\nb", "/tmp/a%Ub", "/tmp/ab\\", "/tmp/ab ", "/tmp/\x7f"])
def test_paths_smb_conf_cannot_hold(text: str) -> None:
    with pytest.raises(UserError):
        check_path(Path(text))


@pytest.mark.parametrize(("text", "mode"), [("0664", 0o664), ("664", 0o664), ("0o750", 0o750), ("0", 0)])
def test_modes(text: str, mode: int) -> None:
    assert parse_mode(text, "file mode") == mode


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_accepted_path_stays_one_line_of_its_own_section(tail: str) -> None:
    """Whatever a folder is called, the rendered smb.conf has the same sections and one ``path =`` line."""
    path = Path("/srv") / tail.replace("/", "_").replace("\x00", "_")
    try:
        check_path(path)
    except UserError:
        return
    s = ShareSettings(shares=(ShareEntry("Data", path),), uid=1, gid=1)
    text = render_conf(s, Path("/run/winarm/x/samba"), 4450)
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("[")] == ["[global]", "[Data]"]
    assert [line for line in lines if line.startswith("path = ")] == [f"path = {path}"]


def test_an_empty_root_owned_folder_is_adopted_for_the_owner(share_root: Path, tmp_path: Path) -> None:
    """What `docker run -v ./shared:/shared` makes: an empty folder owned by root, 0755."""
    os.chown(share_root, 0, 0)
    os.chmod(share_root, 0o755)
    s = load({"shared": (str(share_root),), "uid": "1000", "gid": "1000"})
    assert s is not None and s.shares[0].adopt
    from winarm.services.smbd import Smbd

    Smbd(s, tmp_path / "samba").write_files()
    st = share_root.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o775)
