"""Topics: residents who follow some topics get only posts on them (and untagged news);
urgent alerts ignore topics; officers may tag only with the deployer's topics."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.sources.items import ItemKind, store_items
from alerts.sources.officer import officer_item
from alerts.sources.registry import SourceError, officer_source
from alerts.usecases.digest_rounds import queue_digests, queue_immediate
from alerts.usecases.posting import post_urgent
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency, Subscriber
from subscriptions.topics import TopicError, choose_topics, follows, join_topics, topics_by_ward
from subscriptions.wards import Ward, get_ward
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler

KNOWN = ("burglary", "scams", "vehicle crime")


def tagged_post(session: Session, settings: Settings, ward: Ward, title: str,
                *topics: str) -> int:
    item = officer_item(title=title, body=f"About {title}.", kind=ItemKind.POST, starts=None,
                        ends=None, location=None, now=utcnow(), topics=topics,
                        known_topics=settings.topics.names)
    return store_items(session, officer_source(session, ward), [item]).new_item_ids[0]


def follow(session: Session, ward: Ward, email: str, *topics: str,
           frequency: Frequency = Frequency.WEEKLY) -> None:
    subscription = make_subscriber(session, ward, email, frequency=frequency)
    subscription.topics = join_topics(topics) if topics else None


def mail_to(sink: SinkHandler, address: str) -> list[EmailMessage]:
    return [r.message for r in sink.received if r.rcpt_tos == [address]]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_resident_following_only_scams_gets_the_scam_post_not_the_burglary_one_and_still_the_urgent_alert(  # noqa: E501
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        follow(session, ward, "scams-only@home.example", "scams")
        follow(session, ward, "everything@home.example")
    with factory.begin() as session:
        ward = get_ward(session, "RIV")
        tagged_post(session, settings, ward, "Courier fraud calls this week", "scams")
        tagged_post(session, settings, ward, "Sheds broken into on Mill Lane", "burglary")
        tagged_post(session, settings, ward, "Meet our new PCSO")
    queue_digests(factory, settings, ward_code="RIV")
    deliver_due(factory, settings)

    [digest] = mail_to(sink, "scams-only@home.example")
    text = text_of(digest)
    assert "Courier fraud calls this week" in text
    assert "Sheds broken into" not in text
    assert "Meet our new PCSO" in text, "untagged team news goes to everyone"
    [everything] = mail_to(sink, "everything@home.example")
    assert "Courier fraud" in text_of(everything) and "Sheds broken into" in text_of(everything)

    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="Road closed by the school",
                    body="Avoid Station Road until further notice.", now=utcnow())
    deliver_due(factory, settings)
    subjects = [str(m["Subject"]) for m in mail_to(sink, "scams-only@home.example")]
    assert subjects[1:] == ["[Urgent] Road closed by the school (Riverside)"]


def test_residents_with_the_same_topics_share_one_rendered_digest(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ward = make_ward(session)
        for n in range(3):
            follow(session, ward, f"scams{n}@home.example", "scams")
        follow(session, ward, "both@home.example", "scams", "burglary")
        follow(session, ward, "all@home.example")
        tagged_post(session, settings, ward, "Courier fraud", "scams")
        code = ward.code
    [outcome] = queue_digests(factory, settings, ward_code=code)
    assert len(outcome.message_ids) == 3, "one message per set of topics followed"
    assert outcome.deliveries == 5
    with factory() as session:
        by_address = {email: message_id for email, message_id in session.execute(
            select(Subscriber.email, Delivery.message_id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id))}
    assert len({by_address[f"scams{n}@home.example"] for n in range(3)}) == 1
    assert len(set(by_address.values())) == 3


def test_a_burglary_only_resident_gets_no_digest_when_only_scams_are_new(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ward = make_ward(session)
        follow(session, ward, "burglary@home.example", "burglary")
        follow(session, ward, "all@home.example")
        tagged_post(session, settings, ward, "Courier fraud", "scams")
        code = ward.code
    queue_digests(factory, settings, ward_code=code)
    with factory() as session:
        got = set(session.scalars(select(Subscriber.email).join(
            Delivery, Delivery.subscriber_id == Subscriber.id)))
    assert got == {"all@home.example"}
    # The post was passed over for them, not kept back: the next digest does not repeat it.
    with factory.begin() as session:
        tagged_post(session, settings, get_ward(session, code), "Shed break-ins", "burglary")
    [outcome] = queue_digests(factory, settings, ward_code=code)
    with factory() as session:
        texts = {email: text for email, text in session.execute(
            select(Subscriber.email, Message.text)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .join(Message, Message.id == Delivery.message_id)
            .where(Message.id.in_(outcome.message_ids)))}
    assert "Shed break-ins" in texts["burglary@home.example"]
    assert "Courier fraud" not in texts["burglary@home.example"]


def test_immediate_residents_hear_at_once_only_of_posts_on_their_topics(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ward = make_ward(session)
        follow(session, ward, "now-scams@home.example", "scams", frequency=Frequency.IMMEDIATE)
        follow(session, ward, "now-all@home.example", frequency=Frequency.IMMEDIATE)
        tagged_post(session, settings, ward, "Courier fraud", "scams")
        tagged_post(session, settings, ward, "Shed break-ins", "burglary")
        queue_immediate(session, ward, settings, utcnow())
        name = ward.name
    with factory() as session:
        titles = sorted((email, subject) for email, subject in session.execute(
            select(Subscriber.email, Message.subject)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .join(Message, Message.id == Delivery.message_id)))
    assert [t for t in titles if t[0] == "now-scams@home.example"] == [
        ("now-scams@home.example", f"Courier fraud ({name})")]
    assert [t for t in titles if t[0] == "now-all@home.example"] == [
        ("now-all@home.example", f"Courier fraud ({name})"),
        ("now-all@home.example", f"Shed break-ins ({name})")]


def test_an_officer_may_tag_only_with_the_deployers_topics_and_never_an_urgent_alert(
    settings: Settings,
) -> None:
    with pytest.raises(SourceError, match="not one of"):
        officer_item(title="x", body="y", kind=ItemKind.POST, starts=None, ends=None,
                     location=None, now=utcnow(), topics=["knitting"],
                     known_topics=settings.topics.names)
    with pytest.raises(SourceError, match="everyone"):
        officer_item(title="x", body="y", kind=ItemKind.ALERT, starts=None, ends=None,
                     location=None, now=utcnow(), topics=["scams"],
                     known_topics=settings.topics.names)
    item = officer_item(title="x", body="y", kind=ItemKind.POST, starts=None, ends=None,
                        location=None, now=utcnow(), topics=[" Scams ", "BURGLARY", "scams"],
                        known_topics=settings.topics.names)
    assert item.topics == "burglary,scams"


def test_topic_rules() -> None:
    assert follows(None, "scams") and follows("burglary", "")
    assert follows("burglary,scams", "scams,vehicle crime")
    assert not follows("burglary", "scams")
    assert choose_topics(["Vehicle  Crime"], KNOWN) == ["vehicle crime"]
    with pytest.raises(TopicError, match="burglary, scams, vehicle crime"):
        choose_topics(["knitting"], KNOWN)
    assert topics_by_ward(["RIV", "HIL"], ["HIL"], ["RIV:scams", "HIL:burglary", "XXX:scams"],
                          KNOWN) == {"RIV": "scams", "HIL": None}
    with pytest.raises(TopicError, match="at least one topic"):
        topics_by_ward(["RIV"], [], [], KNOWN)
