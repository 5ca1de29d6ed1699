"""`alerts post` goes through the posting service the staff pages use: audited as the
operator at the command line, the same rows and events as the page for the same post, and
an urgent alert sent only once confirmed at a terminal (or with --yes)."""

from __future__ import annotations

import getpass
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.audit import AuditEntry
from alerts.core.config import Settings
from alerts.core.events import EventBus
from alerts.delivery.outbox import Delivery
from alerts.mail.messages import Message
from alerts.sources.items import Item
from tests.cli.test_commands import alerts, config, one_line_error, run  # noqa: F401 (fixtures)
from tests.processes import environment
from tests.web.test_officers import ALERT, UPDATE, client_for, csrf_of, sign_in, with_passwords

OPERATOR = f"command line ({getpass.getuser()})"


def posts_audited(runner: CliRunner, config: Path) -> list[tuple[str, str, str, str]]:  # noqa: F811
    """What `alerts audit --json` says of posts and alerts, oldest first: who, what, which
    record (without its id), and the detail."""
    shown = run(runner, config, "audit", "--json")
    assert shown.exit_code == 0, shown.stderr
    return [(e["actor"], e["action"], e["target"].split()[0], e["detail"])
            for e in reversed(json.loads(shown.stdout))
            if e["action"].startswith(("item.", "alert."))]


def stored(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Item, Message, Delivery, AuditEntry)}


def on_a_terminal(config: Path, *args: str, typed: str) -> subprocess.CompletedProcess[str]:  # noqa: F811
    """Run `alerts` in its own process with a terminal as its input, as at a shell, and type
    `typed` and Enter into it."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, typed.encode() + b"\n")
        return subprocess.run(
            [sys.executable, "-m", "alerts.cli", "--config", str(config), *args],
            stdin=terminal, capture_output=True, text=True, env=environment(),
            cwd=config.parent, timeout=60, check=False)
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.fixture
def riverside(alerts: CliRunner, config: Path) -> CliRunner:  # noqa: F811
    """Ward RIV with one confirmed resident."""
    assert run(alerts, config, "wards", "add", "RIV", "Riverside",
               "--team-email", "riv@police.example").exit_code == 0
    assert run(alerts, config, "subscribers", "add", "ann@home.example", "--ward", "RIV",
               "--confirmed").exit_code == 0
    return alerts


URGENT = ("post", "--ward", "RIV", "--urgent", "--title", "Road closed",
          "--body", "Avoid Mill Lane tonight.")


def test_a_post_and_an_urgent_alert_from_the_shell_are_audited_naming_the_operator_and_ward(
        riverside: CliRunner, config: Path) -> None:  # noqa: F811
    posted = run(riverside, config, "post", "--ward", "RIV", "--title", "Bikes marked",
                 "--body", "We marked 40 bikes.")
    assert posted.exit_code == 0, posted.stderr
    assert posts_audited(riverside, config) == [(OPERATOR, "item.post", "item", "ward RIV")]

    urgent = run(riverside, config, *URGENT, "--yes")
    assert urgent.exit_code == 0, urgent.stderr
    assert "queued for 1 subscriber(s) of ward RIV" in urgent.stdout
    assert posts_audited(riverside, config)[1:] == [
        (OPERATOR, "alert.urgent", "message", "ward RIV; queued for 1")]


def test_the_page_and_the_shell_store_audit_and_announce_a_post_the_same_way(
        alerts: CliRunner, config: Path, factory: sessionmaker[Session],  # noqa: F811
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with_passwords(factory)  # RIV: Ann confirmed and immediate, Cy pending; an officer of RIV
    announced: list[object] = []
    publish = EventBus.publish

    def recorded(bus: EventBus, event: Any) -> int:
        announced.append(event)
        return publish(bus, event)

    monkeypatch.setattr(EventBus, "publish", recorded)

    def outcome(post: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]],
                                    list[tuple[str, str]], dict[str, int]]:
        """What a post and an urgent alert add: events, items, audit entries, row counts."""
        before, seen = stored(factory), len(announced)
        with factory() as session:
            first_item = session.scalar(select(func.max(Item.id))) or 0
            first_entry = session.scalar(select(func.max(AuditEntry.id))) or 0
        post()
        events = [(type(e).__name__, e.ward_code, len(getattr(e, "item_ids", ())),
                   getattr(e, "deliveries", None)) for e in announced[seen:]]
        with factory() as session:
            items = [(i.kind, i.title, i.body_html, i.topics, i.source_id)
                     for i in session.scalars(select(Item).where(Item.id > first_item))]
            entries = [(e.action, e.detail) for e in session.scalars(
                select(AuditEntry).where(AuditEntry.id > first_entry))]
        after = stored(factory)
        return events, items, entries, {k: after[k] - before[k] for k in after}

    client = client_for(factory, settings)
    assert sign_in(client).url.path == "/staff/"

    def on_the_page() -> None:
        form = "/staff/wards/RIV/post"
        for data in (UPDATE, ALERT):
            done = client.post(form, data={"csrf_token": csrf_of(client.get(form).text),
                                           **data})
            assert done.status_code == 200 and done.url.path == "/staff/wards/RIV/"

    def at_the_shell() -> None:
        for args in (("--title", UPDATE["title"], "--body", UPDATE["body"]),
                     ("--urgent", "--yes", "--title", ALERT["title"], "--body", ALERT["body"])):
            done = run(alerts, config, "post", "--ward", "RIV", *args)
            assert done.exit_code == 0, done.stderr

    page = outcome(on_the_page)
    shell = outcome(at_the_shell)
    assert page == shell
    events, _, entries, counts = shell
    assert events == [("ItemPublished", "RIV", 1, None), ("UrgentAlertPosted", "RIV", 0, 1)]
    assert entries == [("item.post", "ward RIV"), ("alert.urgent", "ward RIV; queued for 1")]
    # Two items; the post's immediate email and the alert, each to Ann; two audit entries.
    assert counts == {"Item": 2, "Message": 2, "Delivery": 2, "AuditEntry": 2}
    with factory() as session:
        actors = session.scalars(select(AuditEntry.actor).where(
            AuditEntry.action != "sign_in").order_by(AuditEntry.id)).all()
    assert actors == ["pc.bloggs@police.example"] * 2 + [OPERATOR] * 2


def test_an_urgent_alert_without_yes_and_without_a_terminal_is_refused_and_nothing_is_posted(
        riverside: CliRunner, config: Path, factory: sessionmaker[Session]) -> None:  # noqa: F811
    before = stored(factory)
    refused = run(riverside, config, *URGENT)  # the runner's input is not a terminal
    assert "--yes" in one_line_error(refused)
    assert stored(factory) == before


def test_at_a_terminal_an_urgent_alert_asks_first_and_goes_only_on_yes(
        riverside: CliRunner, config: Path, factory: sessionmaker[Session]) -> None:  # noqa: F811
    before = stored(factory)
    declined = on_a_terminal(config, *URGENT, typed="n")
    assert "Send this urgent alert to Riverside?" in declined.stderr
    assert "It goes now to 1 confirmed subscriber of Riverside (RIV)" in declined.stderr
    assert declined.returncode != 0 and "not sent" in declined.stderr
    assert stored(factory) == before

    sent = on_a_terminal(config, *URGENT, typed="y")
    assert sent.returncode == 0, sent.stderr
    assert "Send this urgent alert to Riverside?" in sent.stderr
    assert "queued for 1 subscriber(s) of ward RIV" in sent.stdout
    assert {k: n - before[k] for k, n in stored(factory).items()} == {
        "Item": 1, "Message": 1, "Delivery": 1, "AuditEntry": 1}


def test_a_post_reads_the_database_s_revision_once(
        riverside: CliRunner, config: Path) -> None:  # noqa: F811
    """A post opens sessions twice (its own and the event bus's); whether `alerts init` has
    brought the database up to date is asked once a command, not each time."""
    asked: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM alembic_version" in statement:
            asked.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        posted = run(riverside, config, "post", "--ward", "RIV", "--title", "Bikes marked",
                     "--body", "We marked 40 bikes.")
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    assert posted.exit_code == 0, posted.stderr
    assert len(asked) == 1
