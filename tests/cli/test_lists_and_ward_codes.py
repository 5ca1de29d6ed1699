"""The commands an operator reads and types: every list has a header row over aligned
columns, a ward code is found whatever its case, and an address that bounced is exported as
`suppressed`, never as `confirmed`. On both stores."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from alerts.core.config import Settings
from subscriptions.subscribers import unsubscribe_everywhere
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import get_ward
from tests.cli.test_inbound_commands import a_reply, config, reply_address, run
from tests.factories import make_subscriber

__all__ = ["config", "reply_address"]  # the fixtures, shared with the inbound commands' tests


def header_and_rows(output: str) -> tuple[list[str], list[str]]:
    lines = output.splitlines()
    return lines[0].split(), lines[1:]


def test_wards_list_prints_a_header_row_over_aligned_columns(
        config: Path, reply_address: str) -> None:
    assert run(config, "wards", "add", "HIL", "Hillcrest and the Long Name Estate",
               "--team-email", "team-hil@police.example").exit_code == 0
    wards = run(config, "wards", "list")
    header, rows = header_and_rows(wards.stdout)
    assert header == ["CODE", "NAME", "TEAM", "EMAIL", "DIGEST", "CRON", "LANGUAGE"]
    assert len(rows) == 2
    assert {line.index("team-") for line in rows} == {
        wards.stdout.splitlines()[0].index("TEAM EMAIL")}


def test_replies_list_prints_a_header_row_over_aligned_columns(
        config: Path, reply_address: str) -> None:
    assert run(config, "inbound", "process",
               data=a_reply(reply_address, "Is the surgery on?")).exit_code == 0
    replies = run(config, "replies", "list")
    header, rows = header_and_rows(replies.stdout)
    assert header == ["!", "ID", "RECEIVED", "WARD", "STATE", "RESIDENT", "SUBJECT"]
    assert len(rows) == 1 and "Ann Example" in rows[0]
    assert rows[0].index("RIV") == replies.stdout.splitlines()[0].index("WARD")


def test_the_other_lists_have_a_header_row_too(config: Path, reply_address: str) -> None:
    assert run(config, "sources", "add", "--ward", "RIV", "--kind", "rss",
               "https://police.example/riv.rss").exit_code == 0
    assert run(config, "suppression", "add", "gone@home.example").exit_code == 0
    assert run(config, "schemes", "add", "Mill Lane watch", "--ward", "RIV").exit_code == 0
    for command, first in ((("sources", "list"), "ID"), (("suppression", "list"), "ADDRESS"),
                           (("schemes", "list"), "SCHEME")):
        result = run(config, *command)
        assert result.exit_code == 0, result.output
        assert result.stdout.split()[0] == first, command


def test_a_ward_code_is_found_whatever_its_case(config: Path, reply_address: str) -> None:
    added = run(config, "subscribers", "add", "dee@home.example", "--ward", "riv", "--confirmed")
    assert added.exit_code == 0, added.output
    assert "subscribed to ward RIV" in added.stdout
    posted = run(config, "post", "--ward", "riv", "--title", "Bikes marked",
                 "--body", "We marked 40 bikes.")
    assert posted.exit_code == 0, posted.output
    assert "to ward RIV" in posted.stdout
    assert run(config, "digest", "preview", "--ward", "Riv").exit_code == 0
    assert run(config, "digest", "send", "--ward", "riv").exit_code == 0
    assert run(config, "wards", "set", "riv", "--language", "cy").exit_code == 0
    assert run(config, "sources", "add", "--ward", "riv", "--kind", "rss",
               "https://police.example/riv.rss").exit_code == 0
    exported = run(config, "subscribers", "export", "--ward", "riv")
    assert exported.exit_code == 0, exported.output
    assert {row["ward"] for row in csv.DictReader(io.StringIO(exported.stdout))} == {"RIV"}
    listed = json.loads(run(config, "sources", "list", "--ward", "rIV", "--json").stdout)
    assert {s["ward"] for s in listed} == {"RIV"} and len(listed) == 2  # the rss and the team's
    taken = run(config, "wards", "add", "riv", "Another", "--team-email", "x@police.example")
    assert taken.exit_code == 1 and "already taken" in taken.stderr


def test_a_hard_bounced_address_is_exported_as_suppressed_not_confirmed(
        config: Path, reply_address: str, settings: Settings) -> None:
    assert run(config, "subscribers", "add", "dee@home.example", "--ward", "RIV",
               "--confirmed").exit_code == 0
    engine = create_engine(settings.database.url)
    with sessionmaker(engine)() as session, session.begin():
        suppress(session, "ann@home.example", SuppressionReason.HARD_BOUNCE, "550 gone")
    engine.dispose()
    exported = run(config, "subscribers", "export")
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(exported.stdout))}
    assert (rows["ann@home.example"]["status"], rows["dee@home.example"]["status"]) == (
        "suppressed", "confirmed")
    assert list(rows["ann@home.example"]) == ["email", "ward", "name", "frequency", "scheme",
                                              "status", "consent_at", "consent_method",
                                              "consent_source", "consent_wording"]


def test_schemes_list_counts_members_as_the_staff_pages_do(
        config: Path, reply_address: str, settings: Settings) -> None:
    """Members are those joined and still subscribed; of them, those mail reaches."""
    assert run(config, "schemes", "add", "Mill Lane watch", "--ward", "RIV").exit_code == 0
    engine = create_engine(settings.database.url)
    with sessionmaker(engine)() as session, session.begin():
        riv = get_ward(session, "RIV")
        for email in ("ann@home.example", "dee@home.example", "eve@home.example"):
            joined = make_subscriber(session, riv, email)
            joined.scheme = "Mill Lane watch"
        suppress(session, "dee@home.example", SuppressionReason.HARD_BOUNCE, "550 gone")
        unsubscribe_everywhere(session, "eve@home.example")
    engine.dispose()
    listed = json.loads(run(config, "schemes", "list", "--json").stdout)
    assert [s["members"] for s in listed] == [2]  # not Eve, who left
    assert [s["receiving"] for s in listed] == [1]  # nor Dee, whose address bounced
    header, rows = header_and_rows(run(config, "schemes", "list").stdout)
    assert header == ["SCHEME", "WARD", "MEMBERS", "RECEIVING", "EMAIL"]
    assert rows[0].split()[-2:] == ["2", "1"]
