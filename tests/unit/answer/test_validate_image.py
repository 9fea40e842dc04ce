"""The validator's image rules: InstallFrom's edition is on the ISO, every UILanguage is in that edition."""

from __future__ import annotations

from tests.unit.answer.xmltools import line_of, rules_and_lines
from winarm.answer.render import render
from winarm.answer.settings import AnswerSettings
from winarm.answer.validate import validate
from winarm.media.iso import Edition

FRENCH = Edition(1, "Windows 11 Home", "26100", "arm64", None, ("fr-FR",), "fr-FR")
GERMAN = Edition(2, "Windows 11 Pro", "26100", "arm64", None, ("de-DE", "en-US"), "de-DE")
UNKNOWN = Edition(3, "Windows 11 Education", "26100", "arm64")


def test_a_ui_language_the_named_edition_lacks_is_found_on_each_line() -> None:
    text = render(AnswerSettings(language="de-DE", ui_language="fr-FR", edition_index=2))
    findings = validate(text, "arm64", (FRENCH, GERMAN))
    lines = [line_of(text, "<UILanguage>fr-FR</UILanguage>", nth) for nth in range(3)]
    assert rules_and_lines(findings) == [("ui-language", line) for line in lines]
    assert "not in edition 2 (Windows 11 Pro), which has de-DE, en-US" in findings[0].message
    assert validate(text, "arm64") == [], "without the ISO the rule is not applied"
    elsewhere = validate(text, "arm64", (FRENCH, UNKNOWN))
    assert [f.rule for f in elsewhere] == ["image-edition"], "no edition 2: fr-FR is checked against all, and found"


def test_by_name_and_an_edition_that_names_no_languages() -> None:
    text = render(AnswerSettings(language="en-US", edition_name="windows 11 pro"))
    assert validate(text, "arm64", (FRENCH, GERMAN)) == [], "names match in any case; en-US is in Pro"
    german = render(AnswerSettings(language="de-DE", edition_name="Windows 11 Pro"))
    assert validate(german, "arm64", (Edition(2, "Windows 11 Pro", "1", "arm64"), FRENCH)) == [], \
        "the named edition's languages are unknown: nothing is found, though another edition lacks de-DE"


def test_an_edition_not_on_the_iso_is_found_and_the_ui_is_checked_against_all() -> None:
    text = render(AnswerSettings(language="ja-JP", edition_index=7))
    findings = validate(text, "arm64", (FRENCH, GERMAN))
    assert [f.rule for f in findings] == ["image-edition", "ui-language", "ui-language", "ui-language"]
    assert findings[0].message == ("InstallFrom names /IMAGE/INDEX '7', which is not on the ISO: it has "
                                   "1 (Windows 11 Home), 2 (Windows 11 Pro)")
    assert "is not in the ISO, which has fr-FR, de-DE, en-US" in findings[1].message
