"""No child of winarm gets its secrets (issue 14, finding 9: PASSWORD, SHARE_PASSWORD and VNC_PASSWORD in the
environment were inherited by QEMU, swtpm and every relay). A real child reads its own /proc/self/environ."""

from __future__ import annotations

import subprocess

import pytest

from winarm.procs import child_environment, spawn

SECRETS = {"PASSWORD": "p-admin-1", "SHARE_PASSWORD": "p-share-2", "VNC_PASSWORD": "p-vnc-3", "KEY": "p-key-4",
           "SOMETHING_PASSWORD": "p-other-5"}


def environ_of_child(env: dict[str, str] | None = None) -> bytes:
    child = spawn(["cat", "/proc/self/environ"], stdout=subprocess.PIPE, env=env)
    out, _ = child.communicate(timeout=10)
    return out


def test_a_child_gets_winarms_environment_without_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WINARM_HARMLESS", "kept")
    seen = environ_of_child()
    assert b"WINARM_HARMLESS=kept" in seen
    for value in SECRETS.values():
        assert value.encode() not in seen, value


def test_an_environment_given_is_cleaned_too() -> None:
    seen = environ_of_child({"PATH": "/usr/bin:/bin", **SECRETS})
    assert seen.split(b"\0")[:-1] == [b"PATH=/usr/bin:/bin"]


def test_child_environment_is_a_copy() -> None:
    given = {"PASSWORD": "x", "A": "b"}
    assert child_environment(given) == {"A": "b"} and given == {"PASSWORD": "x", "A": "b"}
