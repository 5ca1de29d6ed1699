"""`alerts inbound process` and `alerts replies list|show` as officers and MTAs use them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.inbound import intake
from alerts.inbound.forward import queue_forward
from alerts.inbound.journal import InboundRecord
from alerts.inbound.replies import Reply
from alerts.mail.messages import Message, MessageKind
from subscriptions.links import Purpose
from tests.factories import make_sent_message, make_subscriber, make_ward, signed

SECRET = "cli-tests-secret"


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\nmaildir = "{tmp_path / "outbox"}"\n'
        f'[web]\nsecret_key = "{SECRET}"\nbase_url = "https://alerts.example.org"\n'
        f'[inbound]\nheld_dir = "{tmp_path / "held"}"\n'
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    return path


def run(config: Path, *args: str, data: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], input=data)


@pytest.fixture
def reply_address(config: Path, settings: Settings) -> str:
    engine = create_engine(settings.database.url)
    with sessionmaker(engine)() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example", name="Ann Example")
        delivery = make_sent_message(session, ward, [ann])[ann.subscriber_id]
        token = signed(session, SECRET, Purpose.REPLY, delivery)
    engine.dispose()
    return f"reply+{token}@reply.example.org"


def a_reply(to: str, text: str) -> bytes:
    return (f"From: Ann Example <ann@home.example>\r\nTo: {to}\r\n"
            f"Subject: Re: news\r\n\r\n{text}\r\n").encode()


def test_process_reads_files_and_prints_one_json_object_a_message(
        config: Path, reply_address: str, tmp_path: Path) -> None:
    reply = tmp_path / "reply.eml"
    reply.write_bytes(a_reply(reply_address, "Is the surgery still on Tuesday?"))
    away = tmp_path / "away.eml"
    away.write_bytes(b"From: ann@home.example\r\nTo: " + reply_address.encode() +
                     b"\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nAway\r\n")
    result = run(config, "inbound", "process", "--json", str(reply), str(away))
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(o["file"], o["kind"]) for o in objects] == [(str(reply), "reply"),
                                                         (str(away), "auto_reply")]
    assert set(objects[0]) >= {"file", "kind", "severity", "recipient", "action"}


def test_process_reads_standard_input_when_no_file_is_given(
        config: Path, reply_address: str) -> None:
    result = run(config, "inbound", "process", data=a_reply(reply_address, "Thanks!"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("-: reply:")


def test_a_missing_file_is_named_and_the_others_are_still_handled(
        config: Path, reply_address: str, tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(a_reply(reply_address, "Thanks!"))
    result = run(config, "inbound", "process", str(tmp_path / "missing.eml"), str(good))
    assert result.exit_code == 1
    assert "missing.eml: cannot be read" in result.stderr
    assert f"{good}: reply:" in result.stdout


def test_a_message_that_meets_a_fault_of_ours_is_named_and_the_others_are_still_handled(
        config: Path, reply_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No real input is known to fault now; a forward that cannot be built stands in for one.
    def forward_fails_on_a_word(session: Session, settings: Settings, reply: Reply,
                                **kwargs: Any) -> None:
        if "Mill Lane" in reply.text:
            raise UnicodeEncodeError("utf-8", "Mill Lane", 0, 1, "cannot write it back")
        queue_forward(session, settings, reply, **kwargs)

    monkeypatch.setattr(intake, "queue_forward", forward_fails_on_a_word)
    files = [tmp_path / f"{n}.eml" for n in ("first", "faulty", "last")]
    for path, text in zip(files, ("Thanks!", "A van on Mill Lane again", "See you Tuesday"),
                          strict=True):
        path.write_bytes(a_reply(reply_address, text))
    result = run(config, "inbound", "process", *map(str, files))
    assert result.exit_code == 1
    assert f"{files[1]}: not handled: an unexpected error (UnicodeEncodeError)" in result.stderr
    assert "Mill Lane" not in result.output and "ann@home.example" not in result.output
    assert f"{files[0]}: reply:" in result.stdout and f"{files[2]}: reply:" in result.stdout
    listed = json.loads(run(config, "replies", "list", "--ward", "RIV", "--json").stdout)
    assert len(listed) == 2, "the faulty message left nothing behind; the others were kept"


def test_replies_list_and_show_give_the_officer_the_text_without_the_quote(
        config: Path, reply_address: str) -> None:
    text = "Is the surgery still on Tuesday?\n\nOn Fri, the team wrote:\n> Surgery Tuesday 6pm"
    assert run(config, "inbound", "process", data=a_reply(reply_address, text)).exit_code == 0
    listed = json.loads(run(config, "replies", "list", "--ward", "RIV", "--json").stdout)
    assert len(listed) == 1 and listed[0]["resident"] == "Ann Example"
    shown = run(config, "replies", "show", str(listed[0]["id"]))
    assert shown.exit_code == 0
    assert "Is the surgery still on Tuesday?" in shown.stdout
    assert "--- quoted ---" in shown.stdout
    missing = run(config, "replies", "show", "999")
    assert missing.exit_code == 1 and "no reply with id 999" in missing.stderr


def test_replies_list_for_an_unknown_ward_is_a_one_line_error(config: Path) -> None:
    result = run(config, "replies", "list", "--ward", "NOPE")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def journalling_commits() -> Iterator[list[int]]:
    """For each commit that kept messages in the inbound journal, how many."""
    kept: list[int] = []
    pending = [0]

    def executed(_conn: object, _cursor: object, statement: str, parameters: Any,
                 _context: object, many: bool) -> None:
        if statement.lstrip().startswith("INSERT INTO inbound_messages"):
            pending[0] += len(parameters) if many else 1

    def committed(_conn: object) -> None:
        if pending[0]:
            kept.append(pending[0])
        pending[0] = 0

    event.listen(Engine, "before_cursor_execute", executed)
    event.listen(Engine, "commit", committed)
    yield kept
    event.remove(Engine, "before_cursor_execute", executed)
    event.remove(Engine, "commit", committed)


def test_process_keeps_many_messages_in_one_commit(
        config: Path, reply_address: str, tmp_path: Path,
        journalling_commits: list[int]) -> None:
    files = [tmp_path / f"{n}.eml" for n in range(12)]
    for n, path in enumerate(files):
        path.write_bytes(a_reply(reply_address, f"Question number {n}"))
    result = run(config, "inbound", "process", *map(str, files))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 12
    assert journalling_commits == [12]  # not one commit a message


# A child `alerts inbound process` killed (SIGKILL) as it queues the forward of its
# `KILL_AT`th reply: in the middle of a transaction, with earlier messages printed or not.
KILLED_AT_A_FORWARD = """
import os, signal, sys
from alerts.cli import cli
from alerts.inbound import intake
queued, forward = [0], intake.queue_forward
def queue_forward(*args, **kwargs):
    queued[0] += 1
    if queued[0] == int(os.environ["KILL_AT"]):
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return forward(*args, **kwargs)
intake.queue_forward = queue_forward
cli(sys.argv[1:], prog_name="alerts")
"""


def test_a_process_killed_mid_batch_keeps_what_it_printed_and_a_rerun_handles_the_rest_once(
        config: Path, reply_address: str, settings: Settings, tmp_path: Path) -> None:
    files = [tmp_path / f"{n:02d}.eml" for n in range(60)]
    for n, path in enumerate(files):
        path.write_bytes(a_reply(reply_address, f"Question number {n}"))
    command = ["--config", str(config), "inbound", "process", "--json", *map(str, files)]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_A_FORWARD, *command],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "KILL_AT": "55"})
    assert killed.returncode == -signal.SIGKILL
    printed = [json.loads(line)["file"] for line in killed.stdout.splitlines()]
    assert printed == list(map(str, files[:len(printed)]))
    engine = create_engine(settings.database.url)
    kept = sessionmaker(engine)

    def counted() -> tuple[int, int, int, int]:
        with kept() as session:
            return (session.scalar(select(func.count()).select_from(InboundRecord)) or 0,
                    session.scalar(select(func.count()).select_from(Reply)) or 0,
                    *(session.scalar(select(func.count()).select_from(Message)
                                     .where(Message.kind == kind)) or 0
                      for kind in (MessageKind.FORWARD, MessageKind.REPLY_ACK)))

    assert counted()[:3] == (len(printed),) * 3  # what was said to be done was kept, no more
    again = run(config, "inbound", "process", "--json", *map(str, files))
    assert again.exit_code == 0, again.output
    outcomes = [json.loads(line) for line in again.stdout.splitlines()]
    assert [o["file"] for o in outcomes] == list(map(str, files))
    assert [o["action"].startswith("already handled") for o in outcomes] == \
        [n < len(printed) for n in range(60)]
    # Each message once: one journal row, one reply and one forward each; one thread, one
    # acknowledgement.
    assert counted() == (60, 60, 60, 1)
    engine.dispose()


def test_process_reads_the_teams_addresses_once_a_batch(
        config: Path, reply_address: str, tmp_path: Path) -> None:
    files = [tmp_path / f"{n}.eml" for n in range(5)]
    for n, path in enumerate(files):
        path.write_bytes(a_reply(reply_address, f"Question number {n}"))
    reads: list[str] = []

    def executed(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("SELECT wards.team_email"):
            reads.append(statement)

    event.listen(Engine, "before_cursor_execute", executed)
    try:
        result = run(config, "inbound", "process", *map(str, files))
    finally:
        event.remove(Engine, "before_cursor_execute", executed)
    assert result.exit_code == 0, result.output
    assert "; acknowledged" in result.stdout  # none taken for the service's own mail
    assert len(reads) == 1  # for the five replies; not once a reply


def test_process_asks_the_journal_once_a_batch_and_handles_the_same_bytes_twice_once(
        config: Path, reply_address: str, tmp_path: Path) -> None:
    files = [tmp_path / f"{n}.eml" for n in range(5)]
    for n, path in enumerate(files):
        path.write_bytes(a_reply(reply_address, f"Question number {n % 4}"))  # 4 = 0 again
    reads: list[str] = []

    def executed(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("SELECT") and "FROM inbound_messages" in statement \
                and "content_hash" in statement.partition("WHERE")[2]:
            reads.append(statement)

    event.listen(Engine, "before_cursor_execute", executed)
    try:
        result = run(config, "inbound", "process", "--json", *map(str, files))
    finally:
        event.remove(Engine, "before_cursor_execute", executed)
    assert result.exit_code == 0, result.output
    actions = [json.loads(line)["action"] for line in result.stdout.splitlines()]
    assert [action.startswith("already handled") for action in actions] == \
        [False, False, False, False, True]
    listed = json.loads(run(config, "replies", "list", "--ward", "RIV", "--json").stdout)
    assert len(listed) == 4
    # One read for the five (which were handled before?), and one for the repeat (which row?)
    assert len(reads) == 2
