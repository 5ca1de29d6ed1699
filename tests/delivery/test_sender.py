"""The sender, end to end: outbox rows in, real SMTP or a real maildir out."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.delivery.maildir import MaildirError
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.delivery.sender import DeliveryReport, deliver_due
from alerts.mail.marks import UNSUBSCRIBE_MARK
from alerts.mail.messages import Message
from subscriptions.base import utcnow
from subscriptions.links import Purpose, nonces_in, verify_reference
from subscriptions.subscribers import Status, Subscriber, Subscription
from tests.factories import make_subscriber, make_ward, signed
from tests.servers import SinkHandler, smtp_sink

SECRET = "test-secret-key-for-tests"
BOUNCE = re.compile(r"bounces\+([0-9a-z-]+)@reply\.example\.org")
REPLY = re.compile(r"reply\+([0-9a-z-]+)@reply\.example\.org")
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
           "List-Unsubscribe-Post", "Auto-Submitted", "Reply-To", "Precedence", "X-Alerts-Ward")


def queue(factory: sessionmaker[Session], residents: int = 3, *, name: str = "",
          email: str | None = None) -> list[str]:
    """A ward, `residents` confirmed subscribers and a digest fanned out to them."""
    with factory() as session:
        ward = make_ward(session)
        emails = [make_subscriber(session, ward, email, name=name).subscriber.email
                  for _ in range(residents)]
        message = Message(
            ward_id=ward.id,
            kind="digest",
            subject="Dog fouling on the canal path",
            html=f"<p>Extra patrols this week. <a href='{UNSUBSCRIBE_MARK}'>Unsubscribe</a></p>",
            text=f"Extra patrols this week.\nUnsubscribe: {UNSUBSCRIBE_MARK}",
            calendar=None,
        )
        session.add(message)
        session.flush()
        fan_out(session, message)
        session.commit()
    return emails


def rows(factory: sessionmaker[Session]) -> dict[str, Delivery]:
    with factory() as session:
        found = session.execute(
            select(Subscriber.email, Delivery).join(Subscriber,
                                                    Subscriber.id == Delivery.subscriber_id)
        ).all()
        return {email: delivery for email, delivery in found}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def with_mail(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, mail=dataclasses.replace(settings.mail, **changes))


class Recorder:
    """A transport that keeps what it is given, with when, and how many were in flight."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.recipients: list[str] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.peak = 0

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, traceback: TracebackType | None) -> None:
        return None

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.times.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.pause)
        self.recipients.append(recipient)
        self.in_flight -= 1


@pytest.fixture
def gone(settings: Settings) -> Iterator[Settings]:
    yield with_mail(settings, transport="smtp", smtp_port=closed_port(), smtp_timeout=2.0)


def test_each_confirmed_subscriber_receives_exactly_one_well_formed_email(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    emails = queue(factory, 3)

    report = deliver_due(factory, settings)

    assert report == DeliveryReport(sent=3)
    assert sorted(r for m in handler.received for r in m.rcpt_tos) == sorted(emails)
    stored = rows(factory)
    with factory() as session:
        subscriptions = {s.subscriber.email: s.id for s in session.scalars(select(Subscription))}
        deliveries = nonces_in(session, Delivery)
        for received in handler.received:
            (recipient,) = received.rcpt_tos
            delivery = stored[recipient]
            assert delivery.status == DeliveryStatus.SENT and delivery.sent_at is not None
            bounce = BOUNCE.fullmatch(received.mail_from)
            assert bounce, received.mail_from
            assert verify_reference(SECRET, Purpose.BOUNCE, bounce.group(1), deliveries) \
                == delivery.id
            message = received.message
            assert [h for h in HEADERS if message[h] is None] == []
            assert message["To"].addresses[0].addr_spec == recipient
            reply = REPLY.fullmatch(str(message["Reply-To"]))
            assert reply and verify_reference(SECRET, Purpose.REPLY, reply.group(1), deliveries) \
                == delivery.id
            leave = signed(session, SECRET, Purpose.UNSUBSCRIBE, subscriptions[recipient])
            assert f"https://alerts.example.org/unsubscribe/{leave}" in message["List-Unsubscribe"]
            text = message.get_body(("plain",))
            assert text is not None and leave in text.get_content()


def test_connections_are_reused_and_never_exceed_the_concurrency(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    queue(factory, 30)

    report = deliver_due(factory, settings)

    assert report.sent == 30 and len(handler.received) == 30
    assert 1 <= handler.connections <= settings.mail.concurrency == 4


def test_a_4xx_answer_keeps_the_row_queued_for_a_later_retry(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    busy, fine = queue(factory, 2)
    handler.reject[busy] = f"450 4.2.0 <{busy}> is over quota, try later"
    started = utcnow()

    report = deliver_due(factory, settings)

    assert report == DeliveryReport(sent=1, retried=1)
    assert [m.rcpt_tos for m in handler.received] == [[fine]]
    row = rows(factory)[busy]
    assert (row.status, row.attempts) == (DeliveryStatus.QUEUED, 1)
    assert row.next_attempt_at > started + timedelta(seconds=20)
    assert row.last_error is not None and "450" in row.last_error
    assert busy not in row.last_error


def test_retries_end_in_failure_after_the_last_attempt(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    (busy,) = queue(factory, 1)
    handler.reject[busy] = "451 4.3.0 Temporary local problem"

    report = deliver_due(factory, with_mail(settings, max_attempts=1))

    assert report == DeliveryReport(failed=1)
    row = rows(factory)[busy]
    assert row.status == DeliveryStatus.FAILED
    assert row.last_error is not None and row.last_error.startswith("gave up after 1")


def test_a_5xx_answer_fails_the_row(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    unknown, known = queue(factory, 2)
    handler.reject[unknown] = "550 5.1.1 No such mailbox here"

    report = deliver_due(factory, settings)

    assert report == DeliveryReport(sent=1, failed=1, suppressed=1)
    row = rows(factory)[unknown]
    assert (row.status, row.last_error) == (DeliveryStatus.FAILED, "550 5.1.1 No such mailbox here")
    assert rows(factory)[known].status == DeliveryStatus.SENT


def test_a_mail_server_that_is_gone_loses_nothing_and_ends_the_pass(
    factory: sessionmaker[Session], gone: Settings
) -> None:
    emails = queue(factory, 5)

    report = deliver_due(factory, gone, batch_size=2)

    # The first batch is retried later; the pass stops there instead of walking the queue.
    assert report == DeliveryReport(retried=2)
    stored = rows(factory)
    assert {row.status for row in stored.values()} == {DeliveryStatus.QUEUED}
    assert sorted(row.attempts for row in stored.values()) == [0, 0, 0, 1, 1]
    for email, row in stored.items():
        if row.attempts:
            assert row.last_error is not None and "went away" in row.last_error
            assert email not in row.last_error

    with smtp_sink() as (handler, port):
        later = deliver_due(factory, with_mail(gone, smtp_port=port),
                            now=lambda: utcnow() + timedelta(days=2))
    assert later == DeliveryReport(sent=5)
    assert sorted(r for m in handler.received for r in m.rcpt_tos) == sorted(emails)


def test_a_subscriber_who_leaves_after_fan_out_is_not_sent_to(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    leaver, stayer = queue(factory, 2)
    with factory() as session:
        subscription = session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == leaver)
        ).one()
        subscription.status = Status.UNSUBSCRIBED
        session.commit()

    report = deliver_due(factory, settings)

    assert report == DeliveryReport(sent=1, cancelled=1)
    assert [m.rcpt_tos for m in handler.received] == [[stayer]]
    row = rows(factory)[leaver]
    assert row.status == DeliveryStatus.CANCELLED
    assert row.last_error is not None and leaver not in row.last_error


def test_an_address_outside_ascii_travels_with_smtputf8(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    (email,) = queue(factory, 1, email="zoë@home.example")

    report = deliver_due(factory, settings)

    assert report == DeliveryReport(sent=1)
    assert [m.rcpt_tos for m in handler.received] == [[email]] == [["zoë@home.example"]]
    assert "To: zoë@home.example\r\n".encode() in handler.received[0].data


def test_an_address_outside_ascii_fails_when_the_relay_cannot_carry_it(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    (email,) = queue(factory, 1, email="zoë@home.example")
    (plain,) = queue(factory, 1)

    with smtp_sink(utf8=False) as (handler, port):
        report = deliver_due(factory, with_mail(settings, transport="smtp", smtp_port=port))

    assert report == DeliveryReport(sent=1, failed=1)
    assert [m.rcpt_tos for m in handler.received] == [[plain]]
    row = rows(factory)[email]
    assert row.status == DeliveryStatus.FAILED
    assert row.last_error is not None and "SMTPUTF8" in row.last_error


def test_a_second_run_sends_nothing_again(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    queue(factory, 3)

    first = deliver_due(factory, settings)
    second = deliver_due(factory, settings)

    assert (first, second) == (DeliveryReport(sent=3), DeliveryReport())
    assert len(handler.received) == 3


def test_the_maildir_outbox_is_a_real_maildir_with_one_eml_per_delivery(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    emails = queue(factory, 3)

    report = deliver_due(factory, settings)

    outbox = Path(settings.mail.maildir)
    assert report == DeliveryReport(sent=3)
    assert sorted(p.name for p in outbox.iterdir()) == ["cur", "new", "tmp"]
    assert list((outbox / "tmp").iterdir()) == [] and list((outbox / "cur").iterdir()) == []
    files = sorted((outbox / "new").iterdir())
    assert len(files) == 3 and all(f.suffix == ".eml" for f in files)
    recipients = []
    for file in files:
        data = file.read_bytes()
        assert BOUNCE.fullmatch(data.split(b"\r\n", 1)[0].decode()[len("Return-Path: <"):-1])
        message = message_from_bytes(data, policy=policy.default)
        recipients.append(message["To"].addresses[0].addr_spec)
    assert sorted(recipients) == sorted(emails)


def test_an_unwritable_maildir_stops_before_any_row_is_claimed(
    factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    queue(factory, 2)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the outbox folder should go")

    with pytest.raises(MaildirError, match="not-a-folder"):
        deliver_due(factory, with_mail(settings, maildir=str(blocker / "outbox")))

    assert {(r.status, r.attempts) for r in rows(factory).values()} == {
        (DeliveryStatus.QUEUED, 0)}


def test_a_line_break_in_a_stored_name_fails_the_row_without_sending(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    """Names are refused at input now; one stored before that still sends nothing."""
    (email,) = queue(factory, 1)
    with factory.begin() as session:
        session.execute(update(Subscriber).where(Subscriber.email == email)
                        .values(name="Sam\nBcc: everyone@example.org"))

    report = deliver_due(factory, settings)

    assert report == DeliveryReport(failed=1)
    row = rows(factory)[email]
    assert row.last_error == "the To header would contain a line break"
    assert list((Path(settings.mail.maildir) / "new").iterdir()) == []


def test_sends_in_flight_stay_within_the_concurrency(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    queue(factory, 12)
    recorder = Recorder(pause=0.02)

    deliver_due(factory, with_mail(settings, concurrency=3), transport=recorder)

    assert len(recorder.recipients) == 12
    assert recorder.peak == 3


def test_while_every_connection_sends_the_copy_process_has_the_next_copies_to_build(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted until they were sent, the copies ahead left the copy process only as many
    # as there were connections while all of them were busy: it built a few, then waited.
    from alerts.mail.copy_process import CopyProcess

    queue(factory, 40)
    recorder = Recorder(pause=0.02)
    asked = {"now": 0, "most while all send": 0}
    build = CopyProcess.build

    async def counted(self: CopyProcess, *args: Any) -> Any:
        asked["now"] += 1
        try:
            return await build(self, *args)
        finally:
            asked["now"] -= 1

    async def sending(envelope_from: str, recipient: str, data: bytes) -> None:
        if recorder.in_flight == 3:  # every other connection is busy
            asked["most while all send"] = max(asked["most while all send"], asked["now"])
        await Recorder.send(recorder, envelope_from, recipient, data)

    monkeypatch.setattr(CopyProcess, "build", counted)
    monkeypatch.setattr(recorder, "send", sending)
    deliver_due(factory, with_mail(settings, concurrency=4), transport=recorder)

    assert len(recorder.recipients) == 40 and recorder.peak == 4
    assert asked["most while all send"] > 4


def test_a_rate_cap_spaces_the_sends(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    queue(factory, 8)
    recorder = Recorder()

    deliver_due(factory, with_mail(settings, rate_per_second=20), transport=recorder)

    # Each send waits for its own slot 1/20 s after the one before, so 8 sends span at
    # least 7/20 s however the loop schedules them (lateness only makes the span longer,
    # except for the first send, hence the small allowance).
    assert len(recorder.times) == 8
    assert recorder.times[-1] - recorder.times[0] >= 7 / 20 - 0.03


def test_progress_is_reported_after_each_batch(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    queue(factory, 5)
    progress: list[int] = []

    report = deliver_due(factory, settings, transport=Recorder(), batch_size=2,
                         on_progress=progress.append)

    assert progress == [2, 2, 1] and report.sent == 5


def test_each_failure_is_published_as_an_event_without_the_address(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    from alerts.core.events import DeliveryFailed, EventBus

    handler, settings = smtp
    emails = queue(factory, 3)
    handler.reject[emails[0]] = "550 5.1.1 No such mailbox"
    handler.reject[emails[1]] = "451 4.3.0 Try again later"
    bus = EventBus()
    seen: list[DeliveryFailed] = []
    bus.subscribe(DeliveryFailed, seen.append)

    deliver_due(factory, settings, bus=bus)

    assert sorted(event.permanent for event in seen) == [False, True]
    assert not any(email in event.reason for event in seen for email in emails)


def test_a_batch_is_never_larger_than_can_be_sent_within_its_lease(settings: Settings) -> None:
    from alerts.delivery.sender import safe_batch_size

    mail = with_mail(settings, concurrency=20, lease_seconds=300, smtp_timeout=30.0).mail
    assert safe_batch_size(200, mail) == 100  # 5 rounds of 20, each at most 60 s
    slow = with_mail(settings, concurrency=4, lease_seconds=60, smtp_timeout=60.0).mail
    assert safe_batch_size(200, slow) == 4
    assert safe_batch_size(10, mail) == 10


def test_a_batch_with_a_copy_for_each_connection_is_built_off_the_sender_loop(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Building a copy (its signed links) cost the loop more than talking SMTP did, and the
    # connections waited for it: with a copy for each connection, the copy process builds.
    handler, settings = smtp
    assert settings.mail.concurrency == 4
    emails = queue(factory, 6)

    def not_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a copy built on the sender's loop")

    monkeypatch.setattr("alerts.delivery.sender.personalise_email", not_here)
    assert deliver_due(factory, settings) == DeliveryReport(sent=6)
    assert sorted(r for m in handler.received for r in m.rcpt_tos) == sorted(emails)
    for received in handler.received:  # each its own, links filled in
        assert received.message["To"].addresses[0].addr_spec == received.rcpt_tos[0]
        assert b"__ALERTS_" not in received.data
    assert len({m.message["List-Unsubscribe"] for m in handler.received}) == 6


def test_a_few_unsigned_copies_are_built_on_the_loop_without_starting_a_process(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, settings = smtp
    queue(factory, 3)  # fewer than the 4 connections: a confirmation, an urgent alert to few

    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a process started for three copies")

    monkeypatch.setattr("alerts.mail.copy_process.copy_process", no_process)
    monkeypatch.setattr("alerts.delivery.sender.copy_process", no_process)
    assert deliver_due(factory, settings) == DeliveryReport(sent=3)
    assert len(handler.received) == 3


def test_a_copy_the_copy_process_cannot_build_fails_its_row_and_the_rest_are_sent(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    handler, settings = smtp
    bad, *good = queue(factory, 5)  # a copy for each of the 4 connections: built off the loop
    with factory.begin() as session:
        session.execute(update(Subscriber).where(Subscriber.email == bad)
                        .values(name="Sam\nBcc: everyone@example.org"))

    assert deliver_due(factory, settings) == DeliveryReport(sent=4, failed=1)
    assert sorted(r for m in handler.received for r in m.rcpt_tos) == sorted(good)
    row = rows(factory)[bad]
    assert row.status == DeliveryStatus.FAILED
    assert row.last_error == "the To header would contain a line break"
