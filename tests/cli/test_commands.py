"""The command-line contract: exit status, one-line errors, --json, and the data behind them."""

from __future__ import annotations

import csv
import io
import json
import socket
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from alerts.cli import cli
from alerts.core.config import Settings
from subscriptions.base import utcnow
from tests.servers import FeedServer


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> Path:
    """A config file on this test's database (SQLite or PostgreSQL), not yet initialised."""
    path = tmp_path / "alerts.toml"
    path.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\nmaildir = "{tmp_path / "outbox"}"\n'
        '[web]\nsecret_key = "cli-tests-secret"\nbase_url = "https://alerts.example.org"\n'
    )
    return path


@pytest.fixture
def alerts(config: Path) -> CliRunner:
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "init"]).exit_code == 0
    return runner


def run(runner: CliRunner, config: Path, *args: str) -> Result:
    return runner.invoke(cli, ["--config", str(config), *args])


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.empty_database
def test_init_creates_then_reports_up_to_date(config: Path) -> None:
    runner = CliRunner()
    first = run(runner, config, "init")
    assert first.exit_code == 0 and "created database" in first.stdout
    again = run(runner, config, "init")
    assert again.exit_code == 0 and "up to date" in again.stdout


@pytest.mark.empty_database
def test_commands_on_a_database_not_yet_initialised_say_what_to_do(config: Path) -> None:
    assert "run `alerts init` first" in one_line_error(run(CliRunner(), config, "wards", "list"))


def test_a_ward_code_already_taken_is_a_one_line_error(alerts: CliRunner, config: Path) -> None:
    assert run(alerts, config, "wards", "add", "RIV", "Riverside",
               "--team-email", "riv@police.example").exit_code == 0
    again = run(alerts, config, "wards", "add", "RIV", "Other", "--team-email", "o@police.example")
    assert "ward code 'RIV' is already taken" in one_line_error(again)
    listed = json.loads(run(alerts, config, "wards", "list", "--json").stdout)
    assert [(w["code"], w["name"]) for w in listed] == [("RIV", "Riverside")]


def test_a_csv_with_bad_rows_keeps_every_good_row(alerts: CliRunner, config: Path,
                                                  tmp_path: Path) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    members = tmp_path / "members.csv"
    members.write_text(
        "email,ward,name,frequency,scheme\n"
        "ann@home.example,RIV,Ann,daily,Mill Lane Watch\n"
        "ann at home,RIV,Bad,weekly,\n"
        "bob@home.example,NOPE,Bob,weekly,\n"
        "cat@home.example,RIV,Cat,,\n"
    )
    result = run(alerts, config, "subscribers", "import", str(members), "--confirmed")
    assert result.exit_code == 1
    assert "imported 2 subscription(s)" in result.stdout
    errors = result.stderr.strip().splitlines()
    assert errors[0].startswith(f"{members}: line 3: email")
    assert errors[1] == f"{members}: line 4: no ward with code 'NOPE'; row skipped"
    export = run(alerts, config, "subscribers", "export").stdout
    exported = list(csv.DictReader(io.StringIO(export)))
    assert [(r["email"], r["frequency"], r["scheme"], r["status"], r["consent_method"])
            for r in exported] == [
        ("ann@home.example", "daily", "Mill Lane Watch", "confirmed", "import"),
        ("cat@home.example", "weekly", "", "confirmed", "import"),
    ]
    assert all(r["consent_at"] for r in exported)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_collect_names_each_broken_source_and_still_collects_the_rest(
    alerts: CliRunner, config: Path, feeds: FeedServer
) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    good = feeds.put("/good.rss", '<?xml version="1.0"?><rss version="2.0"><channel><title>T'
                     f'</title><item><guid>g1</guid><title>Good news</title><pubDate>'
                     f'{format_datetime(utcnow() - timedelta(hours=1))}</pubDate></item>'
                     '</channel></rss>')
    broken = {
        "unreachable": f"http://127.0.0.1:{closed_port()}/feed.rss",
        "server error": feeds.put("/500.rss", "oops", status=500),
        "not a feed": feeds.put("/page.rss", "<html><body>Welcome</body></html>",
                                content_type="text/html"),
        "bad calendar": feeds.put("/bad.ics", "BEGIN:VCALENDAR\nthis is not ical\n",
                                  content_type="text/calendar"),
    }
    for name, url in broken.items():
        kind = "ics" if name == "bad calendar" else "rss"
        assert run(alerts, config, "sources", "add", "--ward", "RIV", "--kind", kind,
                   url).exit_code == 0
    assert run(alerts, config, "sources", "add", "--ward", "RIV", "--kind", "rss",
               good).exit_code == 0

    result = run(alerts, config, "collect")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4
    for url in broken.values():
        assert sum(url in line for line in errors) == 1
    assert "1 new" in result.stdout and good in result.stdout
    sources = json.loads(run(alerts, config, "sources", "list", "--json").stdout)
    assert sum(1 for s in sources if s["last_error"]) == 4
    preview = run(alerts, config, "digest", "preview", "--ward", "RIV")
    assert "Good news" in preview.stdout


def test_preview_writes_what_a_resident_would_see_and_changes_nothing(
    alerts: CliRunner, config: Path, tmp_path: Path
) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    posted = run(alerts, config, "post", "--ward", "RIV", "--title", "Coffee with your team",
                 "--kind", "session", "--body", "Come and say hello.",
                 "--starts", (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT10:00"),
                 "--ends", (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT11:30"),
                 "--location", "Mill Lane café")
    assert posted.exit_code == 0, posted.stderr
    out = tmp_path / "preview.html"
    assert run(alerts, config, "digest", "preview", "--ward", "RIV", "--out",
               str(out)).exit_code == 0
    html = out.read_text()
    assert "Coffee with your team" in html and "Mill Lane café" in html
    assert "999" in html and 'style="' in html, "CSS is inlined for mail clients"
    assert run(alerts, config, "digest", "preview", "--ward", "RIV", "--out",
               str(out)).exit_code == 0


def test_sending_refuses_the_default_secret_key(tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "a.db"}"\n')
    runner = CliRunner()
    run(runner, config, "init")
    assert "web.secret_key" in one_line_error(run(runner, config, "deliver"))


def test_subscribers_and_digests_end_to_end_through_the_cli(
    alerts: CliRunner, config: Path, tmp_path: Path
) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    assert run(alerts, config, "subscribers", "add", "ann@home.example", "--ward", "RIV",
               "--confirmed").exit_code == 0
    assert run(alerts, config, "subscribers", "add", "bob@home.example", "--ward", "RIV",
               "--confirmed").exit_code == 0
    assert run(alerts, config, "subscribers", "remove", "bob@home.example").exit_code == 0
    run(alerts, config, "post", "--ward", "RIV", "--title", "Patrols this week", "--body", "Hi")
    sent = json.loads(run(alerts, config, "digest", "send", "--all", "--json").stdout)
    assert [(s["ward_code"], s["deliveries"]) for s in sent] == [("RIV", 1)]
    report = json.loads(run(alerts, config, "deliver", "--json").stdout)
    assert report["sent"] == 1
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1
    nothing = json.loads(run(alerts, config, "digest", "send", "--ward", "RIV", "--json").stdout)
    assert nothing[0]["queued"] is False


def test_importing_wards_lands_good_rows_and_names_taken_codes(
    alerts: CliRunner, config: Path, tmp_path: Path
) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    file = tmp_path / "wards.csv"
    file.write_text("code,name,team_email\nHIL,Hillcrest,hil@police.example\n"
                    "RIV,Riverside again,riv@police.example\nMKT,Market,not-an-address\n")
    result = run(alerts, config, "wards", "import", str(file))
    assert result.exit_code == 1
    assert "added 1 ward(s)" in result.stdout
    assert f"{file}: line 3: ward code 'RIV' is already taken; row skipped" in result.stderr
    assert f"{file}: line 4: ward MKT: team email" in result.stderr
    codes = [w["code"] for w in json.loads(run(alerts, config, "wards", "list", "--json").stdout)]
    assert codes == ["HIL", "RIV"]


def test_sources_are_added_listed_and_removed(alerts: CliRunner, config: Path) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    added = run(alerts, config, "sources", "add", "--ward", "RIV", "--kind", "atom",
                "https://police.example/riv.atom")
    assert added.exit_code == 0
    twice = run(alerts, config, "sources", "add", "--ward", "RIV", "--kind", "atom",
                "https://police.example/riv.atom")
    assert "already has source" in one_line_error(twice)
    assert "http(s) URL" in one_line_error(run(alerts, config, "sources", "add", "--ward", "RIV",
                                               "--kind", "rss", "ftp://police.example/x"))
    assert "longer than 2000 characters" in one_line_error(
        run(alerts, config, "sources", "add", "--ward", "RIV", "--kind", "rss",
            "https://police.example/" + "x" * 2000))
    assert "no ward with code 'NOPE'" in one_line_error(
        run(alerts, config, "sources", "add", "--ward", "NOPE", "--kind", "rss",
            "https://police.example/x.rss"))
    [source] = json.loads(run(alerts, config, "sources", "list", "--json").stdout)
    assert (source["ward"], source["kind"]) == ("RIV", "atom")
    assert run(alerts, config, "sources", "remove", str(source["id"])).exit_code == 0
    assert json.loads(run(alerts, config, "sources", "list", "--json").stdout) == []
    assert "no source with id" in one_line_error(
        run(alerts, config, "sources", "remove", str(source["id"])))


def test_a_digest_cron_is_checked_before_it_is_stored(alerts: CliRunner, config: Path) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    every_minute = ",".join(str(minute) for minute in range(60)) + " 16 * * fri"
    assert "longer than 100 characters" in one_line_error(
        run(alerts, config, "wards", "set", "RIV", "--digest-cron", every_minute))
    assert "not a crontab line" in one_line_error(
        run(alerts, config, "wards", "set", "RIV", "--digest-cron", "every friday"))
    assert run(alerts, config, "wards", "set", "RIV", "--digest-cron", "0 9 * * mon").exit_code == 0
    [ward] = json.loads(run(alerts, config, "wards", "list", "--json").stdout)
    assert ward["digest_cron"] == "0 9 * * mon"


def test_posting_checks_its_input(alerts: CliRunner, config: Path) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    assert "exactly one of --body or --body-file" in one_line_error(
        run(alerts, config, "post", "--ward", "RIV", "--title", "Hello"))
    assert "ISO 8601" in one_line_error(
        run(alerts, config, "post", "--ward", "RIV", "--title", "Cafe", "--body", "x",
            "--kind", "session", "--starts", "next tuesday"))
    assert "no ward with code" in one_line_error(
        run(alerts, config, "post", "--ward", "XYZ", "--title", "Hi", "--body", "x"))


def test_an_import_does_not_re_add_a_suppressed_address(alerts: CliRunner, config: Path,
                                                        tmp_path: Path) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    assert run(alerts, config, "suppression", "add", "gone@home.example").exit_code == 0
    file = tmp_path / "members.csv"
    file.write_text("email,ward\nann@home.example,RIV\nGONE@home.example,RIV\n")
    result = run(alerts, config, "subscribers", "import", str(file), "--confirmed")
    assert result.exit_code == 1
    assert "imported 1 subscription(s)" in result.stdout
    assert f"{file}: line 3: the address is on the suppression list (manual)" in result.stderr
