"""`alerts inbound process` and `alerts replies list|show` as officers and MTAs use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.inbound import intake
from alerts.inbound.forward import queue_forward
from alerts.inbound.replies import Reply
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
