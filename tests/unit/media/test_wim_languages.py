"""The UI languages of each image in the WIM XML: read in order with the default, unknown when not named."""

from __future__ import annotations

import pytest

from winarm.media.wim import MAX_LANGUAGES, WimError, parse_xml


def xml_of(*images: str) -> bytes:
    return b"\xff\xfe" + f"<WIM>{''.join(images)}</WIM>".encode("utf-16-le")


def image(index: int, languages: str | None) -> str:
    """One IMAGE with a WINDOWS section; ``languages`` is the inside of <LANGUAGES> (None: no such element)."""
    section = f"<LANGUAGES>{languages}</LANGUAGES>" if languages is not None else ""
    return (f'<IMAGE INDEX="{index}"><WINDOWS><ARCH>12</ARCH>{section}<VERSION><BUILD>26100</BUILD></VERSION>'
            f"</WINDOWS><NAME>Windows 11 Pro</NAME></IMAGE>")


def test_each_image_has_its_own_languages_and_default() -> None:
    editions = parse_xml(xml_of(
        image(1, "<LANGUAGE>en-US</LANGUAGE><DEFAULT>en-US</DEFAULT>"),
        image(2, "<LANGUAGE>fr-FR</LANGUAGE><LANGUAGE> de-DE </LANGUAGE><LANGUAGE>DE-de</LANGUAGE>"
                 "<DEFAULT>de-DE</DEFAULT>"),
    ), 2)
    assert [(e.languages, e.default_language) for e in editions] == [
        (("en-US",), "en-US"),
        (("fr-FR", "de-DE"), "de-DE"),
    ], "per image, in the XML's order, a repeat in another case dropped, the DEFAULT kept"


def test_missing_languages_are_unknown_not_empty_of_meaning() -> None:
    no_windows = '<IMAGE INDEX="3"><NAME>Windows 11 Home</NAME></IMAGE>'
    editions = parse_xml(xml_of(image(1, None), image(2, ""), no_windows), 3)
    assert [(e.languages, e.default_language) for e in editions] == [((), None)] * 3


def test_without_default_the_first_language_is_and_a_stray_default_joins_the_list() -> None:
    editions = parse_xml(xml_of(
        image(1, "<LANGUAGE>ja-JP</LANGUAGE><LANGUAGE>en-US</LANGUAGE>"),
        image(2, "<LANGUAGE>en-US</LANGUAGE><DEFAULT>en-GB</DEFAULT>"),
    ), 2)
    assert (editions[0].languages, editions[0].default_language) == (("ja-JP", "en-US"), "ja-JP")
    assert (editions[1].languages, editions[1].default_language) == (("en-US", "en-GB"), "en-GB")


def test_a_value_that_is_no_language_tag_is_skipped_not_believed() -> None:
    (edition,) = parse_xml(xml_of(image(1, "<LANGUAGE>en-US</LANGUAGE><LANGUAGE>&lt;b&gt; x</LANGUAGE>"
                                           "<LANGUAGE>sr-Latn-RS</LANGUAGE><DEFAULT>1234</DEFAULT>")), 1)
    assert edition.languages == ("en-US", "sr-Latn-RS")
    assert edition.default_language == "en-US"


def test_too_many_languages_are_refused_by_image() -> None:
    many = "<LANGUAGE>en-US</LANGUAGE>" * (MAX_LANGUAGES + 1)
    with pytest.raises(WimError, match=f"image 1 lists {MAX_LANGUAGES + 1} languages"):
        parse_xml(xml_of(image(1, many)), 1)
