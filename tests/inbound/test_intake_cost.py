"""What taking in one message costs, as work done rather than time (the time is in
bench/inbound_process.py): each header text parsed once, each row read once."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.inbound import answers, mail
from alerts.inbound.classify import Kind
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.inbound.mail import parse_mail
from alerts.inbound.replies import ReplyThread
from alerts.mail.messages import Message, MessageKind
from alerts.mail.mime import READING
from alerts.mail.render import Rendered
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.suppression import SuppressionReason, suppress
from tests.factories import make_sent_message, make_subscriber, make_ward, signed

DOMAIN = "reply.example.org"


def reply(to: str, n: int) -> bytes:
    return (f"From: Ann Example <ann@home.example>\r\nTo: {to}\r\nSubject: Re: news {n}\r\n"
            f"Message-ID: <r{n}@home.example>\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "\r\nWill the team be at the fete?\r\n\r\n> Bike marking on Saturday.\r\n").encode()


def anns_reply_address(factory: sessionmaker[Session], settings: Settings) -> str:
    """The reply address of a digest sent to Ann of Riverside (a genuine signed token)."""
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example", name="Ann Example")
        delivery = make_sent_message(session, ward, [ann])[ann.subscriber_id]
        return f"reply+{signed(session, settings.web.secret_key, Purpose.REPLY, delivery)}@{DOMAIN}"


def test_a_header_asked_for_again_is_not_parsed_again() -> None:
    first = parse_mail(reply("reply+1-abc@reply.example.org", 1)).message
    second = parse_mail(reply("reply+1-abc@reply.example.org", 2)).message
    assert first.get("Content-Type") is first.get("Content-Type")
    assert first.get("Content-Type") is second.get("Content-Type")  # the same text: one parse
    assert first.get_content_type() == "text/plain"
    assert first.get("Subject") == "Re: news 1" and second.get("Subject") == "Re: news 2"


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any,
               _context: object, _many: bool) -> None:
        seen.append((" ".join(statement.split()), repr(parameters)))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_a_reply_reads_each_row_once_and_writes_no_change_twice(
        factory: sessionmaker[Session], settings: Settings,
        statements: list[tuple[str, Any]]) -> None:
    to = anns_reply_address(factory, settings)
    statements.clear()
    outcome = Intake(factory, settings).process(reply(to, 1), via=Via.FILE)
    assert outcome.kind == Kind.REPLY and outcome.reply_id is not None
    reads = [s for s in statements if s[0].startswith("SELECT")]
    assert len(reads) == len(set(reads)), "a row was read twice"
    # The delivery its token names: checked against the token and used, one read.
    assert len([s for s, _ in reads
                if s.startswith("SELECT deliveries.id") and "WHERE deliveries.id = " in s]) == 1
    # The thread it starts is new and open: nothing to reopen.
    assert not [s for s, _ in statements if s.startswith("UPDATE reply_threads SET handled_at")]


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The bytes given to each BytesParser with the policy intake reads mail with."""
    seen: list[bytes] = []
    parse = BytesParser.parsebytes

    def spy(self: BytesParser, text: bytes, headersonly: bool = False) -> Any:
        if self.parser.policy is READING:
            seen.append(text)
        return parse(self, text, headersonly)

    monkeypatch.setattr(BytesParser, "parsebytes", spy)
    yield seen


def test_a_plain_reply_is_parsed_once_its_forward_attaching_its_bytes(
        factory: sessionmaker[Session], settings: Settings, parsed: list[bytes]) -> None:
    to = anns_reply_address(factory, settings)
    raw = reply(to, 1)
    outcome = Intake(factory, settings).process(raw, via=Via.FILE)
    assert outcome.reply_id is not None
    assert parsed == [raw]  # by intake; not again to attach it to the forward


def test_replies_to_one_digest_render_its_acknowledgement_once(
        factory: sessionmaker[Session], settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    subject = f"Riverside news {uuid.uuid4().hex}"  # not rendered before in this process
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        residents = [make_subscriber(session, ward, f"{name}@home.example")
                     for name in ("ann", "bob", "cat")]
        deliveries = make_sent_message(session, ward, residents, subject=subject)
        addresses = [f"reply+{signed(session, settings.web.secret_key, Purpose.REPLY, d)}@{DOMAIN}"
                     for d in deliveries.values()]
    rendered: list[str] = []
    render = answers.render_reply_ack

    def spy(ward_name: str, answered: str, *args: Any, **kwargs: Any) -> Rendered:
        rendered.append(answered)
        return render(ward_name, answered, *args, **kwargs)

    monkeypatch.setattr(answers, "render_reply_ack", spy)
    intake = Intake(factory, settings)
    for n, to in enumerate(addresses):
        assert "; acknowledged" in intake.process(reply(to, n), via=Via.FILE).action
    assert rendered == [subject]
    # Each resident's acknowledgement is the one rendering it would have had on its own.
    alone = render(ward.name, subject, settings, emergency=False, now=utcnow())
    with factory() as session:
        acks = session.scalars(select(Message).where(Message.kind == MessageKind.REPLY_ACK)).all()
    assert [(m.subject, m.html, m.text) for m in acks] == [(alone.subject, alone.html,
                                                            alone.text)] * 3


def test_a_reply_to_a_digest_does_not_look_for_a_thread_a_digest_is_never_in(
        factory: sessionmaker[Session], settings: Settings,
        statements: list[tuple[str, Any]]) -> None:
    to = anns_reply_address(factory, settings)
    statements.clear()
    assert Intake(factory, settings).process(reply(to, 1), via=Via.FILE).reply_id is not None
    # Only acknowledgements and officers' answers are sent in a thread (test_threading.py).
    assert not [s for s, _ in statements if "FROM thread_answers" in s]


def test_a_first_reply_inserts_its_thread_acknowledged_flushing_nothing(
        factory: sessionmaker[Session], settings: Settings,
        statements: list[tuple[str, Any]]) -> None:
    to = anns_reply_address(factory, settings)
    flushes: list[list[str]] = []  # the kinds of the rows each flush inserted

    def flushing(session: Session, _context: object, _instances: object) -> None:
        flushes.append(sorted(type(row).__name__ for row in session.new))

    statements.clear()
    event.listen(Session, "before_flush", flushing)
    try:
        outcome = Intake(factory, settings).process(reply(to, 1), via=Via.FILE)
    finally:
        event.remove(Session, "before_flush", flushing)
    assert "; acknowledged" in outcome.action
    assert not [s for s, _ in statements if s.startswith("UPDATE reply_threads")]
    # The thread (acknowledged), the acknowledgement's message, row and link to the thread,
    # the journal row, the reply and the forward's message and row are INSERTs of their
    # own, at once: flushed as objects of the session they cost several times their
    # statements (bench/inbound_process.py).
    assert flushes == []
    inserts = [s.split(" (")[0] for s, _ in statements if s.startswith("INSERT")]
    assert inserts == ["INSERT INTO reply_threads", "INSERT INTO messages",
                       "INSERT INTO deliveries", "INSERT INTO thread_answers",
                       "INSERT INTO inbound_messages", "INSERT INTO replies",
                       "INSERT INTO messages", "INSERT INTO deliveries"]
    assert not [kinds for kinds in flushes if "InboundRecord" in kinds]
    assert len([s for s, _ in statements if s.startswith("INSERT INTO inbound_messages")]) == 1
    with factory() as session:
        (thread,) = session.scalars(select(ReplyThread)).all()
        assert thread.acknowledged_at is not None


def test_a_suppressed_residents_reply_leaves_its_thread_unacknowledged(
        factory: sessionmaker[Session], settings: Settings) -> None:
    to = anns_reply_address(factory, settings)
    with factory() as session, session.begin():
        suppress(session, "ann@home.example", SuppressionReason.COMPLAINT)
    outcome = Intake(factory, settings).process(reply(to, 1), via=Via.FILE)
    assert outcome.reply_id is not None and "; acknowledged" not in outcome.action
    with factory() as session:
        (thread,) = session.scalars(select(ReplyThread)).all()
        assert thread.acknowledged_at is None
        assert not session.scalars(select(Message).where(
            Message.kind == MessageKind.REPLY_ACK)).all()


def test_the_delivery_a_reply_names_comes_with_its_message_ward_and_resident_in_one_read(
        factory: sessionmaker[Session], settings: Settings,
        statements: list[tuple[str, Any]]) -> None:
    to = anns_reply_address(factory, settings)
    statements.clear()
    outcome = Intake(factory, settings).process(reply(to, 1), via=Via.FILE)
    assert "; acknowledged" in outcome.action and outcome.reply_id is not None
    alone = [s for s, _ in statements
             if any(f"FROM {table} WHERE {table}.id = " in s
                    for table in ("messages", "wards", "subscribers"))]
    assert alone == []
    # Reads: the journal, the delivery with the rest, the teams' addresses, the thread, the
    # suppression list (not the outbox: an acknowledgement just written has no row yet);
    # writes: the thread, the acknowledgement (message, row, link to the thread), the
    # journal, the reply, the forward (message, row).
    assert len(statements) == 13


def test_the_reads_every_message_makes_are_built_once(
        factory: sessionmaker[Session], settings: Settings, engine: Engine) -> None:
    to = anns_reply_address(factory, settings)
    built: dict[str, list[object]] = {}  # kept, so that no id is reused

    def executed(_conn: object, statement: object, *_args: object) -> None:
        if isinstance(statement, Select):  # through the session or straight to its connection
            built.setdefault(str(statement), []).append(statement)

    event.listen(engine, "before_execute", executed)
    try:
        intake = Intake(factory, settings)
        for n in (1, 2):
            assert intake.process(reply(to, n), via=Via.FILE).reply_id is not None
    finally:
        event.remove(engine, "before_execute", executed)
    # The journal's check for the same bytes, the delivery a token names (with its message,
    # ward and resident) and the reply's thread: the same statement for both messages.
    for marks in (("FROM inbound_messages", "content_hash"), ("LEFT OUTER JOIN messages",),
                  ("FROM reply_threads", "reply_threads.subscriber_id =")):
        (made,) = [made for sql, made in built.items() if all(mark in sql for mark in marks)]
        assert len(made) == 2 and made[0] is made[1], marks


def test_a_header_that_is_one_bare_address_is_not_parsed_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    parse = mail.getaddresses

    def spy(values: list[str]) -> list[tuple[str, str]]:
        asked.append(list(values))
        return parse(values)

    monkeypatch.setattr(mail, "getaddresses", spy)
    parsed = parse_mail(reply("reply+1-abc@Reply.Example.org", 1))
    assert parsed.recipients == ("reply+1-abc@reply.example.org",)
    assert asked == []  # the email package parsed it; it is read as it is
    assert parsed.sender == "ann@home.example"  # "Ann Example <...>" is parsed as before
    assert asked == [["Ann Example <ann@home.example>"]]


def test_taking_mail_in_loads_no_imap_client() -> None:
    # Only `alerts inbound poll` talks IMAP; every other way in paid for loading its client.
    code = "import sys, alerts.inbound.intake; print('imapclient' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "False"


def test_a_new_reply_reopens_the_thread_the_team_closed_and_changes_nothing_else(
        factory: sessionmaker[Session], settings: Settings,
        statements: list[tuple[str, Any]]) -> None:
    to = anns_reply_address(factory, settings)
    intake = Intake(factory, settings)
    assert "; acknowledged" in intake.process(reply(to, 1), via=Via.FILE).action
    with factory() as session, session.begin():
        (thread,) = session.scalars(select(ReplyThread)).all()
        acknowledged = thread.acknowledged_at
        thread.handled_at = utcnow()
    statements.clear()
    assert "no acknowledgement (one a thread)" in intake.process(reply(to, 2), via=Via.FILE).action
    assert len([s for s, _ in statements if s.startswith("UPDATE reply_threads")]) == 1
    with factory() as session:
        (thread,) = session.scalars(select(ReplyThread)).all()
        assert thread.handled_at is None and thread.acknowledged_at == acknowledged
    # Open and acknowledged: a third reply changes nothing of the thread.
    statements.clear()
    assert intake.process(reply(to, 3), via=Via.FILE).reply_id is not None
    assert not [s for s, _ in statements if s.startswith("UPDATE reply_threads")]


def test_the_auto_reply_marks_a_message_lacks_are_not_asked_of_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from email.message import Message as EmailPackageMessage

    from alerts.inbound.classify import auto_reply_reason

    mail = parse_mail(reply("reply+1-abc@reply.example.org", 1))
    asked: list[str] = []
    get = EmailPackageMessage.get

    def spy(self: EmailPackageMessage, name: str, failobj: Any = None) -> Any:
        asked.append(name.lower())
        return get(self, name, failobj)

    monkeypatch.setattr(EmailPackageMessage, "get", spy)
    assert auto_reply_reason(mail) is None
    # Each of these asks reads every header of the message: asked only of one that has it.
    assert not {"auto-submitted", "x-autoreply", "x-vacation", "x-mailer", "precedence",
                "x-ms-exchange-inbox-rules-loop"} & set(asked)


def test_a_reply_above_a_quote_is_read_by_the_reply_parser_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.inbound import text

    reads: list[str] = []
    parsed = text._parsed

    def spy(shown: list[str]) -> Any:
        reads.append("\n".join(shown))
        return parsed(shown)

    monkeypatch.setattr(text, "_parsed", spy)
    found = text.split_reply("Will the team be at the fete?\n\nOn Fri, 20 Nov 2026 at 16:00, "
                             "Riverside team wrote:\n> Bike marking on Saturday.\n")
    assert found.new == "Will the team be at the fete?"
    # To find the header; not again for a signature the words above cannot hold (no
    # sign-off, no "--", no "Sent from my"), nor for the nothing below the quote.
    assert len(reads) == 1


def test_the_reply_parser_is_spared_only_where_its_answer_would_change_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.inbound import text
    from alerts.inbound.mail import parse_mail
    from alerts.inbound.text import body_text, split_reply

    here = Path(__file__).parent
    bodies = [body_text(parse_mail(path.read_bytes()).message)
              for folder in ("corpus", "samples") for path in sorted((here / folder).rglob("*"))
              if path.suffix in (".eml", ".txt") and path.name != "README.txt"]
    bodies += ["Thanks,\nAnn", "Thanks, but someone is in my garden now", "Hi\n--\nAnn\n07700",
               "See you there.\n\nSent from my iPhone", "Yes.\n\n> quoted\n\n\n", ""]
    spared = [split_reply(body) for body in bodies]
    monkeypatch.setattr(text, "_may_start_signature", lambda line: True)
    assert [split_reply(body) for body in bodies] == spared
