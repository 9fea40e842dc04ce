"""Answer settings: which values are accepted, Setup's password obfuscation, the defaults written once.

Fast and pure: no QEMU, no Windows, nothing rendered unless a test says so.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.answer.strategies import RESERVED, valid_usernames
from tests.unit.answer.xmltools import FAST
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings, check_settings, decode_password, encode_password
from winarm.config.windows import (
    DEFAULT_COMPUTER_NAME,
    DEFAULT_DRIVERS_PASS,
    DEFAULT_LANGUAGE,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    DRIVERS_PASSES,
)
from winarm.errors import UserError

# --- password obfuscation ---------------------------------------------------------------------------------------


def test_password_known_vectors() -> None:
    # The values in Microsoft's unattend reference examples.
    assert encode_password("password") == "cABhAHMAcwB3AG8AcgBkAFAAYQBzAHMAdwBvAHIAZAA="
    assert encode_password("pw") == "cAB3AFAAYQBzAHMAdwBvAHIAZAA="
    assert (
        encode_password("pw", "AdministratorPassword")
        == "cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8AcgBkAA=="
    )
    assert encode_password("") == "UABhAHMAcwB3AG8AcgBkAA=="
    # Microsoft's own example drops the padding; Setup takes it, so do we.
    assert decode_password("cAB3AFAAYQBzAHMAdwBvAHIAZAA") == "pw"
    assert (
        decode_password("cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8AcgBkAA==", "AdministratorPassword")
        == "pw"
    )


def test_password_wrong_suffix_and_garbage() -> None:
    bare = base64.b64encode("pw".encode("utf-16-le")).decode()  # no suffix at all
    with pytest.raises(ValueError, match="does not end with 'Password'"):
        decode_password(bare, "Password")
    with pytest.raises(ValueError, match="does not end with 'AdministratorPassword'"):
        decode_password(encode_password("pw"), "AdministratorPassword")
    # "...AdministratorPassword" also ends with "Password": the obfuscation cannot tell those two apart.
    assert decode_password(encode_password("pw", "AdministratorPassword")) == "pwAdministrator"
    with pytest.raises(ValueError, match="base64"):
        decode_password("not base64!")
    with pytest.raises(ValueError):
        decode_password("YQ==")  # one byte: not UTF-16LE
    with pytest.raises(ValueError, match="kind"):
        encode_password("pw", "Secret")


@FAST
@given(st.text(max_size=40), st.sampled_from(["Password", "AdministratorPassword"]))
def test_password_round_trip(password: str, kind: str) -> None:
    value = encode_password(password, kind)
    assert value.isascii()
    assert decode_password(value, kind) == password


# --- values Windows refuses -------------------------------------------------------------------------------------


@FAST
@given(
    valid_usernames,
    st.sampled_from(sorted('"/\\[]:;|=,+*?<>@') + ["\x00", "\t", "\x7f", "\u00e9", "\u4e2d"]),
    st.integers(min_value=0, max_value=20),
)
def test_usernames_with_a_refused_character_are_refused(name: str, bad: str, where: int) -> None:
    where = min(where, len(name), 19)  # the name is cut to 20 characters below: keep the bad one in it
    with pytest.raises(UserError, match="^username "):
        check_settings(AnswerSettings(username=(name[:where] + bad + name[where:])[:20]))


@pytest.mark.parametrize("name", ["", "a" * 21, "...", " . ", " lead", "trail ", *RESERVED, "Guest", "Network Service"])
def test_usernames_windows_refuses(name: str) -> None:
    with pytest.raises(UserError) as error:
        render(AnswerSettings(username=name))
    assert "\n" not in str(error.value) and "username" in str(error.value)


@FAST
@given(
    st.text(min_size=1, max_size=30).filter(
        lambda n: not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,13}[A-Za-z0-9])?", n) or n.isdigit()
    )
)
def test_bad_computer_names_are_refused(name: str) -> None:
    with pytest.raises(UserError, match="^computer name "):
        check_settings(AnswerSettings(computer_name=name))


@pytest.mark.parametrize("name", ["12345", "A" * 16, "my_pc", "-pc", "pc-", "p c", "pc\u00e9", "", "PC\n"])
def test_computer_names_examples(name: str) -> None:
    with pytest.raises(UserError, match="computer name"):
        check_settings(AnswerSettings(computer_name=name))


@pytest.mark.parametrize("password", ["p\u00e4ss", "tab\there", "x" * 128, "\u20ac"])
def test_bad_passwords_are_refused(password: str) -> None:
    with pytest.raises(UserError, match="password") as error:
        check_settings(AnswerSettings(password=password))
    assert password not in str(error.value)  # never echo a password


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("language", "xx-XX", "language 'xx-XX' is not a Windows language tag"),
        ("language", "english", "language"),
        ("keyboard", "qwerty", "keyboard"),
        ("keyboard", "0409:0409", "keyboard"),
        ("keyboard", "de-DE;;", "keyboard"),
        ("drivers_pass", "oobeSystem", "drivers pass"),
        ("windows", "12", "Windows version"),
        ("arch", "amd64", "architecture"),
        ("edition_index", 0, "edition index"),
        ("product_key", "ABCDE-12345", "product key"),
        ("product_key", "abcde-12345-abcde-12345-abcde", "product key"),
        ("disk_id", -1, "disk number"),
        ("edition_name", "", "edition name"),
        ("edition_name", "Pro\n", "edition name"),
    ],
)
def test_other_bad_values(field: str, value: object, match: str) -> None:
    with pytest.raises(UserError, match=match):
        check_settings(AnswerSettings(**{field: value}))  # type: ignore[arg-type]


def test_both_edition_forms_refused() -> None:
    with pytest.raises(UserError, match="give one of them"):
        check_settings(AnswerSettings(edition_index=1, edition_name="Windows 11 Pro"))


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"shares": ("bad name",)}, "share name 'bad name' is not allowed"),
        ({"shares": tuple(f"S{i}" for i in range(9))}, "at most 8 can be mapped"),
        ({"shares": ("Data",), "share_user": "alice", "share_password": "two words"}, "without spaces"),
    ],
)
def test_bad_share_settings(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        check_settings(AnswerSettings(**changes))  # type: ignore[arg-type]


# --- the defaults and the drivers-pass choices, written once -----------------------------------------------------


def test_defaults_are_the_named_constants_and_pass_the_checks() -> None:
    s = AnswerSettings()
    assert (s.username, s.password, s.computer_name, s.language, s.drivers_pass) == (
        DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_COMPUTER_NAME, DEFAULT_LANGUAGE, DEFAULT_DRIVERS_PASS
    )
    assert (DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_COMPUTER_NAME, DEFAULT_LANGUAGE) == (
        "Docker", "admin", "WINARM", "en-US"
    )
    assert DEFAULT_DRIVERS_PASS in DRIVERS_PASSES
    check_settings(s)


def test_every_drivers_pass_choice_is_accepted_and_nothing_else() -> None:
    assert DRIVERS_PASSES == ("windowsPE", "specialize", "firstlogon")
    for choice in DRIVERS_PASSES:
        check_settings(AnswerSettings(drivers_pass=choice))
    for other in ("WindowsPE", "oobeSystem", "auditUser", ""):
        with pytest.raises(UserError, match=re.escape(f"use {', '.join(DRIVERS_PASSES)}")):
            check_settings(AnswerSettings(drivers_pass=other))


def test_settings_load_no_template_engine() -> None:
    """The configuration's settings table imports the defaults from here: that must not cost `winarm up` Jinja2."""
    probe = (
        "import sys, winarm.answer.settings; "
        "print(sorted(m for m in ('jinja2', 'winarm.answer.render') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
