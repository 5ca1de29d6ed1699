"""Complaints: a resident marked one of our emails as spam (an ARF report, RFC 5965, or a
provider's event). Exactly the resident a genuine signed token names is suppressed and leaves
that ward; nobody else, and nobody at all for staff mail or a token that does not verify.

The reports are built here with the email package after the shape of RFC 5965's example: a
`multipart/report; report-type=feedback-report` holding a few words for people, the
machine-readable `message/feedback-report` part, and the message complained about (whole, or
only its header block, as some loops send it)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.inbound.intake import Intake
from alerts.inbound.journal import InboundRecord, Via
from alerts.mail.messages import Message
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.subscribers import Status, Subscription
from subscriptions.suppression import Suppression, is_suppressed
from tests.factories import make_sent_message, make_subscriber, make_ward, signed

DOMAIN = "reply.example.org"


@dataclasses.dataclass
class Sent:
    delivery: int  # Ann's delivery of the Riverside digest
    message: int
    riverside: int  # Ann's subscriptions
    hillside: int
    bob: int  # Bob's Riverside subscription


@pytest.fixture
def sent(factory: sessionmaker[Session]) -> Sent:
    with factory() as session, session.begin():
        riverside = make_ward(session, "RIV", "Riverside")
        hillside = make_ward(session, "HIL", "Hillside")
        ann = make_subscriber(session, riverside, "ann@home.example")
        ann_hillside = make_subscriber(session, hillside, "ann@home.example")
        bob = make_subscriber(session, riverside, "bob@home.example")
        delivery = make_sent_message(session, riverside, [ann, bob])[ann.subscriber_id]
        message = session.get_one(Delivery, delivery).message_id
        return Sent(delivery, message, ann.id, ann_hillside.id, bob.id)


def original_headers(session: Session, settings: Settings, sent: Sent) -> dict[str, str]:
    """The header fields of Ann's digest as it left, each carrying a signed token."""
    secret = settings.web.secret_key
    bounce = signed(session, secret, Purpose.BOUNCE, sent.delivery)
    reply = signed(session, secret, Purpose.REPLY, sent.delivery)
    unsubscribe = signed(session, secret, Purpose.UNSUBSCRIBE, sent.riverside)
    return {
        "Return-Path": f"<bounces+{bounce}@{DOMAIN}>",
        "From": "Neighbourhood Alerts <alerts@example.org>",
        "To": "ann@home.example",
        "Subject": "Riverside: your neighbourhood news",
        "Message-ID": f"<alerts.{sent.message}.{reply}@example.org>",
        "Reply-To": f"reply+{reply}@{DOMAIN}",
        "List-Unsubscribe": f"<mailto:unsubscribe+{unsubscribe}@{DOMAIN}>",
    }


def arf_report(to: str, original: dict[str, str], *, feedback_type: str = "abuse",
               user_agent: str = "ExampleMail-FBL/1.0", headers_only: bool = False,
               report_type: str | None = "feedback-report") -> bytes:
    """A feedback-loop report to `to` about a message with the `original` header fields."""
    params = {"report_type": report_type} if report_type else {}
    report = MIMEMultipart("report", **params)
    report["From"] = "Feedback Loop <fbl@mailbox.example>"
    report["To"] = to
    report["Subject"] = "Complaint about a message you sent"
    report["Date"] = "Mon, 07 Dec 2026 09:15:00 +0000"
    report["Message-ID"] = "<report-1@mailbox.example>"
    report.attach(MIMEText("One of our users reported the attached message as spam.\n"))
    fields = MIMEBase("message", "feedback-report")
    fields.set_payload(
        f"Feedback-Type: {feedback_type}\r\n"
        f"User-Agent: {user_agent}\r\n"
        "Version: 1\r\n"
        "Original-Mail-From: <bounces@reply.example.org>\r\n"
        "Original-Rcpt-To: <ann@home.example>\r\n"
        "Arrival-Date: Sun, 06 Dec 2026 18:02:11 +0000\r\n"
        "Reported-Domain: example.org\r\n")
    report.attach(fields)
    head = "".join(f"{name}: {value}\r\n" for name, value in original.items())
    if headers_only:
        report.attach(MIMEText(head, "rfc822-headers"))
    else:
        message = BytesParser().parsebytes(
            (head + "\r\nThis week in Riverside: two new surgeries.\r\n").encode())
        report.attach(MIMEMessage(message))
    return report.as_bytes()


@pytest.fixture
def config(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(f'[database]\nurl = "{settings.database.url}"\n'
                    f'[mail]\nmaildir = "{tmp_path / "outbox"}"\n'
                    f'[web]\nsecret_key = "{settings.web.secret_key}"\n'
                    f'[inbound]\nheld_dir = "{tmp_path / "held"}"\n')
    return path


def process(config: Path, *files: Path) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["--config", str(config), "inbound", "process", "--json",
                                      *map(str, files)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def status_of(session: Session, subscription: int) -> str:
    return session.get_one(Subscription, subscription).status


def test_an_arf_report_to_the_bounces_address_suppresses_that_resident_and_ends_that_ward(
        factory: sessionmaker[Session], settings: Settings, sent: Sent, config: Path,
        tmp_path: Path) -> None:
    with factory() as session:
        original = original_headers(session, settings, sent)
    report = tmp_path / "complaint.eml"
    report.write_bytes(arf_report(original["Return-Path"].strip("<>"), original))
    [handled] = process(config, report)
    assert handled["kind"] == "complaint", "an abuse report is not an auto-reply"
    with factory() as session:
        assert is_suppressed(session, "ann@home.example")
        assert not is_suppressed(session, "bob@home.example")
        entry = session.scalars(select(Suppression)).one()
        assert entry.reason == "complaint"
        assert "abuse" in entry.detail and "ExampleMail-FBL/1.0" in entry.detail
        assert "2026-12-06T18:02:11" in entry.detail, "the report's Arrival-Date is kept"
        assert "@" not in entry.detail, "no address in the reason"
        assert status_of(session, sent.riverside) == Status.UNSUBSCRIBED
        assert status_of(session, sent.hillside) != Status.UNSUBSCRIBED, \
            "suppressed everywhere, but only the ward complained about is left"
        assert status_of(session, sent.bob) != Status.UNSUBSCRIBED
        sent_later = session.scalars(select(Message.kind).where(Message.id != sent.message))
        assert list(sent_later) == [], "a complainer gets no 'you have left' note"
        record = session.scalars(select(InboundRecord)).one()
        assert (record.kind, record.delivery_id) == ("complaint", sent.delivery)


@pytest.mark.parametrize(("variant", "arguments"), [
    ("headers only, Yahoo's agent", {"headers_only": True,
                                     "user_agent": "Yahoo!-Mail-Feedback/2.0"}),
    ("Microsoft JMRP", {"user_agent": "Microsoft JMRP"}),
    ("no report-type parameter", {"report_type": None}),
    ("fraud", {"feedback_type": "fraud"}),
])
def test_a_report_to_a_bare_address_is_tied_by_the_tokens_of_the_original_it_carries(
        factory: sessionmaker[Session], settings: Settings, sent: Sent, variant: str,
        arguments: dict[str, object]) -> None:
    with factory() as session:
        original = original_headers(session, settings, sent)
    outcome = Intake(factory, settings).process(
        arf_report("alerts@example.org", original, **arguments),  # type: ignore[arg-type]
        via=Via.FILE)
    assert outcome.reported_kind == "complaint", variant
    with factory() as session:
        assert is_suppressed(session, "ann@home.example"), variant
        assert not is_suppressed(session, "bob@home.example"), variant
        assert status_of(session, sent.riverside) == Status.UNSUBSCRIBED


@pytest.mark.parametrize("keep", ["List-Unsubscribe", "Message-ID", "Reply-To"])
def test_any_one_genuine_token_of_the_original_is_enough(
        factory: sessionmaker[Session], settings: Settings, sent: Sent, keep: str) -> None:
    with factory() as session:
        original = original_headers(session, settings, sent)
    tokens = {"Return-Path", "List-Unsubscribe", "Message-ID", "Reply-To"}
    kept = {name: value for name, value in original.items()
            if name not in tokens or name == keep}
    Intake(factory, settings).process(arf_report("alerts@example.org", kept), via=Via.FILE)
    with factory() as session:
        assert is_suppressed(session, "ann@home.example"), keep
        assert status_of(session, sent.riverside) == Status.UNSUBSCRIBED


def test_a_forged_token_suppresses_nobody(factory: sessionmaker[Session], settings: Settings,
                                          sent: Sent, config: Path, tmp_path: Path) -> None:
    forged = f"{sent.delivery}-{'a' * 26}"
    original = {"Return-Path": f"<bounces+{forged}@{DOMAIN}>",
                "Reply-To": f"reply+{forged}@{DOMAIN}",
                "Message-ID": f"<alerts.{sent.message}.{forged}@example.org>",
                "From": "alerts@example.org", "To": "ann@home.example", "Subject": "news"}
    to_forged = tmp_path / "to-forged.eml"
    to_forged.write_bytes(arf_report(f"bounces+{forged}@{DOMAIN}", original))
    carrying_forged = tmp_path / "carrying-forged.eml"
    carrying_forged.write_bytes(arf_report("alerts@example.org", original))
    handled = process(config, to_forged, carrying_forged)
    assert [line["kind"] for line in handled] == ["rejected", "complaint"]
    assert all("nothing was changed" in str(line["action"])
               or "nobody was suppressed" in str(line["action"]) for line in handled)
    with factory() as session:
        assert session.scalars(select(Suppression)).all() == []
        assert status_of(session, sent.riverside) != Status.UNSUBSCRIBED


def test_a_complaint_about_staff_mail_suppresses_nobody(
        factory: sessionmaker[Session], settings: Settings, sent: Sent) -> None:
    from alerts.inbound.complaints import record_complaint

    forward = {"Return-Path": f"<bounces@{DOMAIN}>", "From": "alerts@example.org",
               "To": "team-riv@police.example", "Reply-To": "ann@home.example",
               "Subject": "Reply from a resident", "Message-ID": "<alerts.forward.1@example.org>"}
    outcome = Intake(factory, settings).process(arf_report(f"bounces@{DOMAIN}", forward),
                                                via=Via.FILE)
    assert outcome.reported_kind == "complaint"
    assert "nobody was suppressed" in outcome.action, "an address alone names nobody"
    with factory() as session, session.begin():
        staff = Delivery(message_id=sent.message, recipient="team-riv@police.example",
                         status="sent")
        session.add(staff)
        session.flush()
        webhook = record_complaint(session, staff.id, source="ses", detail="abuse",
                                   now=utcnow())
    assert not webhook.suppressed and "staff mail" in webhook.action
    with factory() as session:
        assert session.scalars(select(Suppression)).all() == []
        assert sorted(session.scalars(select(InboundRecord.kind))) == ["complaint", "complaint"]


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure"])
def test_feedback_that_is_no_complaint_stays_a_machine_report(
        factory: sessionmaker[Session], settings: Settings, sent: Sent,
        feedback_type: str) -> None:
    with factory() as session:
        original = original_headers(session, settings, sent)
    outcome = Intake(factory, settings).process(
        arf_report(original["Return-Path"].strip("<>"), original, feedback_type=feedback_type),
        via=Via.FILE)
    assert outcome.reported_kind == "auto_reply"
    with factory() as session:
        assert not is_suppressed(session, "ann@home.example")


def test_a_providers_complaint_suppresses_that_resident_and_ends_that_subscription_once(
        factory: sessionmaker[Session], sent: Sent) -> None:
    from alerts.inbound.complaints import record_complaint

    now = utcnow()
    with factory() as session, session.begin():
        first = record_complaint(session, sent.delivery, source="ses", detail="abuse", now=now,
                                 event_id="evt-1")
        again = record_complaint(session, sent.delivery, source="ses", detail="abuse", now=now,
                                 event_id="evt-1")
    assert first.suppressed and not first.duplicate
    assert again.duplicate and not again.suppressed
    with factory() as session:
        assert is_suppressed(session, "ann@home.example")
        assert not is_suppressed(session, "bob@home.example")
        entry = session.scalars(select(Suppression)).one()
        assert entry.reason == "complaint" and "ses: abuse" in entry.detail
        assert status_of(session, sent.riverside) == Status.UNSUBSCRIBED
        assert status_of(session, sent.hillside) != Status.UNSUBSCRIBED
        assert status_of(session, sent.bob) != Status.UNSUBSCRIBED
        records = session.scalars(select(InboundRecord)).all()
        assert [(r.kind, r.via, r.delivery_id) for r in records] == \
            [("complaint", "webhook", sent.delivery)]


def test_a_providers_complaint_naming_no_delivery_suppresses_nobody_and_is_journalled(
        factory: sessionmaker[Session], sent: Sent) -> None:
    from alerts.inbound.complaints import record_complaint

    with factory() as session, session.begin():
        outcome = record_complaint(session, 999_999, source="sendgrid", detail="spamreport",
                                   now=utcnow())
    assert not outcome.suppressed and outcome.record_id is not None
    with factory() as session:
        assert session.scalars(select(Suppression)).all() == []
        assert session.scalars(select(InboundRecord.kind)).all() == ["complaint"]


def sent_emails(session: Session, ward_id: int, subscriber_id: int, count: int,
                at: datetime) -> None:
    """`count` emails sent to one resident at `at` (one message each)."""
    messages = [Message(ward_id=ward_id, kind="digest", subject="news", html="", text="")
                for _ in range(count)]
    session.add_all(messages)
    session.flush()
    session.add_all(Delivery(message_id=message.id, subscriber_id=subscriber_id,
                             status="sent", sent_at=at, created_at=at) for message in messages)


def journalled(session: Session, kind: str, at: datetime, *, severity: str | None = None,
               subscriber_id: int | None = None) -> None:
    session.add(InboundRecord(content_hash=uuid.uuid4().hex, received_at=at, via="file",
                              kind=kind, severity=severity, subscriber_id=subscriber_id))


def test_status_shows_daily_bounce_and_complaint_rates_warned_at_0_1_and_flagged_at_0_3(
        factory: sessionmaker[Session], config: Path) -> None:
    now = utcnow()
    yesterday = now - timedelta(days=1)
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example").subscriber_id
        sent_emails(session, ward.id, ann, 1000, now)
        journalled(session, "bounce", now, severity="hard", subscriber_id=ann)  # 0.1%: warn
        journalled(session, "bounce", now, severity="soft", subscriber_id=ann)  # not counted
        sent_emails(session, ward.id, ann, 1000, yesterday)
        for _ in range(2):  # 0.2%: still a warning
            journalled(session, "bounce", yesterday, severity="hard", subscriber_id=ann)
        for _ in range(3):  # 0.3%: flagged
            journalled(session, "complaint", yesterday, subscriber_id=ann)
        journalled(session, "complaint", yesterday)  # named nobody: not counted
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    rates = json.loads(result.stdout)["rates"]
    assert (rates["warn_at"], rates["flag_at"]) == (0.001, 0.003)
    today, before, *earlier = rates["days"]
    assert len(earlier) == 5, "seven days"
    assert today["day"] == now.date().isoformat()
    assert (today["sent"], today["hard_bounces"], today["complaints"]) == (1000, 1, 0)
    assert (today["bounce_rate"], today["bounce_mark"]) == (0.001, "warn")
    assert (today["complaint_rate"], today["complaint_mark"]) == (0.0, "ok")
    assert (before["hard_bounces"], before["bounce_mark"]) == (2, "warn")
    assert (before["complaints"], before["complaint_mark"]) == (3, "flag")
    assert all(day["sent"] == 0 and day["bounce_rate"] is None for day in earlier)
    text = runner.invoke(cli, ["--config", str(config), "status"]).stdout
    assert f"{now.date().isoformat()}: 1000 sent, hard bounces 1 (0.10%) WARN, " \
           "complaints 0 (0.00%)\n" in text
    assert "hard bounces 2 (0.20%) WARN, complaints 3 (0.30%) FLAGGED" in text
    assert "@" not in text.split("hard bounces and complaints")[1], "counts only"


def test_the_marks_fall_exactly_at_the_thresholds() -> None:
    from alerts.inbound.status import rate_mark

    assert rate_mark(1, 1001) == "ok"
    assert rate_mark(1, 1000) == "warn"
    assert rate_mark(2, 667) == "warn"
    assert rate_mark(2, 666) == "flag"
    assert rate_mark(3, 1000) == "flag"
    assert rate_mark(0, 0) == "ok", "no rate on a day with nothing sent"
