"""`alerts subscribers import` without --confirmed: each newly pending address gets one
confirmation email (in the maildir), never a digest, at most one an hour; with --confirmed
nothing is sent and the consent is recorded as declared prior consent.
"""

from __future__ import annotations

import csv
import io
import json
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from alerts.core.config import load_settings
from alerts.core.db import make_engine, session_factory
from alerts.web.app import create_app
from subscriptions.subscribers import Status, find_subscriber, unsubscribe_everywhere
from tests.cli.test_commands import alerts, config, run  # noqa: F401 (fixtures)
from tests.web.test_residents import confirm_by_button

CONFIRM = re.compile(r"https://alerts\.example\.org(/confirm/\S+)")


def outbox(tmp_path: Path) -> list[EmailMessage]:
    folder = tmp_path / "outbox" / "new"
    found = []
    for file in sorted(folder.iterdir()) if folder.is_dir() else []:
        parsed = message_from_bytes(file.read_bytes(), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(parsed)
    return found


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def exported(runner: CliRunner, config: Path) -> dict[tuple[str, str], str]:  # noqa: F811
    rows = csv.DictReader(io.StringIO(run(runner, config, "subscribers", "export").stdout))
    return {(r["email"], r["ward"]): r["status"] for r in rows}


def test_an_import_without_prior_consent_sends_one_confirmation_per_address_and_no_digest(
    alerts: CliRunner, config: Path, tmp_path: Path  # noqa: F811
) -> None:
    for code, name in (("RIV", "Riverside"), ("HIL", "Hillcrest")):
        run(alerts, config, "wards", "add", code, name, "--team-email", "team@police.example")
    members = tmp_path / "members.csv"
    members.write_text("email,ward,name\nann@home.example,RIV,Ann\nAnn@home.example,HIL,Ann\n"
                       "bob@home.example,RIV,Bob\nnot an address,RIV,\n")
    result = run(alerts, config, "subscribers", "import", str(members))
    assert result.exit_code == 1, "a bad row is still reported"
    assert "imported 3 subscription(s)" in result.stdout
    assert "queued 2 confirmation email(s); nothing else is sent" in result.stdout
    assert set(exported(alerts, config).values()) == {"pending"}

    run(alerts, config, "post", "--ward", "RIV", "--title", "Patrols this week", "--body", "Hi")
    sent = json.loads(run(alerts, config, "digest", "send", "--all", "--json").stdout)
    assert all(s["deliveries"] == 0 for s in sent), "no digest to a pending address"
    assert json.loads(run(alerts, config, "deliver", "--json").stdout)["sent"] == 2
    mails = {m["To"]: m for m in outbox(tmp_path)}
    assert set(mails) == {"Ann <ann@home.example>", "Bob <bob@home.example>"}
    ann = mails["Ann <ann@home.example>"]
    assert ann["Subject"] == "Please confirm your neighbourhood alerts"
    assert "Riverside" in text_of(ann) and "Hillcrest" in text_of(ann)
    assert "999" in text_of(ann)
    assert "added the address to our list" in " ".join(text_of(ann).split())
    links = {to: CONFIRM.findall(text_of(m)) for to, m in mails.items()}
    assert len({tuple(found) for found in links.values()}) == 2, "each link is the resident's"

    again = run(alerts, config, "subscribers", "import", str(members))
    assert "queued 0 confirmation email(s)" in again.stdout, \
        "importing the same file again does not ask the same people again"

    settings = load_settings(config, environ={})
    engine = make_engine(settings.database.url)
    try:
        client = TestClient(create_app(session_factory(engine), settings=settings))
        assert confirm_by_button(client, links["Ann <ann@home.example>"][0]).status_code == 200
    finally:
        engine.dispose()
    assert exported(alerts, config) == {
        ("ann@home.example", "HIL"): "confirmed", ("ann@home.example", "RIV"): "confirmed",
        ("bob@home.example", "RIV"): "pending"}


def test_confirmations_from_imports_are_one_an_hour_per_address(
    alerts: CliRunner, config: Path, tmp_path: Path  # noqa: F811
) -> None:
    for code, name in (("RIV", "Riverside"), ("HIL", "Hillcrest")):
        run(alerts, config, "wards", "add", code, name, "--team-email", "team@police.example")
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("email,ward\ncat@home.example,RIV\n")
    second.write_text("email,ward\ncat@home.example,HIL\ndan@home.example,HIL\n")
    assert "queued 1 confirmation" in run(alerts, config, "subscribers", "import",
                                          str(first)).stdout
    result = run(alerts, config, "subscribers", "import", str(second))
    assert result.exit_code == 0
    assert ("queued 1 confirmation email(s); 1 address(es) already sent one in the last hour"
            in result.stdout)
    run(alerts, config, "deliver")
    assert sorted(m["To"] for m in outbox(tmp_path)) == ["cat@home.example", "dan@home.example"]


def test_an_import_with_declared_prior_consent_sends_nothing(
    alerts: CliRunner, config: Path, tmp_path: Path  # noqa: F811
) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    members = tmp_path / "members.csv"
    members.write_text("email,ward\nann@home.example,RIV\n")
    result = run(alerts, config, "subscribers", "import", str(members), "--confirmed")
    assert result.exit_code == 0 and "confirmation" not in result.stdout
    assert json.loads(run(alerts, config, "deliver", "--json").stdout)["sent"] == 0
    assert outbox(tmp_path) == []
    [row] = csv.DictReader(io.StringIO(run(alerts, config, "subscribers", "export").stdout))
    assert (row["status"], row["consent_method"]) == ("confirmed", "import")


def test_declared_prior_consent_never_renews_a_resident_who_left_or_wakes_a_paused_one(
    alerts: CliRunner, config: Path, tmp_path: Path  # noqa: F811
) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "t@police.example")
    for email in ("left@home.example", "paused@home.example"):
        assert run(alerts, config, "subscribers", "add", email, "--ward", "RIV",
                   "--confirmed").exit_code == 0
    engine = make_engine(load_settings(config).database.url)
    try:
        with session_factory(engine).begin() as session:
            unsubscribe_everywhere(session, "left@home.example")
            paused = find_subscriber(session, "paused@home.example")
            assert paused is not None
            paused.subscriptions[0].status = Status.PAUSED
    finally:
        engine.dispose()
    again = tmp_path / "old-list.csv"
    again.write_text("email,ward\nleft@home.example,RIV\npaused@home.example,RIV\n"
                     "new@home.example,RIV\n")
    result = run(alerts, config, "subscribers", "import", str(again), "--confirmed")
    assert result.exit_code == 0, result.output
    assert "queued 1 confirmation email(s)" in result.stdout
    run(alerts, config, "subscribers", "add", "left@home.example", "--ward", "RIV", "--confirmed")
    assert exported(alerts, config) == {
        ("left@home.example", "RIV"): "pending",  # asks them; only their own link confirms
        ("paused@home.example", "RIV"): "paused",
        ("new@home.example", "RIV"): "confirmed",
    }
    run(alerts, config, "deliver")
    assert [m["To"] for m in outbox(tmp_path)] == ["left@home.example"]
    assert "Confirm" in text_of(outbox(tmp_path)[0])
