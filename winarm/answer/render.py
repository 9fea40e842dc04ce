"""The answer file (``Autounattend.xml``) and the driver script that go on the answer medium.

:func:`render` turns :class:`AnswerSettings` into the XML through the Jinja2 templates in ``unattend/`` (autoescaped,
so no value can break or inject XML) and checks the result with :func:`validate`. :func:`validate` needs no Windows:
it reads the XML with expat (line numbers kept, DTDs refused) and checks it against the table in
``unattend/rules.json``: passes, component attributes, which component and setting is valid in which pass, list
items and their keys, length limits, and obfuscated passwords.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

import jinja2

from winarm.config.share import SHARE_NAME_RE, check_share_login
from winarm.config.windows import (
    TEMPLATE_DIR,
    check_account,
    keyboard_ids,
    language_tag,
)
from winarm.errors import RuntimeFailure, UserError
from winarm.guest import (
    DESKTOP_READY,
    DESKTOP_READY_FILE,
    MARKER_PREFIX,
    MEDIUM_DRIVERS_DIR,
    MEDIUM_MARKER,
    MEDIUM_SCRIPT,
    SHARE_ADDRESS,
)
from winarm.guest import SHARE_HOSTNAME as SHARE_HOST

DRIVERS_PASSES = ("windowsPE", "specialize", "firstlogon")

PASSWORD_KINDS = ("Password", "AdministratorPassword")
PNPUTIL_SUCCESS = (0, 259, 3010, 1641)
DRIVE_LETTERS = "CDEFGHIJKLMNOPQRSTUVWXYZ"
DESKTOP_READY_COMMAND = f"cmd.exe /c echo {MARKER_PREFIX} {DESKTOP_READY} > COM1"
RUN_KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run"


def run_key_command(value: str, command: str) -> str:
    """A command that registers ``command`` to run at every logon (the machine's Run key, value ``value``)."""
    return f'reg.exe add {RUN_KEY} /v {value} /t REG_SZ /d "{command}" /f'


def share_marker_command(share: str) -> str:
    """A command that writes the desktop-ready marker file to ``share``."""
    return rf"cmd.exe /c echo {MARKER_PREFIX} {DESKTOP_READY}>\\{SHARE_HOST}\{share}\{DESKTOP_READY_FILE}"

BYPASS_NRO_COMMAND = (
    r"reg add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\OOBE /v BypassNRO /t REG_DWORD /d 1 /f"
)
SHARE_LETTERS = "ZYXWVUTS"
HOSTS_COMMAND = (
    rf"cmd.exe /c (echo.& echo {SHARE_ADDRESS} {SHARE_HOST})>>%WINDIR%\System32\drivers\etc\hosts"
)
_LANMAN = r"HKLM\SYSTEM\CurrentControlSet\Services\LanmanWorkstation\Parameters"
GUEST_AUTH_COMMAND = rf'reg.exe add "{_LANMAN}" /v AllowInsecureGuestAuth /t REG_DWORD /d 1 /f'
"""Windows 11 24H2 and Windows 10 Enterprise/Education refuse guest logons to SMB servers by default."""
NO_SIGNING_COMMAND = rf'reg.exe add "{_LANMAN}" /v RequireSecuritySignature /t REG_DWORD /d 0 /f'
"""Windows 11 24H2 requires SMB signing, which a guest session cannot do."""
MAX_PATH = 259
MAX_COMMAND_LINE = 1024

DRIVER_FOLDER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EDITION_NAME_RE = re.compile(r"[ -~]{1,128}")


@dataclass(frozen=True)
class AnswerSettings:
    """What the answer file says. Only :func:`check_settings` decides whether the values are acceptable."""

    windows: str = "11"
    arch: str = "arm64"
    username: str = "Docker"
    password: str = field(default="admin", repr=False)
    computer_name: str = "WINARM"
    language: str = "en-US"
    keyboard: str | None = None
    edition_index: int | None = None
    edition_name: str | None = None
    product_key: str | None = None
    disk_id: int = 0
    autologon: bool = True
    tpm: bool = True
    secure_boot: bool = True
    bypass_ram_check: bool = False
    bypass_nro: bool = True
    drivers_pass: str = "specialize"
    has_drivers: bool = True
    shares: tuple[str, ...] = ()
    """Share names the guest maps at first logon (Z:, Y:, ...) from \\\\host.lan."""
    share_user: str | None = None
    share_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Finding:
    """One problem :func:`validate` found: the line it is on, the rule's name and what is wrong."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class _Command:
    description: str
    line: str


# --- data files -------------------------------------------------------------------------------------------------


@functools.cache
def _rules() -> dict[str, Any]:
    """``unattend/rules.json``; raises :class:`RuntimeFailure` when it is missing or broken."""
    path = TEMPLATE_DIR / "rules.json"
    try:
        rules: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeFailure(f"cannot read the validator's rules {path}: {error}") from None
    return rules


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("xml", "xml.j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _template(name: str) -> jinja2.Template:
    try:
        return _environment().get_template(name)
    except jinja2.TemplateError as error:
        raise RuntimeFailure(f"cannot load the template {TEMPLATE_DIR / name}: {error}") from None


# --- passwords --------------------------------------------------------------------------------------------------


def encode_password(password: str, kind: str = "Password") -> str:
    """Setup's obfuscation of a password (``<PlainText>false</PlainText>``): base64 of UTF-16LE(password + kind).

    ``kind`` is ``Password`` (local accounts, AutoLogon) or ``AdministratorPassword``. Raises ValueError for any
    other kind. This hides nothing: anyone can decode it.
    """
    if kind not in PASSWORD_KINDS:
        raise ValueError(f"password kind {kind!r} is not one of {', '.join(PASSWORD_KINDS)}")
    return base64.b64encode((password + kind).encode("utf-16-le")).decode("ascii")


def decode_password(value: str, kind: str = "Password") -> str:
    """The password inside an :func:`encode_password` value (missing ``=`` padding is tolerated, as Setup does).

    Raises ValueError when the value is not base64 of UTF-16LE text, or does not end with ``kind``.
    """
    if kind not in PASSWORD_KINDS:
        raise ValueError(f"password kind {kind!r} is not one of {', '.join(PASSWORD_KINDS)}")
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
        plain = raw.decode("utf-16-le")
    except (binascii.Error, ValueError):
        raise ValueError("the value is not base64 of UTF-16LE text") from None
    if not plain.endswith(kind):
        raise ValueError(f"the decoded value does not end with {kind!r}")
    return plain[: -len(kind)]


# --- settings ---------------------------------------------------------------------------------------------------


def check_settings(s: AnswerSettings) -> None:  # noqa: C901
    """Check every value of ``s`` before anything is rendered.

    Raises :class:`UserError` with one line naming the first bad value and what would be accepted: a username
    Windows refuses (empty, over 20 characters, a built-in account or group name, one of ``"/\\[]:;|=,+*?<>@`` or a
    control character, only dots and spaces, a leading or trailing space), a non-ASCII or over-long password or
    username, a computer name that is not 1-15 letters, digits and inner hyphens or is all digits, an unknown
    language or keyboard, both or a bad edition index/name, a malformed product key, a negative disk, an unknown
    Windows version, architecture or drivers pass.
    """
    if s.windows not in ("11", "10"):
        raise UserError(f"Windows version {ascii(s.windows)} is not supported: use 11 or 10")
    if s.arch != "arm64":
        raise UserError(f"architecture {ascii(s.arch)} is not supported: winarm installs arm64 only")
    if s.drivers_pass not in DRIVERS_PASSES:
        raise UserError(f"drivers pass {ascii(s.drivers_pass)} is not known: use {', '.join(DRIVERS_PASSES)}")
    check_account(s.username, s.password, s.computer_name, s.language, keyboard=s.keyboard, product_key=s.product_key)
    if s.edition_index is not None and s.edition_name is not None:
        raise UserError("both an edition index and an edition name were given: give one of them")
    if s.edition_index is not None and not 1 <= s.edition_index <= 99:
        raise UserError(f"edition index {s.edition_index} is out of range: use the image's index, from 1")
    if s.edition_name is not None and not EDITION_NAME_RE.fullmatch(s.edition_name):
        raise UserError(
            f"edition name {ascii(s.edition_name)} is not usable: give the image's name as printable ASCII, "
            "like 'Windows 11 Pro'"
        )
    if not 0 <= s.disk_id <= 63:
        raise UserError(f"disk number {s.disk_id} is out of range: use 0 to 63 (0 is the first disk)")
    if len(s.shares) > len(SHARE_LETTERS):
        raise UserError(f"{len(s.shares)} shares: at most {len(SHARE_LETTERS)} can be mapped to drive letters")
    for name in s.shares:
        if not SHARE_NAME_RE.fullmatch(name):
            raise UserError(f"share name {ascii(name)} is not allowed: use 1-64 letters, digits, '.', '_' or '-'")
    if s.share_user is not None:
        check_share_login(s.share_user, s.share_password)


# --- rendering --------------------------------------------------------------------------------------------------


def driver_command() -> str:
    """The one command line that finds the answer medium by :data:`MEDIUM_MARKER` and runs :data:`MEDIUM_SCRIPT`."""
    letters = " ".join(DRIVE_LETTERS)
    return (
        f"cmd.exe /c for %d in ({letters}) do @if exist %d:\\{MEDIUM_MARKER} call %d:\\{MEDIUM_SCRIPT}"
    )


def _context(s: AnswerSettings) -> dict[str, Any]:  # noqa: C901, PLR0912
    drivers = s.has_drivers and s.drivers_pass != "windowsPE"
    specialize = []
    if s.bypass_nro:
        specialize.append(_Command("Allow setup without a network (BypassNRO)", BYPASS_NRO_COMMAND))
    if drivers and s.drivers_pass == "specialize":
        specialize.append(_Command("Install the virtio drivers from the winarm medium", driver_command()))
    firstlogon = []
    if drivers and s.drivers_pass == "firstlogon":
        firstlogon.append(_Command("Install the virtio drivers from the winarm medium", driver_command()))
    if s.shares:
        specialize.append(_Command(f"Name the host {SHARE_HOST} for the shared folders", HOSTS_COMMAND))
        if s.share_user is None:
            specialize.append(_Command("Allow guest access to the shared folders", GUEST_AUTH_COMMAND))
            specialize.append(_Command("Guest SMB sessions cannot sign", NO_SIGNING_COMMAND))
        else:
            firstlogon.append(_Command(
                "Remember the shared folders' login",
                f"cmdkey.exe /add:{SHARE_HOST} /user:{s.share_user} /pass:{s.share_password}",
            ))
        for letter, name in zip(SHARE_LETTERS, s.shares, strict=False):
            login = "" if s.share_user is None else f" {s.share_password} /user:{s.share_user}"
            firstlogon.append(_Command(
                f"Map the shared folder {name} to {letter}:",
                f"net.exe use {letter}: \\\\{SHARE_HOST}\\{name}{login} /persistent:yes",
            ))
    if s.shares:
        firstlogon.append(_Command("Tell winarm the desktop is ready, through the share",
                                   share_marker_command(s.shares[0])))
    firstlogon.append(_Command(
        "At every later logon, tell winarm the desktop is ready",
        run_key_command("WinarmDesktopReady", f"cmd.exe /c echo {MARKER_PREFIX} {DESKTOP_READY}>COM1"),
    ))
    if s.shares:
        firstlogon.append(_Command("At every later logon, tell winarm through the share too",
                                   run_key_command("WinarmDesktopReadyShare", share_marker_command(s.shares[0]))))
    firstlogon.append(_Command("Tell winarm the desktop is ready", DESKTOP_READY_COMMAND))
    labconfig = []
    if not s.tpm:
        labconfig.append("BypassTPMCheck")
    if not s.secure_boot:
        labconfig.append("BypassSecureBootCheck")
    if s.bypass_ram_check:
        labconfig.append("BypassRAMCheck")
    language = language_tag(s.language, "language")
    if s.edition_name is not None:
        image_key, image_value = "/IMAGE/NAME", s.edition_name
    else:
        image_key, image_value = "/IMAGE/INDEX", str(s.edition_index or 1)
    return {
        "windows": s.windows,
        "arch": s.arch,
        "username": s.username,
        "password_value": encode_password(s.password),
        "computer_name": s.computer_name,
        "language": language,
        "keyboard": keyboard_ids(s.keyboard) if s.keyboard is not None else language,
        "image_key": image_key,
        "image_value": image_value,
        "product_key": s.product_key,
        "disk_id": s.disk_id,
        "autologon": s.autologon,
        "labconfig": labconfig,
        "specialize_commands": specialize,
        "firstlogon_commands": firstlogon,
    }


def render(s: AnswerSettings) -> str:
    """The answer file for ``s`` as text (ASCII, LF line endings), checked by :func:`validate`.

    Raises :class:`UserError` for a bad value (see :func:`check_settings`), :class:`RuntimeFailure` when a template
    is missing or when the XML winarm produced does not pass its own validator (a bug, not a user's mistake).
    """
    check_settings(s)
    text = _template(f"windows{s.windows}-{s.arch}.xml.j2").render(_context(s))
    findings = validate(text, s.arch)
    if findings:
        raise RuntimeFailure(f"the answer file winarm rendered is invalid ({len(findings)} problems): {findings[0]}")
    return text


def render_driver_script(driver_folders: list[str]) -> str:
    """The driver script for the medium (:data:`MEDIUM_SCRIPT`): ASCII text with CRLF line endings.

    It finds its medium by :data:`MEDIUM_MARKER` (its own drive first, then C: to Z:), runs ``pnputil /add-driver
    <drive>:\\winarm\\drivers\\<folder>\\*.inf /subdirs /install`` for each folder in the order given, counts exit
    codes 0, 259, 3010 and 1641 as success, logs to ``%WINDIR%\\Temp\\winarm-drivers.log`` and exits 1 only when a
    folder failed (2 when the medium is not found). Raises :class:`UserError` for a folder name that is not 1-64
    ASCII letters, digits, '.', '_' or '-' (starting with a letter or digit) or that appears twice.
    """
    seen: set[str] = set()
    for folder in driver_folders:
        if not DRIVER_FOLDER_RE.fullmatch(folder):
            raise UserError(
                f"driver folder {ascii(folder)} has an unusable name: use 1-64 ASCII letters, digits, '.', '_' or '-'"
            )
        if folder.lower() in seen:
            raise UserError(f"driver folder {folder!r} is listed twice: list each driver folder once")
        seen.add(folder.lower())
    text = _template("install-drivers.cmd.j2").render(
        marker=MEDIUM_MARKER,
        letters=" ".join(DRIVE_LETTERS),
        drivers_dir=MEDIUM_DRIVERS_DIR,
        folders=list(driver_folders),
        success_codes=" ".join(str(code) for code in PNPUTIL_SUCCESS),
    )
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    text = text.replace("\n", "\r\n")
    if not text.isascii():
        raise RuntimeFailure("the driver script winarm rendered is not ASCII")
    return text


# --- validation -------------------------------------------------------------------------------------------------


@dataclass
class _Element:
    ns: str
    name: str
    attrs: dict[str, str]
    line: int
    children: list[_Element] = field(default_factory=list)
    text: str = ""

    def child(self, name: str) -> _Element | None:
        return next((c for c in self.children if c.name == name), None)


class _DtdForbidden(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _parse(data: str | bytes, findings: list[Finding]) -> _Element | None:  # noqa: C901
    """Parse with expat, refusing any DTD (so no entity can be declared). None (and a finding) when not parseable."""
    parser = expat.ParserCreate(namespace_separator=" ")
    root: list[_Element] = []
    stack: list[_Element] = []

    def split(qname: str) -> tuple[str, str]:
        ns, _, local = qname.rpartition(" ")
        return ns, local

    def start(qname: str, attributes: dict[str, str]) -> None:
        ns, local = split(qname)
        attrs = {}
        for key, value in attributes.items():
            attr_ns, attr_local = split(key)
            attrs[f"{{{attr_ns}}}{attr_local}" if attr_ns else attr_local] = value
        element = _Element(ns, local, attrs, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(element)
        else:
            root.append(element)
        stack.append(element)

    def end(qname: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text += data

    def doctype(*args: object) -> None:
        raise _DtdForbidden(parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.UnparsedEntityDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except _DtdForbidden as error:
        findings.append(Finding(error.line, "dtd", "a DTD or entity declaration is not allowed in an answer file"))
        return None
    except expat.ExpatError as error:
        findings.append(Finding(error.lineno, "well-formed", f"not well-formed XML: {expat.ErrorString(error.code)}"))
        return None
    return root[0] if root else None


def _check_ascii(data: str | bytes, findings: list[Finding]) -> None:
    flags = [line.isascii() for line in data.split("\n")] if isinstance(data, str) else [
        line.isascii() for line in data.split(b"\n")
    ]
    for number, ascii_only in enumerate(flags, start=1):
        if not ascii_only:
            findings.append(Finding(number, "ascii", "non-ASCII character (Setup handles ASCII only in practice)"))


def _check_component(
    component: _Element, pass_name: str | None, arch: str, rules: dict[str, Any], findings: list[Finding]
) -> None:
    spec = rules["component_attributes"]
    for attribute in spec["required"]:
        if attribute not in component.attrs:
            findings.append(Finding(component.line, "component-attributes", f"component has no {attribute} attribute"))
    for attribute, allowed in spec["values"].items():
        value = component.attrs.get(attribute)
        if value is not None and value.lower() not in [a.lower() for a in allowed]:
            findings.append(
                Finding(component.line, "component-attributes", f"{attribute}={value!r}, expected {allowed[0]!r}")
            )
    found_arch = component.attrs.get("processorArchitecture")
    if found_arch is not None and found_arch != arch:
        findings.append(
            Finding(component.line, "component-arch", f"processorArchitecture={found_arch!r}, expected {arch!r}")
        )
    name = component.attrs.get("name", "")
    valid_passes = rules["components"].get(name)
    if pass_name is None:
        return
    if valid_passes is not None and pass_name not in valid_passes:
        findings.append(
            Finding(
                component.line,
                "component-pass",
                f"{name} is not valid in {pass_name} (valid: {', '.join(valid_passes)})",
            )
        )
    settings = rules["settings"].get(name, {})
    for setting in component.children:
        setting_passes = settings.get(setting.name)
        if setting_passes is not None and pass_name not in setting_passes:
            findings.append(
                Finding(
                    setting.line,
                    "setting-pass",
                    f"{name}/{setting.name} is not valid in {pass_name} (valid: {', '.join(setting_passes)})",
                )
            )


def _key_of(item: _Element, key: str, wcm: str) -> str | None:
    if key.startswith("@"):
        return item.attrs.get(f"{{{wcm}}}{key[1:]}")
    child = item.child(key)
    return child.text.strip() if child is not None else None


def _check_tree(element: _Element, rules: dict[str, Any], findings: list[Finding]) -> None:
    """List items, length limits and passwords, everywhere below ``element``."""
    wcm = rules["wcm_namespace"]
    list_items: dict[str, list[str]] = rules["list_items"]
    max_lengths: dict[str, int] = rules["max_lengths"]
    seen: dict[tuple[str, str, str], int] = {}
    for child in element.children:
        keys = list_items.get(child.name)
        if keys is not None:
            action = child.attrs.get(f"{{{wcm}}}action")
            if action is None:
                findings.append(Finding(child.line, "list-action", f"{child.name} has no wcm:action attribute"))
            elif action not in rules["list_actions"]:
                findings.append(
                    Finding(child.line, "list-action", f"{child.name} has wcm:action={action!r}, expected add")
                )
            for key in keys:
                value = _key_of(child, key, wcm)
                shown = "wcm:" + key[1:] if key.startswith("@") else key
                if not value:
                    findings.append(Finding(child.line, "list-key", f"{child.name} has no {shown}"))
                    continue
                previous = seen.get((child.name, key, value))
                if previous is not None:
                    findings.append(
                        Finding(
                            child.line,
                            "duplicate-key",
                            f"{child.name} {shown} {value!r} is already used on line {previous}",
                        )
                    )
                else:
                    seen[(child.name, key, value)] = child.line
        limit = max_lengths.get(f"{element.name}/{child.name}")
        if limit is not None and len(child.text.strip()) > limit:
            findings.append(
                Finding(
                    child.line,
                    "max-length",
                    f"{element.name}/{child.name} is {len(child.text.strip())} characters, at most {limit} allowed",
                )
            )
        if child.name in PASSWORD_KINDS:
            _check_password_element(child, findings)
        _check_tree(child, rules, findings)


def _check_password_element(element: _Element, findings: list[Finding]) -> None:
    value = element.child("Value")
    plain = element.child("PlainText")
    if value is None or plain is None or plain.text.strip().lower() != "false":
        return
    try:
        decode_password(value.text, element.name)
    except ValueError as error:
        findings.append(Finding(value.line, "password-encoding", f"{element.name} value: {error}"))


def validate(text: str | bytes, arch: str = "arm64") -> list[Finding]:
    """Check an answer file without Windows; the empty list means no problem was found.

    One :class:`Finding` per problem, in file order per rule: ``well-formed``, ``dtd``, ``ascii``, ``root``,
    ``unknown-pass``, ``duplicate-pass``, ``component-attributes``, ``component-arch``, ``component-pass``,
    ``setting-pass``, ``list-action``, ``list-key``, ``duplicate-key``, ``max-length``, ``password-encoding``.
    A file that cannot be parsed gets only the ascii findings and the parse finding. Raises
    :class:`RuntimeFailure` only when winarm's own rules file is unreadable.
    """
    rules = _rules()
    findings: list[Finding] = []
    _check_ascii(text, findings)
    root = _parse(text, findings)
    if root is None:
        if not any(f.rule in ("well-formed", "dtd") for f in findings):
            findings.append(Finding(1, "well-formed", "the file holds no XML element"))
        return findings
    namespace = rules["namespace"]
    if root.name != "unattend" or root.ns != namespace:
        findings.append(Finding(root.line, "root", f"the root element must be <unattend> in namespace {namespace}"))
    passes_seen: dict[str, int] = {}
    for settings in root.children:
        if settings.name != "settings":
            continue
        named = settings.attrs.get("pass")
        pass_name: str | None = named if named in rules["passes"] else None
        if pass_name is None:
            findings.append(
                Finding(
                    settings.line,
                    "unknown-pass",
                    f"pass {named!r} is not a configuration pass (use {', '.join(rules['passes'])})",
                )
            )
        elif pass_name in passes_seen:
            findings.append(
                Finding(
                    settings.line,
                    "duplicate-pass",
                    f"pass {pass_name!r} appears again (first on line {passes_seen[pass_name]})",
                )
            )
        else:
            passes_seen[pass_name] = settings.line
        for component in settings.children:
            if component.name == "component":
                _check_component(component, pass_name, arch, rules, findings)
        _check_tree(settings, rules, findings)
    return findings
