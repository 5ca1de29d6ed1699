"""Welsh and bilingual mail: a Welsh reader's digest is in Welsh, a bilingual one holds the
Welsh version first and then the English one, and every variant says how to report a crime.
Resident pages follow `?lang=`, the switch link's cookie, or the browser's Accept-Language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.digests.compose import DigestContent, DigestItem, compose_digest
from alerts.mail.marks import UNSUBSCRIBE_MARK, fill_links
from alerts.mail.render import Rendered, render_alert, render_digest
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases.digest_rounds import queue_digests
from alerts.web.app import create_app
from subscriptions.languages import Language
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WELSH_HEADINGS = ("Newyddion y tîm", "Cwrdd â'ch tîm", "Cadw'n ddiogel")
ENGLISH_HEADINGS = ("Team updates", "Meet your team", "Keeping safe")
REPORTING = ("999", "101", "Crimestoppers")


def content() -> DigestContent:
    def item(id: int, kind: ItemKind, starts: datetime | None = None) -> DigestItem:
        return DigestItem(id=id, kind=kind, title=f"Item {id}", body_html="<p>Words.</p>",
                          link=None, published_at=NOW - timedelta(days=1), starts_at=starts,
                          ends_at=starts + timedelta(hours=2) if starts else None,
                          location="Mill Lane library" if starts else None)
    digest = compose_digest("RIV", "Riverside", [
        item(1, ItemKind.POST), item(2, ItemKind.ADVICE),
        item(3, ItemKind.SESSION, datetime(2026, 12, 5, 10, 0, tzinfo=UTC)),
    ], now=NOW, max_age=timedelta(days=30))
    assert digest is not None
    return digest


def digest(language: Language) -> Rendered:
    return render_digest(content(), Settings(), now=NOW, language=language)


def test_welsh_subscriber_gets_the_digest_in_welsh() -> None:
    welsh = digest(Language.WELSH)

    assert welsh.subject == "Newyddion cymdogaeth Riverside: 2 diweddariad a 1 sesiwn gyswllt"
    for part in (welsh.html, welsh.text.casefold()):
        for heading in WELSH_HEADINGS:
            assert (heading if part is welsh.html else heading.casefold()) in part
    for heading in ENGLISH_HEADINGS:
        assert heading not in welsh.html and heading.upper() not in welsh.text
    assert "Dydd Sadwrn 5 Rhagfyr 2026, 10:00 tan 12:00" in welsh.text
    assert "Dad-danysgrifio" in welsh.html and "Dad-danysgrifio" in welsh.text
    assert '<html lang="cy">' in welsh.html


def test_bilingual_subscriber_gets_welsh_first_then_english_in_both_parts() -> None:
    both = digest(Language.BILINGUAL)

    assert both.subject.startswith("Newyddion cymdogaeth Riverside:")
    assert "/ Riverside neighbourhood news: 2 updates and 1 contact session" in both.subject
    for part in (both.html, both.text):
        assert "Mae'r fersiwn Saesneg isod" in part and "English version below" in part
        assert part.index("English version below") < part.casefold().index("newyddion y tîm")
    html, text = both.html, both.text
    for welsh, english in zip(WELSH_HEADINGS, ENGLISH_HEADINGS, strict=True):
        assert html.index(welsh) < html.index(english)
        assert text.index(welsh.upper()) < text.index(english.upper())
    assert '<div class="wrap" lang="cy"' in html and '<div class="wrap" lang="en-GB"' in html
    assert html.index('lang="cy"') < html.index('<div class="wrap" lang="en-GB"')


def test_a_bilingual_message_gets_every_link_mark_filled_at_delivery() -> None:
    both = digest(Language.BILINGUAL)
    assert both.html.count(UNSUBSCRIBE_MARK) == 2
    filled = fill_links(both.html, "https://x.example/u", "https://x.example/p")
    assert UNSUBSCRIBE_MARK not in filled and filled.count("https://x.example/u") == 2


def test_every_variant_says_how_to_report_a_crime() -> None:
    settings = Settings()
    for language in Language:
        rendered = [digest(language), render_alert("Riverside", "Road closed", "<p>Avoid.</p>",
                                                   settings, now=NOW, language=language)]
        for message in rendered:
            for part in (message.html, message.text):
                for words in REPORTING:
                    assert words in part, (language, words)


def test_english_stays_english() -> None:
    english = digest(Language.ENGLISH)
    assert english.subject == "Riverside neighbourhood news: 2 updates and 1 contact session"
    assert '<html lang="en-GB">' in english.html and "Saturday 5 December 2026" in english.text
    assert "Cymraeg" not in english.html and "Newyddion" not in english.text


def mail_to(sink: SinkHandler, address: str) -> EmailMessage:
    [message] = [r.message for r in sink.received if r.rcpt_tos == [address]]
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_published_digests_go_to_each_resident_in_their_language(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, ward, "english@home.example")
        make_subscriber(session, ward, "welsh@home.example").subscriber.language = "cy"
        make_subscriber(session, ward, "both@home.example").subscriber.language = "bilingual"
    with factory.begin() as session:
        ward = get_ward(session, "RIV")
        store_items(session, officer_source(session, ward), [CollectedItem(
            guid="post:1", kind=ItemKind.POST, title="Sheds broken into",
            body_html="<p>Lock your shed.</p>", published_at=datetime.now(UTC))])
    queue_digests(factory, settings, ward_code="RIV")
    deliver_due(factory, settings)

    english = text_of(mail_to(sink, "english@home.example"))
    welsh = text_of(mail_to(sink, "welsh@home.example"))
    both = text_of(mail_to(sink, "both@home.example"))
    assert "TEAM UPDATES" in english and "NEWYDDION Y TÎM" not in english
    assert "NEWYDDION Y TÎM" in welsh and "TEAM UPDATES" not in welsh
    assert both.index("NEWYDDION Y TÎM") < both.index("TEAM UPDATES")
    assert str(mail_to(sink, "welsh@home.example")["Subject"]).startswith(
        "Newyddion cymdogaeth Riverside")
    for text in (english, welsh, both):
        assert "999" in text and "101" in text
        assert "__ALERTS_" not in text


def test_a_resident_page_is_served_in_welsh_when_asked(
    factory: sessionmaker[Session], settings: Settings,
) -> None:
    client = TestClient(create_app(factory, settings=settings))

    asked = client.get("/subscribe?lang=cy")
    assert '<html lang="cy">' in asked.text
    assert "Dod o hyd i'ch ward" in asked.text and "Find your ward" not in asked.text
    assert asked.headers["content-language"] == "cy"
    assert 'href="/subscribe?lang=en"' in asked.text, "the switch back to English"
    remembered = client.get("/my-data")
    assert "Gweld neu ddileu eich data" in remembered.text, "the switch link's cookie"

    browser = TestClient(create_app(factory, settings=settings))
    welsh = browser.get("/subscribe", headers={"Accept-Language": "cy-GB,cy;q=0.9,en;q=0.5"})
    assert '<html lang="cy">' in welsh.text and "Tanysgrifio" in welsh.text
    english = browser.get("/subscribe", headers={"Accept-Language": "en-GB,en"})
    assert '<html lang="en-GB">' in english.text and "Find your ward" in english.text
    assert ">Cymraeg</a>" in english.text


def test_a_form_error_is_shown_in_the_page_language(
    factory: sessionmaker[Session], settings: Settings,
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    page = client.get("/my-data?lang=cy").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post("/my-data", data={"email": "not an address", "csrf_token": token})
    assert answer.status_code == 400
    assert "Rhowch gyfeiriad e-bost yn y fformat cywir" in answer.text
