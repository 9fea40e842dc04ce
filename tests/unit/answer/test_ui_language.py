"""The UI language is one the image holds: --language sets the locales, the UI follows the image's languages."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from click.testing import CliRunner

from tests.unit.answer.xmltools import NS, component, parse
from winarm.answer.plan import answer_settings, choose_ui_language
from winarm.answer.render import render
from winarm.cli.main import main
from winarm.config.host import HostFacts
from winarm.config.vm import load_config
from winarm.errors import UserError
from winarm.media.iso import Edition

ENGLISH = Edition(2, "Windows 11 Pro", "26100", "arm64", 9 * 10**9, ("en-US",), "en-US")
TWO = Edition(1, "Windows 11 Pro", "26100", "arm64", None, ("fr-FR", "de-DE"), "fr-FR")
UNKNOWN = Edition(1, "Windows 11 Pro", "26100", "arm64")


def international(root: Element) -> dict[str, str]:
    """Every language value of the answer file, by where it sits."""
    pe = component(root, "windowsPE", "Microsoft-Windows-International-Core-WinPE")
    oobe = component(root, "oobeSystem", "Microsoft-Windows-International-Core")
    found = {"setup UI": pe.findtext("u:SetupUILanguage/u:UILanguage", namespaces=NS) or ""}
    for where, part in (("PE", pe), ("OOBE", oobe)):
        for tag in ("UILanguage", "SystemLocale", "UserLocale", "InputLocale"):
            found[f"{where} {tag}"] = part.findtext(f"u:{tag}", namespaces=NS) or ""
    return found


def test_german_locales_on_an_english_image_keep_the_english_ui(tmp_path: Path, host: HostFacts) -> None:
    cfg = load_config({"storage": str(tmp_path / "s"), "run_base": str(tmp_path / "r"), "language": "de-DE"},
                      {}, host)
    values = international(parse(render(answer_settings(cfg, edition=ENGLISH, has_drivers=False))))
    ui = {key: value for key, value in values.items() if "UI" in key}
    assert ui == {"setup UI": "en-US", "PE UILanguage": "en-US", "OOBE UILanguage": "en-US"}
    assert {value for key, value in values.items() if "UI" not in key} == {"de-DE"}, "locales and keyboard"


@pytest.mark.parametrize(("edition", "language", "wanted", "ui"), [
    (ENGLISH, "en-us", None, "en-US"),       # the image has it (any case): it is the UI
    (TWO, "de-DE", None, "de-DE"),           # not the default, still in the image
    (TWO, "ja-JP", None, "fr-FR"),           # not in the image: the image's default, not its first or en-US
    (UNKNOWN, "ja-JP", None, "ja-JP"),       # the image names none: nothing to fall back to, nothing refused
    (UNKNOWN, "en-US", "ko-KR", "ko-KR"),
    (TWO, "ja-JP", "DE-de", "de-DE"),        # asked for and there: taken, spelled as Windows spells it
])
def test_the_ui_language_follows_the_image(edition: Edition, language: str, wanted: str | None, ui: str) -> None:
    assert choose_ui_language(edition, language, wanted) == ui


def test_a_ui_language_the_image_lacks_is_refused_naming_what_it_has() -> None:
    with pytest.raises(UserError) as caught:
        choose_ui_language(TWO, "en-US", "en-US")
    assert str(caught.value) == ("UI language en-US is not in edition 1 (Windows 11 Pro) of this ISO, which has "
                                 "fr-FR, de-DE: pass --ui-language fr-FR or use an ISO in en-US")
    with pytest.raises(UserError, match="UI language 'xx-YY' is not a Windows language tag"):
        choose_ui_language(UNKNOWN, "en-US", "xx-YY")


def test_render_without_an_image_takes_ui_language_else_language() -> None:
    runner = CliRunner()
    plain = runner.invoke(main, ["unattend", "render", "--language", "de-DE"], env={})
    asked = runner.invoke(main, ["unattend", "render", "--language", "de-DE"], env={"UI_LANGUAGE": "en-GB"})
    assert plain.exit_code == asked.exit_code == 0, plain.output + asked.output
    assert international(parse(plain.stdout))["setup UI"] == "de-DE"
    values = international(parse(asked.stdout))
    assert (values["setup UI"], values["OOBE UILanguage"], values["OOBE UserLocale"]) == ("en-GB", "en-GB", "de-DE")
    bad = runner.invoke(main, ["unattend", "render", "--ui-language", "Klingon"], env={})
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.startswith("winarm: UI language 'Klingon' is not a Windows language tag") and \
        bad.stderr.count("\n") == 1
