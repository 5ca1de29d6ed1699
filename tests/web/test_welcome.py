"""The welcome a resident's own confirmation brings, on both stores: exactly one welcome
email however often the button is pressed (twice, or twice at once), saying when the first
digest comes from the ward's own schedule, with the resident's preferences and unsubscribe
links and the how-to-report block; the page that confirms says the same; an address added
with prior consent declared elsewhere gets none.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from babel.dates import format_date
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.usecases.confirmations import confirm
from subscriptions.base import utcnow
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward
from tests.processes import twice_at_once
from tests.servers import Received, SinkHandler
from tests.web.test_residents import (
    client_for,
    confirm_by_button,
    confirm_link,
    csrf_of,
    link_path,
    sign_up,
)

CRON = "0 8 * * mon"
ZONE = "Europe/London"


def wards(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside").digest_cron = CRON
        make_ward(session, "HIL", "Hillcrest")


def first_monday() -> str:
    """The day the ward's cron next fires, as the welcome says it: 'Monday 14 December'."""
    zone = ZoneInfo(ZONE)
    fire = CronTrigger.from_crontab(CRON, timezone=ZONE).get_next_fire_time(
        None, datetime.now(zone))
    assert fire is not None
    return format_date(fire.astimezone(zone), "EEEE d MMMM", locale="en_GB")


def welcomes(factory: sessionmaker[Session]) -> list[tuple[str, int]]:
    """Each welcome message stored, with how many outbox rows it has."""
    with factory() as session:
        return [(subject, rows) for subject, rows in session.execute(
            select(Message.subject, func.count(Delivery.id))
            .join(Delivery, Delivery.message_id == Message.id)
            .where(Message.kind == "welcome").group_by(Message.id, Message.subject))]


def confirmation(client: TestClient, sink: SinkHandler, settings: Settings,
                 factory: sessionmaker[Session], email: str) -> str:
    status, _ = sign_up(client, email, "RIV")
    assert status == 200
    deliver_due(factory, settings)
    [mail] = [r for r in sink.received if r.rcpt_tos == [email]]
    return confirm_link(mail)


def test_confirming_twice_queues_one_welcome_and_the_page_says_when_the_first_digest_comes(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    sink, settings = smtp
    wards(factory)
    client = client_for(factory, settings)
    path = confirmation(client, sink, settings, factory, "jo@home.example")

    page = confirm_by_button(client, path)
    again = confirm_by_button(client, path)  # a double click, a scanner, the link reopened

    assert welcomes(factory) == [("Welcome to neighbourhood alerts for Riverside", 1)]
    day = first_monday()
    for answer in (page, again):
        assert answer.status_code == 200 and "You are subscribed" in answer.text
        assert f"your first digest comes {day}, around 8am" in answer.text
        preferences = re.search(r'href="https://alerts\.example\.org(/preferences/[^"]+)"',
                                answer.text)
        assert preferences, "the page links to the resident's preferences"
        opened = client.get(preferences.group(1))
        assert opened.status_code == 200 and "Riverside" in opened.text
    assert "A welcome email is on its way" in page.text
    assert "A welcome email is on its way" not in again.text


def test_the_welcome_email_has_the_first_digest_preferences_replies_and_how_to_report(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    sink, settings = smtp
    wards(factory)
    client = client_for(factory, settings)
    confirm_by_button(client, confirmation(client, sink, settings, factory, "jo@home.example"))
    deliver_due(factory, settings)

    [mail] = [r for r in sink.received
              if r.message["Subject"] == "Welcome to neighbourhood alerts for Riverside"]
    assert mail.rcpt_tos == ["jo@home.example"]
    assert welcome_reads_right(mail)
    one_click, _mailto = str(mail.message["List-Unsubscribe"]).split(", ")
    assert one_click.startswith("<https://alerts.example.org/unsubscribe/")
    assert str(mail.message["Reply-To"]).startswith("reply+")
    text = body(mail, "plain")
    preferences = re.search(r"https://alerts\.example\.org(/preferences/\S+)", text)
    assert preferences
    assert client.get(link_path(preferences.group(1))).status_code == 200
    deliver_due(factory, settings)
    assert welcomes(factory) == [("Welcome to neighbourhood alerts for Riverside", 1)]


def body(mail: Received, kind: str) -> str:
    part = mail.message.get_body((kind,))
    assert part is not None
    return str(part.get_content())


def words(content: str) -> str:
    """The text of a body as a reader sees it, tags dropped and spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", content).split()).replace(" :", ":")


def welcome_reads_right(mail: Received) -> bool:
    day = first_monday()
    for kind in ("plain", "html"):
        raw = body(mail, kind)
        assert "alerts.example.org/preferences/" in raw, kind
        assert "alerts.example.org/unsubscribe/" in raw, kind
        content = words(raw)
        assert f"Riverside: your first digest comes {day}, around 8am, then one a week" \
            in content, kind
        assert "goes to the Riverside neighbourhood team" in content, kind
        assert "999" in content and "101" in content and "Crimestoppers" in content, kind
    return True


def test_two_confirmations_at_once_queue_one_welcome(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    sink, settings = smtp
    wards(factory)
    client = client_for(factory, settings)
    token = confirmation(client, sink, settings, factory, "jo@home.example").rsplit("/", 1)[1]
    def press() -> None:
        with transaction(factory) as session:
            assert confirm(session, settings, token, now=utcnow()) is not None

    twice_at_once(press)
    assert welcomes(factory) == [("Welcome to neighbourhood alerts for Riverside", 1)]


def test_an_address_added_with_prior_consent_declared_gets_no_welcome(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    sink, settings = smtp
    wards(factory)
    with factory.begin() as session:
        make_subscriber(session, get_ward(session, "RIV"), "imported@home.example")
    client = client_for(factory, settings)
    # Their own sign-up for a ward they already have changes nothing and welcomes nobody.
    token = csrf_of(client.get("/subscribe").text)
    client.post("/subscribe", data={"email": "imported@home.example", "wards": ["RIV"],
                                    "frequency": "weekly", "csrf_token": token})
    deliver_due(factory, settings)
    assert welcomes(factory) == []
    assert sink.received == []
