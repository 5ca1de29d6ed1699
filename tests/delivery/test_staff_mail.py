"""Staff mail leaves the way residents' mail does: a reply forwarded to the ward team, the
team's reminder of replies still open and a password reset are outbox rows, retried after a
4xx exactly like a digest, and counted in `alerts status --json`."""

from __future__ import annotations

import json
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import Role, add_user
from alerts.cli import cli
from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from tests.factories import make_sent_message, make_subscriber, make_ward, signed, smtp_config
from tests.inbound.test_reminders import a_thread
from tests.servers import SinkHandler
from tests.web.test_officers import PASSWORD, post

ANN, BOB = "ann@home.example", "bob@home.example"
TEAM, OFFICER = "team-riv@police.example", "pc.bloggs@police.example"
TRY_LATER = "451 4.3.0 Try again later"
KINDS = ("digest", "forward", "reminder", "reset")


def outbox(factory: sessionmaker[Session], after: int) -> dict[str, list[Delivery]]:
    """The outbox's rows after id `after` by kind of message, acknowledgements to residents
    left out."""
    found: dict[str, list[Delivery]] = {}
    with factory() as session:
        for row in session.scalars(select(Delivery).where(Delivery.id > after)
                                   .order_by(Delivery.id)):
            kind = session.execute(text("SELECT kind FROM messages WHERE id = :id"),
                                   {"id": row.message_id}).scalar_one()
            if kind in KINDS:
                found.setdefault(kind, []).append(row)
    return found


def status(runner: CliRunner, config: Path) -> dict[str, object]:
    result = runner.invoke(cli, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    assert ANN not in result.stdout and OFFICER not in result.stdout
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_a_forward_a_reminder_and_a_reset_are_outbox_rows_retried_like_a_digest(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        tmp_path: Path) -> None:
    sink, settings = smtp
    config = smtp_config(tmp_path, settings)
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        ann = make_subscriber(session, riv, ANN, name="Ann Example")
        delivery = make_sent_message(session, riv, [ann])[ann.subscriber_id]
        token = signed(session, settings.web.secret_key, Purpose.REPLY, delivery)
        a_thread(session, riv, "dee@home.example", "Dee",
                 replies=[(utcnow() - timedelta(days=4), "Re: parking", False)])
        make_subscriber(session, hil, BOB)
        add_user(session, OFFICER, Role.OFFICER, password=PASSWORD, ward_codes=["RIV"])
        already_sent = session.scalar(select(func.max(Delivery.id))) or 0
    for refusing in (TEAM, OFFICER, BOB):  # every server says "later" to the first attempt
        sink.reject[refusing] = TRY_LATER
    runner = CliRunner()

    def alerts(*args: str) -> int:
        return runner.invoke(cli, ["--config", str(config), *args]).exit_code

    # A digest for Bob, Ann's reply (forwarded to the team), the team's reminder of Dee's
    # reply open for four days, and a password reset asked for on the web.
    assert alerts("post", "--ward", "HIL", "--title", "Bike marking", "--body", "At noon.") == 0
    assert alerts("digest", "send", "--ward", "HIL") == 0
    reply = EmailMessage()
    reply["From"], reply["To"] = f"Ann Example <{ANN}>", f"reply+{token}@reply.example.org"
    reply["Subject"] = "Re: news"
    reply.set_content("Can I bring two bikes?\n")
    assert Intake(factory, settings).process(reply.as_bytes(), via=Via.FILE).reply_id
    assert alerts("replies", "remind") == 1  # tried at once: not sent, to be tried again
    web = TestClient(create_app(factory, settings=settings))
    asked = post(web, "/staff/reset", {"email": OFFICER}, form_page="/staff/reset")
    assert "Check your email" in asked.text
    assert alerts("deliver") == 0

    first = outbox(factory, already_sent)
    assert sorted(first) == list(KINDS)
    for kind, rows in first.items():
        [row] = rows
        assert (row.status, row.attempts) == ("queued", 1), kind
        assert row.last_error is not None and "451" in row.last_error, kind
        assert row.next_attempt_at > utcnow(), kind  # backed off, as a digest is
    pending = status(runner, config)
    by_kind = pending["outbox_by_kind"]
    assert isinstance(by_kind, dict)
    assert {kind: by_kind[kind]["queued"] for kind in KINDS} == dict.fromkeys(KINDS, 1)
    assert pending["due"] == 0

    sink.reject.clear()
    later = deliver_due(factory, settings, now=lambda: utcnow() + timedelta(days=1))
    assert later.sent == 4 and later.retried == later.failed == 0
    for kind, rows in outbox(factory, already_sent).items():
        [row] = rows
        assert (row.status, row.attempts, row.last_error) == ("sent", 2, None), kind
    sent_before = {kind: by_kind[kind]["sent"] for kind in KINDS}  # the digests Ann had
    now_sent = status(runner, config)["outbox_by_kind"]
    assert isinstance(now_sent, dict)
    assert {kind: now_sent[kind]["sent"] - sent_before[kind] for kind in KINDS} == \
        dict.fromkeys(KINDS, 1)
    delivered = [r.rcpt_tos for r in sink.received]
    assert delivered.count([TEAM]) == 2 and [OFFICER] in delivered and [BOB] in delivered
