"""Every resident email says who it is from: the From display name and the masthead name the
ward's team and the force, the footer links the privacy notice; the how-to-report block's
999, 101 and Crimestoppers are tap-to-call links; an urgent alert's subject says "Urgent"
first, then the title, then the ward."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.headerregistry import Address

import pytest

from alerts.core.config import Settings
from alerts.digests.compose import DigestItem
from alerts.mail.mime import build_email
from alerts.mail.render import (
    Rendered,
    render_alert,
    render_confirmation,
    render_data_request,
    render_left,
    render_post,
    render_reply_ack,
)
from alerts.sources.items import ItemKind
from subscriptions.languages import Language
from tests.mail.test_mime import outgoing, parse

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TEAM_AND_FORCE = "Riverside Safer Neighbourhood Team, Vale Police"


def vale(**force: str) -> Settings:
    settings = Settings()
    return dataclasses.replace(
        settings, force=dataclasses.replace(settings.force, name="Vale Police", **force),
        web=dataclasses.replace(settings.web, base_url="https://alerts.vale.example"))


def sender_of(data: bytes) -> Address:
    [address] = parse(data)["From"].addresses
    return address


def from_line(data: bytes) -> bytes:
    """The From header as it travels, unfolded."""
    match = re.search(rb"^From:(.*?)\r\n(?! )", data, re.MULTILINE | re.DOTALL)
    assert match, data[:400]
    return match.group(1).replace(b"\r\n", b"").strip()


def test_a_residents_email_is_from_the_wards_team_and_the_force_at_the_same_address() -> None:
    settings = vale()
    _, data = build_email(outgoing(ward_name="Riverside"), settings, now=NOW)

    sender = sender_of(data)
    assert sender.display_name == TEAM_AND_FORCE
    assert sender.addr_spec == settings.mail.from_address  # DMARC aligns on this, unchanged
    # The comma is quoted, so no reader takes the name for two addresses.
    assert from_line(data) == f'"{TEAM_AND_FORCE}" <{settings.mail.from_address}>'.encode()


def test_a_force_that_names_its_teams_otherwise_is_named_so() -> None:
    settings = vale(ward_team="{ward} Neighbourhood Policing Team")
    _, data = build_email(outgoing(ward_name="Riverside"), settings, now=NOW)

    assert sender_of(data).display_name == "Riverside Neighbourhood Policing Team, Vale Police"


@pytest.mark.parametrize("recipient", ["ash@home.example", "siân@cartref.example"])
def test_a_name_outside_ascii_is_encoded_by_the_email_library(recipient: str) -> None:
    settings = vale()
    settings = dataclasses.replace(
        settings, force=dataclasses.replace(settings.force, name="Heddlu Dyfed-Powys"))
    _, data = build_email(outgoing(ward_name="Tŷ Isaf", recipient_email=recipient),
                          settings, now=NOW)

    name = "Tŷ Isaf Safer Neighbourhood Team, Heddlu Dyfed-Powys"
    if recipient.isascii():
        assert sender_of(data).addr_spec == settings.mail.from_address
        # RFC 2047 encoded words, decoded as a mail client does. (Python 3.11's own header
        # parser puts a space between two adjacent encoded words, which RFC 2047 drops.)
        line = from_line(data)
        assert line.isascii() and b"=?utf-8?" in line
        decoded = str(make_header(decode_header(line.decode())))
        assert decoded == f"{name} <{settings.mail.from_address}>"
    else:
        # Sent as SMTPUTF8: the name in UTF-8 like the address, quoted for its comma.
        assert from_line(data).decode() == f'"{name}" <{settings.mail.from_address}>'


def post(language: Language = Language.ENGLISH) -> Rendered:
    item = DigestItem(id=1, kind=ItemKind.POST, title="Gas leak: Mill Lane closed",
                      body_html="<p>Use the bypass.</p>", link=None, published_at=NOW,
                      starts_at=None, ends_at=None, location=None)
    return render_post("Riverside", item, vale(), now=NOW, language=language)


def alert(language: Language = Language.ENGLISH) -> Rendered:
    return render_alert("Riverside", "Gas leak: Mill Lane closed", "<p>Use the bypass.</p>",
                        vale(), now=NOW, language=language)


def confirmation(language: Language = Language.ENGLISH) -> Rendered:
    return render_confirmation(["Riverside"], "https://alerts.vale.example/confirm/x", 48,
                               vale(), now=NOW, language=language)


def data_request(language: Language = Language.ENGLISH) -> Rendered:
    return render_data_request("https://alerts.vale.example/my-data/x", 2, vale(), now=NOW,
                               language=language)


def left(language: Language = Language.ENGLISH) -> Rendered:
    return render_left("Riverside", vale(), now=NOW, language=language)


def emergency_answer(language: Language = Language.ENGLISH) -> Rendered:
    """The answer to a reply that reads like a crime report: call 999 first."""
    return render_reply_ack("Riverside", "Someone is breaking into my shed", vale(),
                            emergency=True, now=NOW, language=language)


EMAILS = [post, alert, confirmation, data_request, left, emergency_answer]


def masthead(html: str) -> str:
    match = re.search(r'<td class="masthead"[^>]*>(.*?)</td>', html, re.DOTALL)
    assert match, "no masthead"
    return re.sub(r"<[^>]+>", " ", match.group(1))


@pytest.mark.parametrize("language", [Language.ENGLISH, Language.WELSH])
@pytest.mark.parametrize("email", [post, alert, left, emergency_answer])
def test_the_masthead_of_a_wards_email_names_its_team_and_the_force(
    email: object, language: Language,
) -> None:
    assert callable(email)
    assert TEAM_AND_FORCE in masthead(email(language).html)


@pytest.mark.parametrize("email", [confirmation, data_request])
def test_an_email_for_no_one_ward_names_the_forces_teams_in_its_masthead(email: object) -> None:
    assert callable(email)
    assert "Safer Neighbourhood Teams, Vale Police" in masthead(email().html)


@pytest.mark.parametrize("language", [Language.ENGLISH, Language.WELSH, Language.BILINGUAL])
@pytest.mark.parametrize("email", EMAILS)
def test_every_residents_email_links_the_privacy_notice_in_both_parts(
    email: object, language: Language,
) -> None:
    assert callable(email)
    rendered = email(language)
    assert 'href="https://alerts.vale.example/privacy"' in rendered.html
    assert "https://alerts.vale.example/privacy" in rendered.text


@pytest.mark.parametrize("language", [Language.ENGLISH, Language.WELSH])
@pytest.mark.parametrize("email", EMAILS)
def test_999_101_and_crimestoppers_are_tap_to_call_links(email: object,
                                                         language: Language) -> None:
    assert callable(email)
    rendered = email(language)
    calls = re.findall(r'<a href="tel:([^"]*)"[^>]*>([^<]*)</a>', rendered.html)
    assert ("999", "999") in calls
    assert ("101", "101") in calls
    assert ("0800555111", "0800 555 111") in calls
    if email is emergency_answer:  # its own list says 999 and 101 again, as links too
        assert calls.count(("999", "999")) == 3 and calls.count(("101", "101")) == 2
    # ... and nowhere in the HTML part's body is 999 or 101 left as words that cannot be
    # tapped (the heading repeats the subject, a header that holds no links).
    untapped = re.sub(r'<a href="tel:[^"]*"[^>]*>[^<]*</a>', "", rendered.html)
    words = re.sub(r"<head>.*?</head>|<h1.*?</h1>|<[^>]+>", " ", untapped, flags=re.S)
    assert not re.findall(r".{0,40}\b(?:999|101)\b", words)
    # The text part says the numbers as they are read.
    assert "999" in rendered.text and "101" in rendered.text
    assert "0800 555 111" in rendered.text and "tel:" not in rendered.text


def test_an_urgent_alerts_subject_says_urgent_then_the_title_then_the_ward() -> None:
    assert alert().subject == "[Urgent] Gas leak: Mill Lane closed (Riverside)"
    assert alert(Language.WELSH).subject == "[Brys] Gas leak: Mill Lane closed (Riverside)"
    assert alert(Language.BILINGUAL).subject == (
        "[Brys] Gas leak: Mill Lane closed (Riverside) / "
        "[Urgent] Gas leak: Mill Lane closed (Riverside)")


def test_a_posts_subject_is_its_title_then_the_ward() -> None:
    assert post().subject == "Gas leak: Mill Lane closed (Riverside)"
