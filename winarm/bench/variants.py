"""The variants ``winarm bench`` compares: a name and the ``winarm up`` settings it changes, parsed from
``--variant``/``--set`` text (``drivers=specialize,cpus=4``), and the ``winarm up`` options they become."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from winarm.errors import UserError

KEY_ALIASES: dict[str, str] = {
    "drivers": "drivers_pass",
    "drivers_pass": "drivers_pass",
    "cpus": "cpus",
    "cpu_cores": "cpus",
    "ram": "ram",
    "ram_size": "ram",
    "accel": "accel",
    "disk_bus": "disk_bus",
    "bus": "disk_bus",
    "disk_format": "disk_format",
    "disk_size": "disk_size",
    "cpu_model": "cpu_model",
    "cpu": "cpu_model",
    "tpm": "tpm",
    "secure_boot": "secure_boot",
    "edition": "edition",
    "language": "language",
    "keyboard": "keyboard",
    "computer_name": "computer_name",
    "username": "username",
    "password": "password",
    "drivers_path": "drivers",
    "shared": "shared",
    "share": "share",
    "uid": "uid",
    "gid": "gid",
    "timeout": "timeout",
}
"""Setting names a variant may use (as written, lower case, '-' or '_'), and the ``winarm up`` option each sets."""
BOOL_KEYS = {"tpm", "secure_boot", "share"}
@dataclass(frozen=True)
class Variant:
    """A name and the ``winarm up`` settings it changes (option name -> value)."""

    name: str
    settings: Mapping[str, str]


def parse_settings(text: str, what: str = "variant") -> dict[str, str]:
    """``key=value[,key=value...]`` into ``{option: value}``. Raises :class:`UserError` naming the bad part."""
    settings: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not key or not value.strip():
            raise UserError(
                f"{what} {text!r}: {part!r} is not key=value: write for example drivers=specialize,cpus=4"
            )
        option = KEY_ALIASES.get(key)
        if option is None:
            known = ", ".join(sorted(set(KEY_ALIASES)))
            raise UserError(f"{what} {text!r}: {key!r} is not a setting winarm bench can vary: use one of {known}")
        if option in settings:
            raise UserError(f"{what} {text!r}: {key!r} is given twice")
        settings[option] = value.strip()
    return settings


def parse_variant(text: str) -> Variant:
    """A ``--variant`` value, optionally named: ``NAME:key=value,...``; the name defaults to the text."""
    label, sep, rest = text.partition(":")
    if sep and "=" not in label:
        return Variant(label.strip(), parse_settings(rest))
    return Variant(text.strip(), parse_settings(text))


def up_options(settings: Mapping[str, str]) -> list[str]:
    """The ``winarm up`` command-line options for ``settings`` (booleans as ``--x``/``--no-x``)."""
    argv: list[str] = []
    for option, value in settings.items():
        flag = "--" + option.replace("_", "-")
        if option in BOOL_KEYS:
            on = value.strip().lower() in ("y", "yes", "1", "true", "on")
            argv.append(flag if on else "--no-" + option.replace("_", "-"))
        elif option == "drivers":
            argv += ["--drivers", value]
        else:
            argv += [flag, value]
    return argv
