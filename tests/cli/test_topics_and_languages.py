"""`alerts post --topic`, `alerts subscribers add --topic --language` and `alerts wards set
--language`: the command line sets what the web pages set."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.sources.items import Item
from subscriptions.subscribers import Subscriber, Subscription
from tests.cli.test_commands import alerts, config, one_line_error, run  # noqa: F401 (fixtures)


def stored(settings: Settings) -> Session:
    return Session(create_engine(settings.database.url))


def test_an_officer_tags_a_post_with_topics_from_the_config(
    alerts: CliRunner, config: Path, settings: Settings  # noqa: F811
) -> None:
    assert run(alerts, config, "wards", "add", "RIV", "Riverside",
               "--team-email", "riv@police.example").exit_code == 0
    done = run(alerts, config, "post", "--ward", "RIV", "--title", "Courier fraud",
               "--body", "Banks never send a courier.", "--topic", "Scams", "--topic", "rural")
    assert done.exit_code == 0, done.stderr
    refused = run(alerts, config, "post", "--ward", "RIV", "--title", "Knitting club",
                  "--body", "x", "--topic", "knitting")
    assert "not one of" in one_line_error(refused) and "scams" in refused.stderr
    urgent = run(alerts, config, "post", "--ward", "RIV", "--urgent", "--title", "Road shut",
                 "--body", "x", "--topic", "scams")
    assert "goes to everyone" in one_line_error(urgent)
    with stored(settings) as session:
        assert list(session.execute(select(Item.title, Item.topics))) == [
            ("Courier fraud", "rural,scams")]


def test_a_resident_added_with_topics_and_welsh_and_a_welsh_ward(
    alerts: CliRunner, config: Path, settings: Settings  # noqa: F811
) -> None:
    assert run(alerts, config, "wards", "add", "LLA", "Llanfair",
               "--team-email", "lla@police.example").exit_code == 0
    added = run(alerts, config, "subscribers", "add", "ann@home.example", "--ward", "LLA",
                "--confirmed", "--topic", "scams", "--language", "bilingual")
    assert added.exit_code == 0, added.stderr
    bad = run(alerts, config, "subscribers", "add", "bob@home.example", "--ward", "LLA",
              "--topic", "knitting")
    assert "--topic" in one_line_error(bad)
    assert run(alerts, config, "wards", "set", "LLA", "--language", "cy").exit_code == 0
    listed = json.loads(run(alerts, config, "wards", "list", "--json").stdout)
    assert listed[0]["language"] == "cy"
    with stored(settings) as session:
        assert list(session.execute(
            select(Subscriber.email, Subscriber.language, Subscription.topics).join(
                Subscription))) == [("ann@home.example", "bilingual", "scams")]
