"""The answer-file validator: checks an ``Autounattend.xml`` without Windows.

:func:`validate` reads the XML with expat (line numbers kept, DTDs refused) and checks it against the table in
``unattend/rules.json``: passes, component attributes, which component and setting is valid in which pass, list
items and their keys, length limits, and obfuscated passwords.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.parsers import expat

from winarm.answer.settings import PASSWORD_KINDS, decode_password
from winarm.answer.validate_commands import check_command_secrets
from winarm.answer.validate_layout import check_layout
from winarm.config.windows import TEMPLATE_DIR
from winarm.errors import RuntimeFailure

if TYPE_CHECKING:
    from winarm.media.iso import Edition


@dataclass(frozen=True)
class Finding:
    """One problem :func:`validate` found: the line it is on, the rule's name and what is wrong."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"


@functools.cache
def _rules() -> dict[str, Any]:
    """``unattend/rules.json``; raises :class:`RuntimeFailure` when it is missing or broken."""
    path = TEMPLATE_DIR / "rules.json"
    try:
        rules: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeFailure(f"cannot read the validator's rules {path}: {error}") from None
    return rules


def windows11_bypasses() -> tuple[str, ...]:
    """The ``LabConfig`` values every Windows 11 answer file sets (``windows11_bypasses`` in the rules file).
    Raises :class:`RuntimeFailure` when the rules file is unreadable."""
    return tuple(_rules()["windows11_bypasses"])


# --- parsing ----------------------------------------------------------------------------------------------------


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


def _split(qname: str) -> tuple[str, str]:
    """``(namespace, local name)`` of an expat name (``"<ns> <local>"`` or just ``"<local>"``)."""
    ns, _, local = qname.rpartition(" ")
    return ns, local


class _TreeBuilder:
    """Expat handlers that build an :class:`_Element` tree and refuse any DTD or entity declaration."""

    def __init__(self, parser: expat.XMLParserType) -> None:
        self.parser = parser
        self.root: _Element | None = None
        self.stack: list[_Element] = []
        self.comments: list[str] = []
        parser.CommentHandler = self.comments.append
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.chars
        parser.StartDoctypeDeclHandler = self.doctype
        parser.EntityDeclHandler = self.doctype
        parser.UnparsedEntityDeclHandler = self.doctype

    def start(self, qname: str, attributes: dict[str, str]) -> None:
        ns, local = _split(qname)
        attrs = {}
        for key, value in attributes.items():
            attr_ns, attr_local = _split(key)
            attrs[f"{{{attr_ns}}}{attr_local}" if attr_ns else attr_local] = value
        element = _Element(ns, local, attrs, self.parser.CurrentLineNumber)
        if self.stack:
            self.stack[-1].children.append(element)
        elif self.root is None:
            self.root = element
        self.stack.append(element)

    def end(self, qname: str) -> None:
        self.stack.pop()

    def chars(self, data: str) -> None:
        if self.stack:
            self.stack[-1].text += data

    def doctype(self, *args: object) -> None:
        raise _DtdForbidden(self.parser.CurrentLineNumber)


def _parse(data: str | bytes, findings: list[Finding], comments: list[str]) -> _Element | None:
    """Parse with expat, refusing any DTD (so no entity can be declared). None (and a finding) when not parseable.
    The file's comments are appended to ``comments``."""
    parser = expat.ParserCreate(namespace_separator=" ")
    builder = _TreeBuilder(parser)
    try:
        parser.Parse(data, True)
    except _DtdForbidden as error:
        findings.append(Finding(error.line, "dtd", "a DTD or entity declaration is not allowed in an answer file"))
        return None
    except expat.ExpatError as error:
        findings.append(Finding(error.lineno, "well-formed", f"not well-formed XML: {expat.ErrorString(error.code)}"))
        return None
    comments += builder.comments
    return builder.root


# --- rules ------------------------------------------------------------------------------------------------------


def _check_ascii(data: str | bytes, findings: list[Finding]) -> None:
    flags = [line.isascii() for line in data.split("\n")] if isinstance(data, str) else [
        line.isascii() for line in data.split(b"\n")
    ]
    for number, ascii_only in enumerate(flags, start=1):
        if not ascii_only:
            findings.append(Finding(number, "ascii", "non-ASCII character (Setup handles ASCII only in practice)"))


def _check_component_attributes(component: _Element, arch: str, rules: dict[str, Any], findings: list[Finding]) -> None:
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


def _check_component_pass(component: _Element, pass_name: str, rules: dict[str, Any], findings: list[Finding]) -> None:
    name = component.attrs.get("name", "")
    valid_passes = rules["components"].get(name)
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


def _check_list_item(
    item: _Element, keys: list[str], rules: dict[str, Any], seen: dict[tuple[str, str, str], int],
    findings: list[Finding],
) -> None:
    """One list item (``RunSynchronousCommand``, ``CreatePartition``...): its wcm:action and its unique keys."""
    wcm = rules["wcm_namespace"]
    action = item.attrs.get(f"{{{wcm}}}action")
    if action is None:
        findings.append(Finding(item.line, "list-action", f"{item.name} has no wcm:action attribute"))
    elif action not in rules["list_actions"]:
        findings.append(Finding(item.line, "list-action", f"{item.name} has wcm:action={action!r}, expected add"))
    for key in keys:
        value = _key_of(item, key, wcm)
        shown = "wcm:" + key[1:] if key.startswith("@") else key
        if not value:
            findings.append(Finding(item.line, "list-key", f"{item.name} has no {shown}"))
            continue
        previous = seen.get((item.name, key, value))
        if previous is not None:
            findings.append(
                Finding(item.line, "duplicate-key", f"{item.name} {shown} {value!r} is already used on line {previous}")
            )
        else:
            seen[(item.name, key, value)] = item.line


def _check_tree(element: _Element, rules: dict[str, Any], findings: list[Finding]) -> None:
    """List items, length limits and passwords, everywhere below ``element``."""
    list_items: dict[str, list[str]] = rules["list_items"]
    max_lengths: dict[str, int] = rules["max_lengths"]
    seen: dict[tuple[str, str, str], int] = {}
    for child in element.children:
        keys = list_items.get(child.name)
        if keys is not None:
            _check_list_item(child, keys, rules, seen, findings)
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


def _settings_pass(settings: _Element, rules: dict[str, Any], passes_seen: dict[str, int],
                   findings: list[Finding]) -> str | None:
    """The pass a ``<settings>`` element names, or None (and a finding) when it is unknown; a repeat is a finding."""
    named = settings.attrs.get("pass")
    if named not in rules["passes"]:
        findings.append(
            Finding(
                settings.line,
                "unknown-pass",
                f"pass {named!r} is not a configuration pass (use {', '.join(rules['passes'])})",
            )
        )
        return None
    assert named is not None
    if named in passes_seen:
        message = f"pass {named!r} appears again (first on line {passes_seen[named]})"
        findings.append(Finding(settings.line, "duplicate-pass", message))
    else:
        passes_seen[named] = settings.line
    return named


def validate(text: str | bytes, arch: str = "arm64", editions: Sequence[Edition] = ()) -> list[Finding]:
    """Check an answer file without Windows; the empty list means no problem was found.

    One :class:`Finding` per problem, in file order per rule: ``well-formed``, ``dtd``, ``ascii``, ``root``,
    ``unknown-pass``, ``duplicate-pass``, ``component-attributes``, ``component-arch``, ``component-pass``,
    ``setting-pass``, ``list-action``, ``list-key``, ``duplicate-key``, ``max-length``, ``password-encoding``,
    ``secret-command-line`` (a share login on a command line, see :mod:`~winarm.answer.validate_commands`),
    ``partition-after-c`` (C: not the last partition, see :mod:`~winarm.answer.validate_layout`),
    then ``windows11-bypasses``, ``product-key``, ``dynamic-update``, ``timezone`` (see
    :mod:`~winarm.answer.validate_facts`); given the install ISO's ``editions``, also ``image-edition`` and
    ``ui-language`` (see :func:`~winarm.answer.validate_image.check_image`). A file that cannot be parsed gets
    only the ascii findings and the parse finding. Raises :class:`RuntimeFailure` only when winarm's own rules
    file is unreadable.
    """
    rules = _rules()
    findings: list[Finding] = []
    _check_ascii(text, findings)
    comments: list[str] = []
    root = _parse(text, findings, comments)
    if root is None:
        if not any(f.rule in ("well-formed", "dtd") for f in findings):
            findings.append(Finding(1, "well-formed", "the file holds no XML element"))
        return findings
    namespace = rules["namespace"]
    if root.name != "unattend" or root.ns != namespace:
        findings.append(Finding(root.line, "root", f"the root element must be <unattend> in namespace {namespace}"))
    _check_passes(root, arch, rules, findings)
    from winarm.answer.validate_facts import check_facts

    def add(line: int, rule: str, message: str) -> None:
        findings.append(Finding(line, rule, message))

    builds = {edition.index: edition.build_number for edition in editions} if editions else None
    check_facts(root, comments, rules["windows11_bypasses"], add, builds)
    if editions:
        from winarm.answer.validate_image import check_image

        check_image(root, editions, add)
    return findings


def _check_passes(root: _Element, arch: str, rules: dict[str, Any], findings: list[Finding]) -> None:
    """Each ``<settings>``: its pass, its components' attributes and passes, and everything below it."""
    passes_seen: dict[str, int] = {}
    for settings in root.children:
        if settings.name != "settings":
            continue
        pass_name = _settings_pass(settings, rules, passes_seen, findings)
        for component in settings.children:
            if component.name != "component":
                continue
            _check_component_attributes(component, arch, rules, findings)
            if pass_name is not None:
                _check_component_pass(component, pass_name, rules, findings)
        _check_tree(settings, rules, findings)
    check_command_secrets(root, lambda line, rule, message: findings.append(Finding(line, rule, message)))
    check_layout(root, lambda line, rule, message: findings.append(Finding(line, rule, message)))
