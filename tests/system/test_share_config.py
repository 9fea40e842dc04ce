"""The shared folders' settings: every accepted and refused value, without starting anything."""

from __future__ import annotations

import os
from pathlib import Path

from winarm.config.share import ShareSettings, load_share_settings


def load(flags: dict[str, object] | None = None, env: dict[str, str] | None = None, *, euid: int = 0,
         egid: int = 0) -> ShareSettings | None:
    return load_share_settings(flags or {}, env or {}, euid=euid, egid=egid)


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
