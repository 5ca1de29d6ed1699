"""A digest lists a readable number of contact sessions and items, whatever comes in: the
soonest sessions and the newest posts and advice, up to the limits in `compose`, and counts
the rest with a link to the ward's page. That holds for the email as a resident gets it (its
HTML, its text and its calendar), in one language or two, and for the printed sheet. A
calendar that once repeated without end made 59,933 sessions and an 8 MB digest.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.delivery.sender import deliver_due
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases.digest_rounds import queue_digests
from subscriptions.languages import Language
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler
from tests.usecases.test_printed_digests import alerts, assert_a4, config, pdf_pages  # noqa: F401

# What a digest lists (alerts.digests.compose.MAX_LISTED_SESSIONS, MAX_LISTED_ITEMS and
# MAX_LISTED_DATES): the soonest ten sessions, the newest ten posts and the newest ten pieces
# of advice, and of a session held on many dates, its first ten.
MAX_LISTED_SESSIONS = 10
MAX_LISTED_ITEMS = 10
MAX_LISTED_DATES = 10
SESSIONS = 500
POSTS = 200
ADVICE = 100
WARD_PAGE = "https://alerts.example.org/wards/RIV/"
GMAIL_CLIPS_AT = 102 * 1024
BODY = ("<p>Officers were on Mill Lane again this week after residents told us about "
        "cars parked across driveways and on the pavement near the school at home time. "
        "We spoke to drivers, left notes on windscreens and will be back next week. If "
        'you see it happen, <a href="https://riverside.example.org/parking">tell us '
        "here</a> with the time and the place.</p>")


def title(kind: str, n: int) -> str:
    return f"{kind} number {n:03d}"


def busy_ward(factory: sessionmaker[Session], *, one_series: bool = False,
              language: Language = Language.ENGLISH) -> None:
    """Riverside with a subscriber, then 500 coming sessions (Session number 001 the soonest),
    200 team posts and 100 pieces of advice (number 001 the newest of each)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with transaction(factory) as session:
        ward = make_ward(session, "RIV", "Riverside")
        ward.language = language
        make_subscriber(session, ward, "reader@home.example")
    items = [
        CollectedItem(guid=f"session:{n}", kind=ItemKind.SESSION,
                      title="Weekly surgery" if one_series else title("Session", n),
                      body_html="<p>Drop in for a chat.</p>", location="Mill Lane library",
                      starts_at=now + timedelta(days=1, hours=n),
                      ends_at=now + timedelta(days=1, hours=n, minutes=30))
        for n in range(SESSIONS, 0, -1)
    ] + [
        CollectedItem(guid=f"post:{n}", kind=ItemKind.POST, title=title("Post", n),
                      body_html=BODY, link=f"https://riverside.example.org/news/{n}",
                      published_at=now - timedelta(minutes=n))
        for n in range(POSTS, 0, -1)
    ] + [
        CollectedItem(guid=f"advice:{n}", kind=ItemKind.ADVICE, title=title("Advice", n),
                      body_html=BODY, published_at=now - timedelta(minutes=n))
        for n in range(ADVICE, 0, -1)
    ]
    for start in range(0, len(items), 100):
        with transaction(factory) as session:
            store_items(session, officer_source(session, get_ward(session, "RIV")),
                        items[start:start + 100])


def numbers(kind: str, text: str) -> set[int]:
    return {int(n) for n in re.findall(rf"{kind} number (\d{{3}})", text)}


def part(message: EmailMessage, subtype: str) -> str:
    found = message.get_body((subtype,))
    assert found is not None
    return str(found.get_content())


def the_digest(factory: sessionmaker[Session], sink: SinkHandler,
               settings: Settings) -> EmailMessage:
    [outcome] = queue_digests(factory, settings, ward_code="RIV")
    assert outcome.items == SESSIONS + POSTS + ADVICE, "the digest covers every item"
    deliver_due(factory, settings)
    [received] = [r.message for r in sink.received if r.rcpt_tos == ["reader@home.example"]]
    return received


def assert_lists_the_first_and_counts_the_rest(text: str) -> None:
    assert numbers("Session", text) == set(range(1, MAX_LISTED_SESSIONS + 1)), "the soonest"
    assert numbers("Post", text) == set(range(1, MAX_LISTED_ITEMS + 1)), "the newest"
    assert numbers("Advice", text) == set(range(1, MAX_LISTED_ITEMS + 1)), "the newest"
    assert f"And {SESSIONS - MAX_LISTED_SESSIONS} more contact sessions." in text
    assert f"And {POSTS - MAX_LISTED_ITEMS} more team updates." in text
    assert f"And {ADVICE - MAX_LISTED_ITEMS} more pieces of advice." in text


def test_a_digest_of_500_sessions_and_300_posts_lists_the_first_counts_the_rest_and_links_the_ward_page(  # noqa: E501
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    busy_ward(factory)

    digest = the_digest(factory, sink, settings)

    assert "500 contact sessions" in digest["Subject"], "the subject counts them all"
    assert "300 updates" in digest["Subject"]
    html, text = part(digest, "html"), part(digest, "plain")
    assert_lists_the_first_and_counts_the_rest(html)
    assert_lists_the_first_and_counts_the_rest(text)
    assert html.count(f'href="{WARD_PAGE}"') == 3, "each section links to the ward's page"
    assert text.count(f"See them on the Riverside page: {WARD_PAGE}") == 3
    assert len(html.encode()) < GMAIL_CLIPS_AT / 2, len(html.encode())
    assert len(digest.as_bytes()) < GMAIL_CLIPS_AT, "the whole email, calendar included"
    [calendar] = [p for p in digest.walk() if p.get_content_type() == "text/calendar"]
    assert calendar.get_content().count("BEGIN:VEVENT") == MAX_LISTED_SESSIONS


def test_one_session_repeated_without_end_lists_ten_dates_and_the_calendar_ten_events(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    busy_ward(factory, one_series=True)

    digest = the_digest(factory, sink, settings)

    html, text = part(digest, "html"), part(digest, "plain")
    assert "1 contact session" in digest["Subject"], "one session, however many dates"
    assert html.count("Weekly surgery") == 1, "one series, shown once"
    assert text.count("When: ") == MAX_LISTED_DATES
    assert "more contact session" not in text
    for body in (html, text):
        assert f"And {SESSIONS - MAX_LISTED_DATES} more dates." in body
    [calendar] = [p for p in digest.walk() if p.get_content_type() == "text/calendar"]
    assert calendar.get_content().count("BEGIN:VEVENT") == MAX_LISTED_DATES


def test_a_bilingual_digest_holds_both_languages_within_the_limits_and_unclipped(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    busy_ward(factory, language=Language.BILINGUAL)

    digest = the_digest(factory, sink, settings)

    html, text = part(digest, "html"), part(digest, "plain")
    for body in (html, text):
        assert numbers("Post", body) == set(range(1, MAX_LISTED_ITEMS + 1))
        assert f"And {POSTS - MAX_LISTED_ITEMS} more team updates." in body, "English"
        assert f"{POSTS - MAX_LISTED_ITEMS} diweddariad arall gan y tîm." in body, "Welsh"
    assert html.count(f'href="{WARD_PAGE}"') == 6, "three sections, in each language"
    assert len(html.encode()) < GMAIL_CLIPS_AT, len(html.encode())


def test_the_printed_digest_lists_within_the_same_limits_and_writes_out_the_ward_page(
        factory: sessionmaker[Session], settings: Settings, config: Path,  # noqa: F811
        tmp_path: Path) -> None:
    busy_ward(factory)
    queue_digests(factory, settings, ward_code="RIV")
    out = tmp_path / "riverside.pdf"

    result = alerts(config, "digest", "print", "--ward", "RIV", "--out", str(out))

    assert result.exit_code == 0, result.output
    pages = pdf_pages(out.read_bytes())
    assert_a4(pages)
    text = " ".join(page.text for page in pages)
    assert numbers("Session", text) == set(range(1, MAX_LISTED_SESSIONS + 1))
    assert numbers("Post", text) == set(range(1, MAX_LISTED_ITEMS + 1))
    assert numbers("Advice", text) == set(range(1, MAX_LISTED_ITEMS + 1))
    assert (f"And {SESSIONS - MAX_LISTED_SESSIONS} more contact sessions. "
            f"See them online at: {WARD_PAGE}") in text
    assert f"And {POSTS - MAX_LISTED_ITEMS} more team updates. See them online at" in text
    assert f"And {ADVICE - MAX_LISTED_ITEMS} more pieces of advice. See them online" in text
    assert len(pages) < 20, len(pages)
