"""Intake: what each kind of inbound mail changes, and what it must never change."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import make_engine, migrate, session_factory
from alerts.delivery.outbox import Delivery
from alerts.inbound.classify import Kind
from alerts.inbound.forward import forward_state
from alerts.inbound.intake import Intake
from alerts.inbound.journal import InboundRecord, Via
from alerts.inbound.replies import Reply, ReplyThread
from alerts.mail.messages import Message, MessageKind
from alerts.usecases.my_data import erase_data, export_data
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.subscribers import Status, Subscriber, Subscription
from subscriptions.suppression import is_suppressed
from tests.factories import make_sent_message, make_subscriber, make_ward, signed

DOMAIN = "reply.example.org"


@pytest.fixture
def inbound_settings(settings: Settings, tmp_path: Path) -> Settings:
    return dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, held_dir=str(tmp_path / "held"), soft_bounce_limit=3,
        soft_bounce_days=30))


@pytest.fixture
def intake(factory: sessionmaker[Session], inbound_settings: Settings) -> Intake:
    return Intake(factory, inbound_settings)


@dataclasses.dataclass
class Sent:
    ann: int  # subscriber ids
    bob: int
    ann_delivery: int
    bob_delivery: int
    ann_subscription: int


@pytest.fixture
def sent(factory: sessionmaker[Session]) -> Sent:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example", name="Ann Example")
        bob = make_subscriber(session, ward, "bob@home.example")
        deliveries = make_sent_message(session, ward, [ann, bob])
        return Sent(ann.subscriber_id, bob.subscriber_id, deliveries[ann.subscriber_id],
                    deliveries[bob.subscriber_id], ann.id)


def address(factory: sessionmaker[Session], settings: Settings, prefix: str, purpose: Purpose,
            ident: int) -> str:
    with factory() as session:
        return f"{prefix}+{signed(session, settings.web.secret_key, purpose, ident)}@{DOMAIN}"


def email(to: str, text: str, *, sender: str = "ann@home.example", subject: str = "Re: news",
          headers: dict[str, str] | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    return message.as_bytes()


def count(factory: sessionmaker[Session], model: type, *where: object) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


def answers(factory: sessionmaker[Session], kind: MessageKind) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Delivery)
                              .join(Message, Message.id == Delivery.message_id)
                              .where(Message.kind == kind)) or 0


def soft_bounce(recipient: str, to: str, n: int) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.home.example\r\nTo: {to}\r\n"
        f"Subject: Delivery Status Notification (Delay) {n}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\r\n\r\n'
        "--X\r\nContent-Type: text/plain\r\n\r\nMailbox full, will keep trying.\r\n"
        "--X\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
        "--X--\r\n").encode()


def test_reply_is_stored_with_its_ward_message_and_resident(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    outcome = intake.process(email(to, "Is the bike marking still on?\n\n> old digest text"),
                             via=Via.FILE)
    assert outcome.kind == Kind.REPLY and outcome.reply_id is not None
    with factory() as session:
        reply = session.get_one(Reply, outcome.reply_id)
        assert reply.subscriber_id == sent.ann
        assert reply.text == "Is the bike marking still on?"
        assert "old digest text" in reply.quoted
        forward = forward_state(session, reply.id)
        assert forward is not None and forward.forwarded_at is None  # queued for the team
    assert answers(factory, MessageKind.REPLY_ACK) == 1


def test_a_reply_to_the_acknowledgement_joins_the_thread_and_gets_no_second_one(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    intake.process(email(to, "First reply."), via=Via.FILE)
    with factory() as session:
        ack = session.scalars(select(Delivery).join(Message, Message.id == Delivery.message_id)
                              .where(Message.kind == MessageKind.REPLY_ACK)).one()
    to_ack = address(factory, inbound_settings, "reply", Purpose.REPLY, ack.id)
    outcome = intake.process(email(to_ack, "Thanks for the note."), via=Via.FILE)
    assert outcome.kind == Kind.REPLY
    assert count(factory, ReplyThread) == 1
    assert answers(factory, MessageKind.REPLY_ACK) == 1


def test_a_reply_that_reads_like_a_crime_report_is_answered_at_once_and_flagged(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    intake.process(email(to, "Thanks for the newsletter."), via=Via.FILE)
    assert answers(factory, MessageKind.REPLY_ACK) == 1
    outcome = intake.process(
        email(to, "Someone has just broke in next door, it's happening now!"), via=Via.FILE)
    assert outcome.flagged
    # The thread was acknowledged already; the how-to-report answer goes anyway, first.
    assert answers(factory, MessageKind.REPLY_ACK) == 2
    with factory() as session:
        urgent = session.scalars(select(Delivery).order_by(Delivery.priority.desc())).first()
        assert urgent is not None
        message = session.get_one(Message, urgent.message_id)
        assert message.kind == MessageKind.REPLY_ACK and "999" in message.text
        reply = session.get_one(Reply, outcome.reply_id)
        assert reply.flagged and "happening now" in reply.signals


def test_forged_reply_token_changes_nothing_and_is_kept_for_review(
        intake: Intake, inbound_settings: Settings, sent: Sent, tmp_path: Path,
        factory: sessionmaker[Session]) -> None:
    with factory() as session:
        genuine = signed(session, inbound_settings.web.secret_key, Purpose.REPLY,
                         sent.ann_delivery)
    tag = genuine.split("-")[1]
    forged = f"reply+{sent.bob_delivery}-{tag}@{DOMAIN}"  # Ann's tag on Bob's delivery
    outcome = intake.process(email(forged, "STOP"), via=Via.FILE)
    assert outcome.kind == Kind.REJECTED
    assert "review" in outcome.action
    assert count(factory, Reply) == 0 and answers(factory, MessageKind.REPLY_ACK) == 0
    assert answers(factory, MessageKind.LEFT) == 0
    with factory() as session:
        statuses = set(session.scalars(select(Subscription.status)))
    assert statuses == {Status.CONFIRMED}
    held = list((tmp_path / "held" / "review").glob("*.eml"))
    assert len(held) == 1 and b"STOP" in held[0].read_bytes()
    assert "does not match" in held[0].with_suffix(".reason.txt").read_text()


def ann_and_bob_and_an_altered_bounces_address(factory: sessionmaker[Session],
                                               settings: Settings) -> str:
    """Ann and Bob of Riverside, each sent a message; Bob's bounces+ address with its token
    altered by one character."""
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann, bob = (make_subscriber(session, ward, f"{name}@home.example")
                    for name in ("ann", "bob"))
        bob_delivery = make_sent_message(session, ward, [ann, bob])[bob.subscriber_id]
        genuine = signed(session, settings.web.secret_key, Purpose.BOUNCE, bob_delivery)
    return f"bounces+{genuine[:-1]}{'b' if genuine.endswith('a') else 'a'}@reply.example.org"


def hard_bounce(recipients: list[str], to: str) -> bytes:
    """An RFC 3464 report saying that mail to each of `recipients` failed for good."""
    return soft_bounce(recipients[0], to, 0).replace(b"Action: delayed", b"Action: failed") \
        .replace(b"Status: 4.2.2", b"Status: 5.1.1").replace(b"\r\n--X--", b"".join(
            f"\r\n\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.1.1"
            .encode() for r in recipients[1:]) + b"\r\n--X--")


def held(tmp_path: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((tmp_path / "held" / "review").glob("*.eml"))]


def test_forged_bounce_token_suppresses_no_one(
        intake: Intake, sent: Sent, factory: sessionmaker[Session], tmp_path: Path) -> None:
    forged = f"bounces+{sent.bob_delivery}-{'a' * 20}@{DOMAIN}"
    outcome = intake.process(hard_bounce(["bob@home.example"], forged), via=Via.FILE)
    with factory() as session:
        assert not is_suppressed(session, "bob@home.example")
    assert len(held(tmp_path)) == 1
    assert outcome.kind == Kind.UNTRUSTED_BOUNCE  # counted apart from other held mail


@pytest.mark.parametrize("to", [f"postmaster@{DOMAIN}", f"bounces@{DOMAIN}",
                                "alerts@example.org", "reply+ann"])
def test_a_report_without_a_genuine_bounces_token_suppresses_no_one_and_is_held(
        to: str, intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session], tmp_path: Path) -> None:
    if to == "reply+ann":  # a genuine token, but of a reply address: no word on bounces
        to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    report = hard_bounce(["ann@home.example", "bob@home.example"], to)
    outcome = intake.process(report, via=Via.LMTP, envelope_sender="", envelope_recipients=(to,))
    with factory() as session:
        assert not is_suppressed(session, "ann@home.example")
        assert not is_suppressed(session, "bob@home.example")
        record = session.get_one(InboundRecord, outcome.record_id)
        assert record.subscriber_id is None and record.held_as is not None
    assert held(tmp_path) == [report]
    assert outcome.kind == Kind.UNTRUSTED_BOUNCE and "nobody was suppressed" in outcome.action


def test_an_x_failed_recipients_bounce_from_a_stranger_suppresses_no_one(
        intake: Intake, sent: Sent, factory: sessionmaker[Session], tmp_path: Path) -> None:
    data = (f"From: Mail Delivery System <mailer-daemon@mx.stranger.example>\r\n"
            f"To: bounces@{DOMAIN}\r\nX-Failed-Recipients: ann@home.example, bob@home.example\r\n"
            "Subject: Mail delivery failed: returning message to sender\r\n\r\n"
            "This message was created automatically by mail delivery software.\r\n\r\n"
            "  ann@home.example\r\n    Unrouteable address\r\n").encode()
    outcome = intake.process(data, via=Via.FILE)
    with factory() as session:
        assert not is_suppressed(session, "ann@home.example")
        assert not is_suppressed(session, "bob@home.example")
    assert held(tmp_path) == [data]
    assert outcome.kind == Kind.UNTRUSTED_BOUNCE


def test_a_genuine_bounces_token_speaks_for_its_own_subscriber_only(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "bounces", Purpose.BOUNCE, sent.bob_delivery)
    outcome = intake.process(hard_bounce(["ann@home.example", "bob@home.example"], to),
                             via=Via.FILE)
    assert outcome.kind == Kind.BOUNCE and "suppressed" in outcome.action
    with factory() as session:
        assert is_suppressed(session, "bob@home.example")
        assert not is_suppressed(session, "ann@home.example")  # the report named her too


def test_unreadable_message_goes_to_the_dead_letter_folder_with_the_reason(
        intake: Intake, tmp_path: Path, factory: sessionmaker[Session], sent: Sent) -> None:
    outcome = intake.process(b"   \r\n", via=Via.FILE)
    assert outcome.kind == Kind.REJECTED
    held = list((tmp_path / "held" / "dead-letter").glob("*.eml"))
    assert len(held) == 1
    assert "empty" in held[0].with_suffix(".reason.txt").read_text()
    assert count(factory, InboundRecord) == 1


def test_the_same_message_handed_over_twice_is_handled_once(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    data = email(to, "Hello")
    first = intake.process(data, via=Via.LMTP)
    second = intake.process(data, via=Via.IMAP)
    assert not first.duplicate and second.duplicate
    assert count(factory, Reply) == 1 and count(factory, InboundRecord) == 1


def test_unsubscribe_by_mailto_leaves_and_confirms_once(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "unsubscribe", Purpose.UNSUBSCRIBE,
                 sent.ann_subscription)
    first = intake.process(email(to, "", subject="unsubscribe"), via=Via.FILE)
    again = intake.process(email(to, "please", subject="unsubscribe me"), via=Via.FILE)
    assert first.kind == again.kind == Kind.COMMAND
    assert "already unsubscribed" in again.action
    with factory() as session:
        assert session.get_one(Subscription, sent.ann_subscription).status == \
            Status.UNSUBSCRIBED
    assert answers(factory, MessageKind.LEFT) == 1


def test_a_reply_that_only_says_stop_unsubscribes_from_that_ward(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    outcome = intake.process(email(to, "STOP\n\nOn Fri, the team wrote:\n> news"), via=Via.FILE)
    assert outcome.kind == Kind.COMMAND
    with factory() as session:
        assert session.get_one(Subscription, sent.ann_subscription).status == \
            Status.UNSUBSCRIBED
    assert count(factory, Reply) == 0


def test_out_of_office_is_recorded_and_never_answered(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    outcome = intake.process(email(to, "I am out of the office until Monday.",
                                   subject="Automatic reply: news",
                                   headers={"Auto-Submitted": "auto-replied"}), via=Via.FILE)
    assert outcome.kind == Kind.AUTO_REPLY
    assert count(factory, Reply) == 0 and answers(factory, MessageKind.REPLY_ACK) == 0


def test_a_reply_from_a_mailing_list_is_stored_but_not_answered(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    outcome = intake.process(email(to, "Forwarded to our street group.",
                                   headers={"List-Id": "Mill Lane <mill.lists.example>"}),
                             via=Via.FILE)
    assert outcome.kind == Kind.REPLY
    assert "not answered" in outcome.action
    assert answers(factory, MessageKind.REPLY_ACK) == 0


def test_hard_bounce_suppresses_the_delivery_subscriber(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "bounces", Purpose.BOUNCE, sent.bob_delivery)
    data = soft_bounce("bob@home.example", to, 1).replace(b"Action: delayed", b"Action: failed")
    outcome = intake.process(data.replace(b"Status: 4.2.2", b"Status: 5.1.1"), via=Via.FILE)
    assert outcome.kind == Kind.BOUNCE and outcome.severity == "hard"
    assert outcome.recipient == "bob@home.example"
    with factory() as session:
        assert is_suppressed(session, "bob@home.example")
        assert not is_suppressed(session, "ann@home.example")


def test_soft_bounces_suppress_only_when_the_limit_is_reached_within_the_window(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "bounces", Purpose.BOUNCE, sent.bob_delivery)
    start = utcnow()
    # One long ago (outside the 30-day window), then three within it.
    intake.process(soft_bounce("bob@home.example", to, 0), via=Via.FILE,
                   now=start - timedelta(days=40))
    for n in (1, 2):
        outcome = intake.process(soft_bounce("bob@home.example", to, n), via=Via.FILE,
                                 now=start + timedelta(days=n))
        assert outcome.severity == "soft"
        with factory() as session:
            assert not is_suppressed(session, "bob@home.example"), outcome.action
    outcome = intake.process(soft_bounce("bob@home.example", to, 3), via=Via.FILE,
                             now=start + timedelta(days=3))
    assert "suppressed" in outcome.action
    with factory() as session:
        assert is_suppressed(session, "bob@home.example")


def test_erasing_a_resident_erases_their_replies_and_export_lists_them(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    to = address(factory, inbound_settings, "reply", Purpose.REPLY, sent.ann_delivery)
    intake.process(email(to, "My hedge blocks the street light."), via=Via.FILE)
    with factory() as session, session.begin():
        exported = export_data(session, sent.ann, now=utcnow())
        assert exported is not None
        assert [r["text"] for r in exported["replies"]] == ["My hedge blocks the street light."]
        assert erase_data(session, sent.ann, now=utcnow())
    assert count(factory, Reply) == 0 and count(factory, ReplyThread) == 0
    with factory() as session:
        assert session.scalars(select(InboundRecord.subscriber_id)).all() == [None]


def test_erasing_a_resident_deletes_the_held_copies_that_hold_their_address(
        intake: Intake, inbound_settings: Settings, sent: Sent, tmp_path: Path,
        factory: sessionmaker[Session]) -> None:
    forged = f"reply+{sent.ann_delivery}-{'a' * 20}@{DOMAIN}"
    hers = [
        email(forged, "Please call me about the hedge."),  # her words, a forged token
        email("alerts@example.org", "Not a reply address.",  # from another mailbox of hers
              sender="ann.at.work@office.example", headers={"Cc": "Ann@Home.Example"}),
        hard_bounce(["ann@home.example", "bob@home.example"], f"postmaster@{DOMAIN}"),
        b"ann@home.example wrote this with no header at all\r\n",  # dead-letter
    ]
    bobs = email(f"reply+{sent.bob_delivery}-{'b' * 20}@{DOMAIN}", "Bob's words",
                 sender="bob@home.example")
    outcomes = [intake.process(data, via=Via.FILE) for data in [*hers, bobs]]
    assert any(b"the hedge" in path.read_bytes() for path in (tmp_path / "held").rglob("*.eml"))
    with factory() as session, session.begin():
        assert erase_data(session, sent.ann, now=utcnow())
    left = sorted((tmp_path / "held").rglob("*.*"))
    assert [p.read_bytes() for p in left if p.suffix == ".eml"] == [bobs]
    assert len(left) == 2  # and its .reason.txt
    with factory() as session:
        records = {r.id: r for r in session.scalars(select(InboundRecord))}
    assert [records[o.record_id].held_as is None for o in outcomes] == [True] * 4 + [False]


@pytest.mark.empty_database
def test_copies_held_before_the_upgrade_are_linked_to_the_residents_they_name(
        database_url: str, tmp_path: Path) -> None:
    copy = tmp_path / "review" / "20261201T100000-0123456789abcdef.eml"
    copy.parent.mkdir()
    copy.write_bytes(email("alerts@example.org", "Held before 0012.", sender="Ann@Home.Example"))
    engine = make_engine(database_url)
    try:
        migrate(engine, "0011")
        now = "2026-12-01 10:00:00+00:00"
        with engine.begin() as connection:
            for ident, who in ((1, "ann"), (2, "bob")):
                connection.execute(text(
                    "INSERT INTO subscribers (id, email, name, created_at, nonce) "
                    "VALUES (:id, :email, '', :now, 'n')"),
                    {"id": ident, "email": f"{who}@home.example", "now": now})
            connection.execute(text(
                "INSERT INTO inbound_messages (id, content_hash, received_at, via, kind, action, "
                "reason, held_as) VALUES (1, 'h', :now, 'file', 'reply', '', '', :held)"),
                {"now": now, "held": str(copy)})
        migrate(engine)
        with session_factory(engine)() as session, session.begin():
            assert erase_data(session, 2, now=utcnow())
            assert copy.exists(), "Bob is not in it"
            assert erase_data(session, 1, now=utcnow())
        assert not copy.exists()
    finally:
        engine.dispose()


def test_the_answers_to_a_resident_come_in_the_language_they_read(
        intake: Intake, inbound_settings: Settings, sent: Sent,
        factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        session.get_one(Subscriber, sent.ann).language = "cy"  # Bob follows Riverside: English
    for ident in (sent.ann_delivery, sent.bob_delivery):
        to = address(factory, inbound_settings, "reply", Purpose.REPLY, ident)
        assert "acknowledged" in intake.process(email(to, "Diolch / Thanks"), via=Via.FILE).action
    to = address(factory, inbound_settings, "unsubscribe", Purpose.UNSUBSCRIBE,
                 sent.ann_subscription)
    intake.process(email(to, "", subject="unsubscribe"), via=Via.FILE)
    with factory() as session:
        sent_back = session.execute(select(Message.kind, Message.language, Message.subject)
                                    .where(Message.kind.in_([MessageKind.REPLY_ACK,
                                                             MessageKind.LEFT]))
                                    .order_by(Message.id)).all()
    assert sent_back == [
        (MessageKind.REPLY_ACK, "cy", "Rydym wedi anfon eich ateb at dîm Riverside"),
        (MessageKind.REPLY_ACK, "en", "We have passed your reply to the Riverside team"),
        (MessageKind.LEFT, "cy", "Rydych wedi gadael rhybuddion cymdogaeth Riverside"),
    ]
