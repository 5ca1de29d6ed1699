"""The Welsh catalogue: every string a resident reads has a Welsh translation, and the check
that says so fails, naming the string, when a new one is left untranslated."""

from __future__ import annotations

import shutil
from pathlib import Path

from alerts.core.translations import (
    PLACEHOLDER,
    catalogue,
    catalogue_gaps,
    extracted,
    page_language,
    translations,
)
from subscriptions.languages import Language

ROOT = Path(__file__).resolve().parents[2]


def test_every_marked_string_in_the_templates_and_code_has_a_welsh_translation() -> None:
    assert catalogue_gaps(ROOT, catalogue(Language.WELSH)) == []


def test_the_check_covers_email_and_resident_pages_but_not_staff_pages() -> None:
    places = set(extracted(ROOT).values())
    assert any(place.startswith("templates/email/digest.html") for place in places)
    assert any(place.startswith("templates/web/subscribe.html") for place in places)
    assert any(place.startswith("alerts/digests/compose.py") for place in places)
    assert not any("templates/web/staff/" in place for place in places)


def test_the_check_fails_and_names_a_new_template_string_left_untranslated(
    tmp_path: Path,
) -> None:
    shutil.copytree(ROOT / "templates" / "email", tmp_path / "templates" / "email")
    shutil.copy(ROOT / "babel.cfg", tmp_path / "babel.cfg")
    (tmp_path / "templates" / "email" / "new.html").write_text(
        "<p>{% trans %}Lock your shed tonight, {{ ward_name }}{% endtrans %}</p>\n"
        '<p>{{ _("Unsubscribe") }}</p>\n')

    gaps = catalogue_gaps(tmp_path, catalogue(Language.WELSH))

    assert len(gaps) == 1
    assert "Lock your shed tonight, %(ward_name)s" in gaps[0]
    assert "templates/email/new.html" in gaps[0]


def test_the_check_fails_when_a_translation_drops_a_placeholder(tmp_path: Path) -> None:
    (tmp_path / "templates" / "email").mkdir(parents=True)
    shutil.copy(ROOT / "babel.cfg", tmp_path / "babel.cfg")
    (tmp_path / "templates" / "email" / "one.html").write_text(
        "<p>{% trans %}Urgent alert for {{ ward_name }}{% endtrans %}</p>\n")
    welsh = catalogue(Language.WELSH)
    broken = type(welsh)(locale="cy")
    broken.add("Urgent alert for %(ward_name)s", "Rhybudd brys")

    [gap] = catalogue_gaps(tmp_path, broken)

    assert "placeholders differ" in gap


def test_no_welsh_translation_drops_or_invents_a_placeholder() -> None:
    for message in catalogue(Language.WELSH):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = {name for text in ids for name in PLACEHOLDER.findall(text)}
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == wanted, message.id


def test_english_is_the_message_ids_and_welsh_comes_from_the_catalogue() -> None:
    assert translations(Language.ENGLISH).gettext("Unsubscribe") == "Unsubscribe"
    assert translations(Language.WELSH).gettext("Unsubscribe") == "Dad-danysgrifio"
    assert translations(Language.WELSH).ngettext(
        "%(num)d update", "%(num)d updates", 3) % {"num": 3} == "3 diweddariad"


def test_a_page_is_in_the_language_asked_for_then_the_cookie_then_the_browser() -> None:
    assert page_language("cy", "en", "en-GB") is Language.WELSH
    assert page_language(None, "cy", "en-GB") is Language.WELSH
    assert page_language(None, None, "cy-GB,en;q=0.5") is Language.WELSH
    assert page_language(None, None, "en-GB,en;q=0.9,cy;q=0.8") is Language.ENGLISH
    assert page_language("xx", None, None) is Language.ENGLISH
