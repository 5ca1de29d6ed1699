"""The officers' service layer: every function checks the ward is the person's own (the pages
are not the only guard), audits each change without a resident's address or words, and posts
and answers through the same services and outbox as the rest of the pipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.access import Forbidden, Principal, principal_for
from alerts.accounts.audit import AuditEntry
from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.inbound.replies import Reply, ReplyThread, ThreadAnswer
from alerts.mail.messages import Message, MessageKind
from alerts.sources.items import Item, ItemKind
from alerts.sources.registry import Source, SourceKind
from alerts.usecases import officers, posting
from alerts.usecases.posting import Draft
from alerts.usecases.staff import InputError, NotFound
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.subscribers import Frequency
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import Ward
from tests.factories import make_sent_message, make_subscriber, make_ward, signed

RESIDENT = "ann@home.example"
RESIDENT_WORDS = "Is the bike marking at the library still on this Saturday?"


@dataclasses.dataclass
class World:
    officer: Principal  # serves RIV only
    admin: Principal
    coordinator: Principal
    riv_delivery: int  # a digest delivered to Ann in RIV, that she can answer
    hil_delivery: int  # the same in HIL, to Bob


def build_world(factory: sessionmaker[Session]) -> World:
    """Wards RIV (Ann, confirmed, immediate; Cy, pending) and HIL (Bob), an officer of RIV,
    an administrator, a coordinator of a RIV scheme; a digest each ward's residents got."""
    from subscriptions.schemes import add_scheme

    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        ann = make_subscriber(session, riv, RESIDENT, name="Ann Example",
                              frequency=Frequency.IMMEDIATE)
        make_subscriber(session, riv, "cy@home.example", confirmed=False)
        bob = make_subscriber(session, hil, "bob@home.example")
        add_scheme(session, "Mill Lane watch", "RIV")
        officer = add_user(session, "pc.bloggs@police.example", Role.OFFICER,
                           ward_codes=["RIV"], name="PC Jo Bloggs")
        admin = add_user(session, "admin@police.example", Role.ADMIN)
        coordinator = add_user(session, "chair@watch.example", Role.COORDINATOR,
                               scheme_names=["Mill Lane watch"])
        riv_sent = make_sent_message(session, riv, [ann], subject="Riverside: your news")
        hil_sent = make_sent_message(session, hil, [bob], subject="Hillcrest: your news")
        return World(principal_for(session, officer), principal_for(session, admin),
                     principal_for(session, coordinator), riv_sent[ann.subscriber_id],
                     hil_sent[bob.subscriber_id])


def resident_email(factory: sessionmaker[Session], settings: Settings, delivery_id: int,
                   text: str, *, sender: str = RESIDENT,
                   subject: str = "Re: Riverside: your news") -> bytes:
    """An email a resident writes back to a delivery, to its signed reply address."""
    message = EmailMessage()
    message["From"] = sender
    with factory() as session:
        token = signed(session, settings.web.secret_key, Purpose.REPLY, delivery_id)
    message["To"] = f"reply+{token}@{settings.mail.reply_domain}"
    message["Subject"] = subject
    message.set_content(f"{text}\n\nOn Friday the team wrote:\n> Riverside news\n> more news\n")
    return message.as_bytes()


def reply(factory: sessionmaker[Session], settings: Settings, delivery_id: int,
          text: str = RESIDENT_WORDS, **kwargs: Any) -> int:
    """A resident's reply, taken in by the intake as real mail is; returns its thread id."""
    outcome = Intake(factory, settings).process(
        resident_email(factory, settings, delivery_id, text, **kwargs), via=Via.FILE)
    assert outcome.reply_id is not None, outcome
    with factory() as session:
        thread = session.scalar(select(ReplyThread.id).join_from(
            ReplyThread, Reply, Reply.thread_id == ReplyThread.id)
            .where(Reply.id == outcome.reply_id))
        assert thread is not None
        return thread


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    return build_world(factory)


def count(session: Session, model: type, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def audit(session: Session) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def team_update(**changes: Any) -> Draft:
    draft = Draft(kind=ItemKind.POST, title="Bikes marked at the library",
                  body="We marked 40 bikes on Saturday.\n\nThank you to everyone who came.")
    return dataclasses.replace(draft, **changes)


# --- wards ---------------------------------------------------------------------------------


def test_an_officer_sees_their_own_wards_with_figures_and_an_administrator_every_ward(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    reply(factory, settings, world.riv_delivery)
    with factory() as session:
        (riv,) = officers.wards_at_a_glance(session, world.officer)
        assert (riv.code, riv.confirmed, riv.pending, riv.open_threads) == ("RIV", 1, 1, 1)
        assert riv.queued == 1  # the acknowledgement of Ann's reply
        assert riv.last_digest_at is not None
        assert [w.code for w in officers.wards_at_a_glance(session, world.admin)] == \
            ["HIL", "RIV"]
        assert officers.wards_at_a_glance(session, world.coordinator) == []


def test_an_officer_cannot_open_any_page_of_another_ward(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    now = utcnow()
    calls: list[Callable[[Session], object]] = [
        lambda s: officers.ward_glance(s, world.officer, "HIL"),
        lambda s: officers.recent_items(s, world.officer, "HIL"),
        lambda s: officers.ward_sources(s, world.officer, "HIL"),
        lambda s: officers.digest_preview(s, settings, world.officer, "HIL", now=now),
        lambda s: officers.inbox(s, world.officer, "HIL"),
        lambda s: posting.preview_draft(s, settings, world.officer, "HIL", team_update(),
                                        now=now),
    ]
    with factory() as session:
        for call in calls:
            with pytest.raises(Forbidden):
                call(session)
        with pytest.raises(Forbidden):
            officers.ward_glance(session, world.coordinator, "RIV")
        with pytest.raises(NotFound):
            officers.ward_glance(session, world.officer, "NOPE")


def test_the_sources_page_lists_the_wards_feeds_and_the_teams_own_posts(
        factory: sessionmaker[Session], world: World) -> None:
    from alerts.sources.registry import add_source

    with factory.begin() as session:
        add_source(session, "RIV", "rss", "https://example.org/riverside.rss")
        add_source(session, "HIL", "rss", "https://example.org/hillcrest.rss")
    with factory() as session:
        rows = officers.ward_sources(session, world.officer, "RIV")
    assert [(row.kind, row.url) for row in rows] == [("rss", "https://example.org/riverside.rss")]


# --- posting -------------------------------------------------------------------------------


def test_a_published_post_is_stored_under_the_wards_officer_source_and_audited(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    with factory.begin() as session:
        done = posting.publish_draft(session, settings, world.officer, "RIV", team_update(),
                                     now=utcnow())
    with factory() as session:
        (item,) = session.scalars(select(Item).where(Item.id.in_(done.item_ids)))
        source = session.get_one(Source, item.source_id)
        assert (source.kind, source.url) == (SourceKind.OFFICER, "officer:RIV")
        assert item.kind == ItemKind.POST and item.title == "Bikes marked at the library"
        assert item.body_html.count("<p>") == 2
        (entry,) = audit(session)
        assert (entry.actor, entry.action, entry.target, entry.user_id) == (
            "pc.bloggs@police.example", "item.post", f"item {item.id}", world.officer.user_id)
        assert entry.detail == "ward RIV"


def test_an_officer_cannot_publish_to_another_ward_and_nothing_is_stored(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    for draft in (team_update(), team_update(kind=ItemKind.ALERT)):
        with factory.begin() as session, pytest.raises(Forbidden):
            posting.publish_draft(session, settings, world.officer, "HIL", draft,
                                  now=utcnow())
    with factory() as session:
        assert count(session, Item) == 0
        assert count(session, Message, Message.kind == MessageKind.ALERT) == 0
        assert audit(session) == []


def test_a_contact_session_needs_a_start_in_the_future_and_an_end_after_it(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    now = utcnow()
    cases = [
        (Draft(ItemKind.SESSION, "Coffee with your team", "Come and chat."), "starts"),
        (Draft(ItemKind.SESSION, "Coffee", "Chat.", starts=now - timedelta(hours=1)), "starts"),
        (Draft(ItemKind.SESSION, "Coffee", "Chat.", starts=now + timedelta(days=2),
               ends=now + timedelta(days=1)), "ends"),
        (Draft(ItemKind.POST, "  ", "Text"), "title"),
        (Draft(ItemKind.ADVICE, "Lock your shed", "   "), "body"),
    ]
    with factory() as session:
        for draft, field in cases:
            with pytest.raises(InputError) as refused:
                posting.publish_draft(session, settings, world.officer, "RIV", draft, now=now)
            assert field in refused.value.errors
    good = Draft(ItemKind.SESSION, "Coffee with your team", "Come and chat.",
                 starts=now + timedelta(days=3), ends=now + timedelta(days=3, hours=2),
                 location="The Mill Lane café")
    with factory.begin() as session:
        done = posting.publish_draft(session, settings, world.officer, "RIV", good, now=now)
    with factory() as session:
        item = session.get_one(Item, done.item_ids[0])
        assert item.location == "The Mill Lane café" and item.starts_at == good.starts


def test_a_preview_renders_the_real_email_and_stores_nothing(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    with factory() as session:
        preview = posting.preview_draft(session, settings, world.officer, "RIV",
                                        team_update(), now=utcnow())
        assert preview.rendered.subject == "Bikes marked at the library (Riverside)"
        assert "We marked 40 bikes" in preview.rendered.text
        assert "call 999" in preview.rendered.text  # the how-to-report footer
        assert (preview.confirmed, preview.immediate) == (1, 1)
        shown = officers.for_display(preview.rendered.html)
        assert "__ALERTS_" not in shown
        alert = posting.preview_draft(session, settings, world.officer, "RIV",
                                      team_update(kind=ItemKind.ALERT), now=utcnow())
        assert alert.rendered.subject.startswith("[Urgent] ")
        assert alert.rendered.subject.endswith("(Riverside)")
        assert count(session, Item) == count(session, AuditEntry) == 0


def test_an_urgent_alert_is_queued_at_once_for_every_confirmed_subscriber_and_audited(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    with factory.begin() as session:
        done = posting.publish_draft(session, settings, world.officer, "RIV",
                                     team_update(kind=ItemKind.ALERT, title="Road closed"),
                                     now=utcnow())
    assert done.deliveries == 1  # Ann; Cy has not confirmed
    with factory() as session:
        delivery = session.scalars(select(Delivery).where(
            Delivery.message_id == done.message_id)).one()
        assert delivery.status == DeliveryStatus.QUEUED and delivery.priority > 0
        (entry,) = audit(session)
        assert (entry.action, entry.target) == ("alert.urgent", f"message {done.message_id}")


def test_the_digest_preview_shows_what_is_new_and_nothing_when_nothing_is(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    with factory() as session:
        assert officers.digest_preview(session, settings, world.officer, "RIV",
                                       now=utcnow()) is None
    with factory.begin() as session:
        posting.publish_draft(session, settings, world.officer, "RIV", team_update(),
                              now=utcnow())
    with factory() as session:
        digest = officers.digest_preview(session, settings, world.officer, "RIV", now=utcnow())
        assert digest is not None and "Bikes marked at the library" in digest.text


# --- replies -------------------------------------------------------------------------------


def test_the_inbox_shows_the_residents_new_words_apart_from_the_quote_newest_first(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    first = reply(factory, settings, world.riv_delivery)
    with factory.begin() as session:
        ward = session.scalars(select(Ward).where(Ward.code == "RIV")).one()
        other = make_subscriber(session, ward, "dee@home.example")
        sent = make_sent_message(session, ward, [other], subject="Riverside: more news")
    second = reply(factory, settings, sent[other.subscriber_id],
                   "I saw someone breaking into a car right now on Mill Lane",
                   sender="dee@home.example", subject="Re: Riverside: more news")
    with factory() as session:
        threads = officers.inbox(session, world.officer, "RIV")
    assert [t.id for t in threads] == [second, first]
    assert threads[0].flagged and not threads[1].flagged
    assert threads[1].latest_text == RESIDENT_WORDS
    assert "Riverside news" not in threads[1].latest_text  # the quote is kept apart
    assert threads[1].resident == "Ann Example" and threads[1].open


def test_an_officer_cannot_read_mark_or_answer_a_thread_of_another_ward(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    hil_thread = reply(factory, settings, world.hil_delivery, sender="bob@home.example",
                       subject="Re: Hillcrest: your news")
    now = utcnow()
    with factory() as session:
        for call in (
            lambda: officers.read_thread(session, world.officer, hil_thread),
            lambda: officers.mark_handled(session, world.officer, hil_thread, handled=True,
                                          now=now),
            lambda: officers.answer_thread(session, settings, world.officer, hil_thread,
                                           "Thanks", now=now),
        ):
            with pytest.raises(Forbidden):
                call()
        session.rollback()
        assert count(session, Message, Message.kind == MessageKind.TEAM_ANSWER) == 0
        assert session.get_one(ReplyThread, hil_thread).handled_at is None
        assert audit(session) == []
        with pytest.raises(NotFound):
            officers.read_thread(session, world.officer, hil_thread + 1000)


def test_an_answer_is_queued_for_the_resident_in_the_thread_and_audited_without_their_words(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    thread_id = reply(factory, settings, world.riv_delivery)
    with factory.begin() as session:
        answered = officers.answer_thread(
            session, settings, world.officer, thread_id,
            "Yes, 10 till 12 at the library.\n\nBring your bike and some ID.", now=utcnow())
    with factory() as session:
        message = session.get_one(Message, answered.message_id)
        assert message.kind == MessageKind.TEAM_ANSWER
        assert message.subject == "Re: Riverside: your news"
        assert "Bring your bike and some ID." in message.text
        assert "PC Jo Bloggs" in message.text
        assert RESIDENT_WORDS in message.text  # what they wrote, quoted back to them
        assert "call 999" in message.text and "Crimestoppers" in message.text
        assert session.get_one(ThreadAnswer, message.id).thread_id == thread_id
        assert count(session, Delivery, Delivery.message_id == message.id,
                     Delivery.status == DeliveryStatus.QUEUED) == 1
        view = officers.read_thread(session, world.officer, thread_id)
        assert not view.open
        assert [e.kind for e in view.entries] == ["reply", "reply_ack", "team_answer"]
        (entry,) = audit(session)
        assert (entry.action, entry.target) == ("reply.answer", f"thread {thread_id}")
        for written in (entry.target, entry.detail):
            assert RESIDENT not in written and "library" not in written


def test_an_empty_answer_or_one_to_a_suppressed_address_is_refused(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    thread_id = reply(factory, settings, world.riv_delivery)
    with factory() as session:
        with pytest.raises(InputError) as empty:
            officers.answer_thread(session, settings, world.officer, thread_id, "  \n",
                                   now=utcnow())
        assert "answer" in empty.value.errors
    with factory.begin() as session:
        suppress(session, RESIDENT, SuppressionReason.HARD_BOUNCE, "550 user unknown")
    with factory() as session:
        assert officers.read_thread(session, world.officer, thread_id).cannot_answer
        with pytest.raises(InputError, match="suppression list"):
            officers.answer_thread(session, settings, world.officer, thread_id, "Thanks",
                                   now=utcnow())


def test_a_handled_thread_opens_again_when_the_resident_writes_again(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    thread_id = reply(factory, settings, world.riv_delivery)
    with factory.begin() as session:
        officers.mark_handled(session, world.officer, thread_id, handled=True, now=utcnow())
    with factory() as session:
        assert not officers.inbox(session, world.officer, "RIV")[0].open
        assert officers.wards_at_a_glance(session, world.officer)[0].open_threads == 0
        assert [e.action for e in audit(session)] == ["reply.handled"]
    assert reply(factory, settings, world.riv_delivery, "And what about Sunday?") == thread_id
    with factory() as session:
        assert officers.inbox(session, world.officer, "RIV")[0].open
