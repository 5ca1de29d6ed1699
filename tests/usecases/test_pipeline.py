"""The pipeline end to end: feeds over HTTP → items → digests → SMTP on loopback."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.sources.collect import collect
from alerts.sources.registry import add_source
from alerts.usecases.digest_rounds import queue_digests
from subscriptions.base import utcnow
from subscriptions.subscribers import unsubscribe_everywhere
from tests.factories import make_subscriber, make_ward
from tests.servers import FeedServer, SinkHandler

NOW = utcnow()
FIRST_SESSION = (NOW + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
LONDON = ZoneInfo("Europe/London")


def rss(*items: tuple[str, str, str]) -> str:
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=2))}</pubDate>"
        f"<description><![CDATA[{body}]]></description></item>"
        for guid, title, body in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Team</title>{entries}' \
           "</channel></rss>"


def atom(title: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Hillcrest</title><id>urn:hill</id><updated>{NOW.isoformat()}</updated>"
        f"<entry><id>urn:hill:1</id><title>{title}</title><updated>{NOW.isoformat()}</updated>"
        "<content type='html'>&lt;p&gt;Hillcrest only.&lt;/p&gt;</content></entry></feed>"
    )


def calendar() -> str:
    start = FIRST_SESSION
    fmt = "%Y%m%dT%H%M%SZ"
    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN",
        "BEGIN:VEVENT", "UID:weekly-cafe", f"DTSTAMP:{NOW:{fmt}}",
        f"DTSTART:{start:{fmt}}", f"DTEND:{start + timedelta(hours=1):{fmt}}",
        "RRULE:FREQ=WEEKLY;COUNT=3", "SUMMARY:Cuppa with a copper", "LOCATION:Mill Lane café",
        "END:VEVENT",
        "BEGIN:VEVENT", "UID:called-off", f"DTSTAMP:{NOW:{fmt}}",
        f"DTSTART:{start + timedelta(days=1):{fmt}}",
        f"DTEND:{start + timedelta(days=1, hours=1):{fmt}}",
        "STATUS:CANCELLED", "SUMMARY:Walkabout that was called off", "END:VEVENT",
        "END:VCALENDAR", "",
    ])


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def run_round(factory: sessionmaker[Session], settings: Settings) -> None:
    report = collect(factory, settings)
    assert [r.error for r in report.results if r.error] == []
    queue_digests(factory, settings)
    deliver_due(factory, settings)


def test_each_confirmed_subscriber_gets_one_digest_of_their_own_ward_only(
    factory: sessionmaker[Session], feeds: FeedServer, smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    feeds.put("/riv.rss", rss(
        ("riv-1", "Bike marking on Saturday", "<p>Bring your bike.</p>"
         "<script>alert('x')</script><img src=x onerror=alert(1)>"),
        ("riv-2", "Lock your shed", "<p><a href='javascript:alert(1)'>tips</a></p>"),
    ), headers={"ETag": '"v1"'})
    feeds.put("/riv.ics", calendar(), content_type="text/calendar")
    feeds.put("/hil.atom", atom("Hillcrest parking checks"), content_type="application/atom+xml")
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        add_source(session, "RIV", "rss", feeds.url("/riv.rss"))
        add_source(session, "RIV", "ics", feeds.url("/riv.ics"))
        add_source(session, "HIL", "atom", feeds.url("/hil.atom"))
        make_subscriber(session, riv, "ann@home.example")
        make_subscriber(session, riv, "bob@home.example")
        make_subscriber(session, riv, "pending@home.example", confirmed=False)
        make_subscriber(session, riv, "gone@home.example")
        make_subscriber(session, hil, "cat@home.example")
        unsubscribe_everywhere(session, "gone@home.example")

    run_round(factory, settings)

    by_recipient = {r.rcpt_tos[0]: r for r in sink.received}
    assert sorted(by_recipient) == ["ann@home.example", "bob@home.example", "cat@home.example"]
    assert len(sink.received) == 3
    riverside = by_recipient["ann@home.example"].message
    html, text = html_of(riverside), text_of(riverside)
    for wanted in ("Bike marking on Saturday", "Lock your shed", "Cuppa with a copper"):
        assert wanted in html and wanted in text
    assert html.count("Cuppa with a copper") == 1, "a weekly session is shown once"
    for week in range(3):
        local = (FIRST_SESSION + timedelta(weeks=week)).astimezone(LONDON)
        assert f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M}" in html, week
    assert "called off" not in html
    assert "Hillcrest parking" not in html
    lowered = html.lower()
    assert "<script" not in lowered and "onerror" not in lowered
    assert "javascript:" not in lowered
    assert "call 999" in text.lower() and "101" in text and "crimestoppers" in text.lower()
    calendars = [p for p in riverside.walk() if p.get_content_type() == "text/calendar"]
    assert len(calendars) == 1 and calendars[0].get_content().count("BEGIN:VEVENT") == 3
    hillcrest = html_of(by_recipient["cat@home.example"].message)
    assert "Hillcrest parking checks" in hillcrest and "Bike marking" not in hillcrest

    sink.received.clear()
    run_round(factory, settings)
    assert sink.received == [], "a second round with nothing new sends nothing"

    feeds.put("/riv.rss", rss(
        ("riv-1", "Bike marking on Saturday", "<p>Bring your bike.</p>"),
        ("riv-2", "Lock your shed", "<p>tips</p>"),
        ("riv-3", "Found: a set of keys", "<p>Handed in at the station.</p>"),
    ), headers={"ETag": '"v2"'})
    run_round(factory, settings)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["ann@home.example",
                                                           "bob@home.example"]
    fresh = html_of(sink.received[0].message)
    assert "Found: a set of keys" in fresh
    assert "Bike marking" not in fresh and "Lock your shed" not in fresh
    assert "Cuppa with a copper" not in fresh
