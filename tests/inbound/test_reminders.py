"""Reminders of unanswered replies: each ward team hears of its conversations open longer
than `inbound.reminder_days`, with their age, until they are marked handled."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.access import principal_for
from alerts.accounts.users import Role, add_user
from alerts.cli import cli
from alerts.core.config import Settings
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.inbound.reminders import overdue_conversations, send_reminders
from alerts.inbound.replies import Reply, ReplyThread
from alerts.usecases import officers
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.wards import Ward, get_ward
from tests.factories import make_sent_message, make_subscriber, make_ward, signed, smtp_config
from tests.servers import SinkHandler

RIV_TEAM = "team-riv@police.example"
HIL_TEAM = "team-hil@police.example"


def a_thread(session: Session, ward: Ward, email: str, name: str, *,
             replies: list[tuple[datetime, str, bool]],
             handled_at: datetime | None = None) -> int:
    """A resident's thread in `ward` with replies (received_at, subject, flagged)."""
    subscription = make_subscriber(session, ward, email, name=name)
    make_sent_message(session, ward, [subscription])
    thread = ReplyThread(ward_id=ward.id, subscriber_id=subscription.subscriber_id,
                         created_at=replies[0][0], handled_at=handled_at)
    session.add(thread)
    session.flush()
    for received, subject, flagged in replies:
        session.add(Reply(thread_id=thread.id, ward_id=ward.id,
                          subscriber_id=subscription.subscriber_id, received_at=received,
                          subject=subject, text="What they wrote.", flagged=flagged,
                          signals="burgled" if flagged else ""))
    session.flush()
    return thread.id


def ann_replies(factory: sessionmaker[Session], settings: Settings, ward: str) -> int:
    """Ann answers a digest through intake, as a resident does; returns her thread's id."""
    with factory.begin() as session:
        riv = get_ward(session, ward)
        ann = make_subscriber(session, riv, "ann@home.example", name="Ann Example")
        delivery = make_sent_message(session, riv, [ann],
                                     subject="Riverside: bike marking")[ann.subscriber_id]
        token = signed(session, settings.web.secret_key, Purpose.REPLY, delivery)
    message = EmailMessage()
    message["From"] = "Ann Example <ann@home.example>"
    message["To"] = f"reply+{token}@{settings.mail.reply_domain}"
    message["Subject"] = "Re: Riverside: bike marking"
    message.set_content("Can I bring two bikes?\n\nOn Fri, Riverside team wrote:\n> Bikes.\n")
    outcome = Intake(factory, settings).process(message.as_bytes(), via=Via.FILE)
    assert outcome.reply_id is not None
    with factory() as session:
        return session.get_one(Reply, outcome.reply_id).thread_id


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def reminders_by_team(sink: SinkHandler) -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    for received in sink.received:
        [to] = received.rcpt_tos
        assert to not in found
        found[to] = received.message
    return found


def test_an_open_reply_is_in_its_teams_reminder_until_it_is_marked_handled(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    now = utcnow() + timedelta(days=4, hours=1)
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        young = a_thread(session, riv, "dee@home.example", "Dee Young",
                         replies=[(now - timedelta(days=2, hours=23), "Re: parking", False)])
        bob = a_thread(session, hil, "bob@home.example", "",
                       replies=[(now - timedelta(days=6), "Re: my shed", True)])
        officer = principal_for(session, add_user(
            session, "pc.bloggs@police.example", Role.OFFICER, ward_codes=["RIV"]))
    ann = ann_replies(factory, settings, "RIV")

    report = send_reminders(factory, settings, now=now)

    assert report.sent == {"HIL": 1, "RIV": 1} and report.failed == {}
    teams = reminders_by_team(sink)
    assert set(teams) == {RIV_TEAM, HIL_TEAM}
    riv_mail = teams[RIV_TEAM]
    assert riv_mail["To"] == RIV_TEAM
    assert riv_mail["Auto-Submitted"] == "auto-generated"
    assert riv_mail["Subject"] == "[RIV] 1 resident's reply open for more than 3 days"
    riv_text = text_of(riv_mail)
    assert "Riverside (RIV)" in riv_text
    assert "* Open 4 days: Ann Example" in riv_text
    assert "Subject: Re: Riverside: bike marking" in riv_text
    assert f"{settings.web.base_url}/staff/wards/RIV/replies/{ann}\n" in riv_text
    assert "POSSIBLE CRIME REPORT" not in riv_text
    assert "Dee Young" not in riv_text and f"/replies/{young}" not in riv_text  # too young
    assert "bob" not in riv_text.lower()  # another ward's resident
    hil_text = text_of(teams[HIL_TEAM])
    assert "* Open 6 days: (no name given)" in hil_text
    assert "POSSIBLE CRIME REPORT" in hil_text
    assert f"/staff/wards/HIL/replies/{bob}\n" in hil_text
    assert "Ann Example" not in hil_text
    for received in sink.received:  # never a resident's address
        assert b"@home.example" not in received.data

    with factory.begin() as session:
        officers.mark_handled(session, officer, ann, handled=True, now=now)
    sink.received.clear()
    later = now + timedelta(days=1)
    again = send_reminders(factory, settings, now=later)

    assert again.sent == {"HIL": 1, "RIV": 1}  # Dee's reply is now 3 days and 23 hours open
    riv_text = text_of(reminders_by_team(sink)[RIV_TEAM])
    assert "Ann Example" not in riv_text and f"/replies/{ann}\n" not in riv_text
    assert "* Open 3 days: Dee Young" in riv_text

    with factory.begin() as session:
        officers.mark_handled(session, officer, young, handled=True, now=later)
    sink.received.clear()
    last = send_reminders(factory, settings, now=later + timedelta(days=1))
    assert last.sent == {"HIL": 1}  # nothing open in RIV: no email to its team
    assert list(reminders_by_team(sink)) == [HIL_TEAM]


def test_a_thread_reopened_by_a_new_reply_counts_its_age_from_that_reply(
        session: Session) -> None:
    now = utcnow()
    ward = make_ward(session, "RIV", "Riverside")
    reopened = a_thread(session, ward, "ann@home.example", "Ann Example",
                        handled_at=now - timedelta(days=8),
                        replies=[(now - timedelta(days=10), "Re: bikes", False),
                                 (now - timedelta(days=5), "Re: bikes again", False)])
    a_thread(session, ward, "cy@home.example", "Cy", handled_at=now - timedelta(days=1),
             replies=[(now - timedelta(days=9), "Re: handled", True)])
    flagged = a_thread(session, ward, "dee@home.example", "Dee",
                       replies=[(now - timedelta(days=3, minutes=1), "Re: break-in", True)])

    [reminder] = overdue_conversations(session, days=3, now=now)

    assert (reminder.code, reminder.team_email) == ("RIV", RIV_TEAM)
    assert [(c.thread_id, c.age_days, c.subject, c.flagged, c.resident)
            for c in reminder.conversations] == [
        (flagged, 3, "Re: break-in", True, "Dee"),  # a possible crime report first
        (reopened, 5, "Re: bikes again", False, "Ann Example"),
    ]
    assert overdue_conversations(session, days=6, now=now) == []


def test_alerts_replies_remind_sends_now_and_reports_per_ward(
        tmp_path: Path, factory: sessionmaker[Session],
        smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    config = smtp_config(tmp_path, settings, "[inbound]\nreminder_days = 2\n")
    run = CliRunner()
    quiet = run.invoke(cli, ["--config", str(config), "replies", "remind"])
    assert quiet.exit_code == 0, quiet.output
    assert "no replies open longer than 2 days" in quiet.stdout and sink.received == []
    with factory.begin() as session:
        a_thread(session, make_ward(session, "RIV", "Riverside"), "ann@home.example", "Ann",
                 replies=[(utcnow() - timedelta(days=2, hours=1), "Re: bikes", False)])

    result = run.invoke(cli, ["--config", str(config), "replies", "remind", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sent": {"RIV": 1}, "failed": {}}
    assert [r.rcpt_tos for r in sink.received] == [[RIV_TEAM]]
