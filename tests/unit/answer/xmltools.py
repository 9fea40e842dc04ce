"""Reading a rendered answer file in tests: its namespaces, elements by pass and component, lines of a needle."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from hypothesis import HealthCheck, settings

from winarm.answer.validate import Finding

NS = {"u": "urn:schemas-microsoft-com:unattend"}
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(text: str) -> Element:
    return ElementTree.fromstring(text.encode("ascii"))


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth occurrence of needle."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1


def replace_nth(text: str, old: str, new: str, nth: int = 0) -> str:
    index = -1
    for _ in range(nth + 1):
        index = text.index(old, index + 1)
    return text[:index] + new + text[index + len(old) :]


def rules_and_lines(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(f.rule, f.line) for f in findings]


def component(root: Element, pass_name: str, name: str) -> Element:
    found = root.findall(f"u:settings[@pass='{pass_name}']/u:component[@name='{name}']", NS)
    assert len(found) == 1, (pass_name, name)
    return found[0]


def commands_in(root: Element, pass_name: str, tag: str) -> list[str]:
    """The text of every ``tag`` element in the settings of ``pass_name`` (``Path``, ``CommandLine``)."""
    settings_el = [s for s in root.findall("u:settings", NS) if s.get("pass") == pass_name][0]
    return [el.text or "" for el in settings_el.iter(f"{{{NS['u']}}}{tag}")]
