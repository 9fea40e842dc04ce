"""The share through ``winarm up``: smbd starts with the VM, QEMU relays the guest's 10.0.2.4:445 to it,
``winarm status`` reports it, and it ends with the VM however winarm ends. A firmware-only VM is enough here
(the guest's own use of the share is in test_install_share.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vmtools import FIRMWARE_ONLY, tree_digest, winarm


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--shared", "/nonexistent/winarm"], {}, "shared folder '/nonexistent/winarm' does not exist"),
        (["--shared", "{folder}", "--file-mode", "999"], {}, "file mode '999' is not a permission mode"),
        (["--shared", "{folder}", "--uid", "x"], {}, "uid 'x' is not a numeric id"),
        ([], {"SHARED": "{folder}", "SAMBA": "perhaps"}, "SAMBA 'perhaps' is not yes or no"),
        (["--shared", "{folder}", "--share-user", "alice"], {}, "share user 'alice' has no password"),
    ],
)
def test_bad_share_values_through_the_cli(tmp_path: Path, run_base: Path, folder: Path, *, args: list[str],
                                          env: dict[str, str], needle: str) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    before = tree_digest(storage)
    filled = [a.format(folder=folder) for a in args]
    result = winarm("up", "--name", "t", "--storage", str(storage), *FIRMWARE_ONLY, *filled,
                    env={"WINARM_RUN_DIR": str(run_base), **{k: v.format(folder=folder) for k, v in env.items()}})
    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert tree_digest(storage) == before


