"""`alerts subscribers import` of files from outside: any line ends (CRLF, LF, CR alone as old
Mac Excel writes, with or without a UTF-8 BOM); a line the csv module cannot read (a cell of
1.9 MB: a quote left open) is one line naming it, the good rows before it kept; a file of
bad rows names the first 100 and counts them all; and the file is written a batch at a
time, so an import that dies part-way has kept whole rows only (each with its confirmation
email) and the same command again adds the rest, asking nobody twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

import subscriptions.csv_io
from alerts.core.config import load_settings
from alerts.core.db import make_engine, session_factory
from alerts.delivery.outbox import Delivery
from subscriptions.addresses import normalise_address
from subscriptions.subscribers import Subscriber, Subscription
from tests.cli.test_commands import alerts, config, one_line_error, run  # noqa: F401 (fixtures)


def stored(config: Path) -> tuple[dict[str, str], int]:  # noqa: F811
    """Each subscribed address with its frequency, and the confirmation emails queued."""
    engine = make_engine(load_settings(config, environ={}).database.url)
    try:
        with session_factory(engine)() as session:
            found = dict(session.execute(
                select(Subscriber.email, Subscription.frequency)
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)).all())
            assert len(found) == session.scalar(select(func.count()).select_from(Subscription))
            return found, session.scalar(select(func.count()).select_from(Delivery)) or 0
    finally:
        engine.dispose()


def add_riverside(runner: CliRunner, config: Path) -> None:  # noqa: F811
    assert run(runner, config, "wards", "add", "RIV", "Riverside",
               "--team-email", "riv@police.example").exit_code == 0


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"], ids=["CRLF", "LF", "CR"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "BOM"])
def test_a_file_with_any_line_ends_imports_every_row(
    alerts: CliRunner, config: Path, tmp_path: Path, ending: str, bom: bytes  # noqa: F811
) -> None:
    add_riverside(alerts, config)
    file = tmp_path / "members.csv"
    file.write_bytes(bom + ending.join(["email,ward,name", "ann@home.example,RIV,Ann",
                                        'bob@home.example,RIV,"Bob, of Mill Lane"',
                                        "cat@home.example,RIV,Cat", ""]).encode())
    result = run(alerts, config, "subscribers", "import", str(file), "--confirmed")
    assert result.exit_code == 0, result.stderr
    assert "imported 3 subscription(s)" in result.stdout
    assert set(stored(config)[0]) == {"ann@home.example", "bob@home.example",
                                      "cat@home.example"}


def test_a_line_the_csv_module_cannot_read_is_one_line_naming_it_and_the_rows_before_land(
    alerts: CliRunner, config: Path, tmp_path: Path  # noqa: F811
) -> None:
    add_riverside(alerts, config)
    file = tmp_path / "members.csv"
    file.write_text("email,ward,name\nann@home.example,RIV,Ann\nbob@home.example,RIV,Bob\n"
                    'cat@home.example,RIV,"' + "x" * 1_900_000 + "\n"
                    "dan@home.example,RIV,Dan\n")
    result = run(alerts, config, "subscribers", "import", str(file), "--confirmed")
    error = one_line_error(result)
    assert error.startswith(f"Error: {file}: line 4: a cell is longer than 131,072 characters")
    assert "imported 2 subscription(s)" in result.stdout
    assert set(stored(config)[0]) == {"ann@home.example", "bob@home.example"}


def test_a_file_of_bad_rows_names_the_first_hundred_and_counts_them_all(
    alerts: CliRunner, config: Path, tmp_path: Path  # noqa: F811
) -> None:
    add_riverside(alerts, config)
    file = tmp_path / "members.csv"
    file.write_text("email,ward\n" + "".join(f"nobody{n},RIV\n" for n in range(250))
                    + "ann@home.example,RIV\n")
    result = run(alerts, config, "subscribers", "import", str(file), "--confirmed")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 101
    assert lines[0].startswith(f"{file}: line 2: email 'nobody0' is not a valid address")
    assert lines[99].startswith(f"{file}: line 101: ")
    assert lines[100] == f"{file}: 150 more bad row(s) skipped, not listed"
    assert "imported 1 subscription(s)" in result.stdout
    assert "skipped 250 bad row(s)" in result.stdout


def test_an_import_that_dies_part_way_keeps_whole_batches_and_running_it_again_adds_the_rest(
    alerts: CliRunner, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    add_riverside(alerts, config)
    file = tmp_path / "members.csv"
    addresses = [f"resident{n}@home.example" for n in range(2_600)]
    # Line 2,552 repeats line 3's address: the last row wins, whichever batch each is in.
    file.write_text("email,ward,frequency\n" + "".join(
        f"{address},RIV,weekly\n" for address in addresses[:2_550])
        + f"{addresses[1]},RIV,daily\n" + "".join(
        f"{address},RIV,weekly\n" for address in addresses[2_550:]))

    def dies_at_line_2500(text: str) -> str:
        if text == addresses[2_498]:
            raise KeyboardInterrupt  # the process stops here, as a kill would stop it
        return normalise_address(text)

    monkeypatch.setattr(subscriptions.csv_io, "normalise_address", dies_at_line_2500)
    died = run(alerts, config, "subscribers", "import", str(file))
    assert died.exit_code != 0
    landed, asked = stored(config)
    assert landed, "the rows of the batches read before it died have landed"
    assert set(landed) == set(addresses[:len(landed)]), "whole batches, in the file's order"
    assert len(landed) < 2_499
    assert asked == len(landed), "each landed row has its confirmation email, no more"

    monkeypatch.undo()
    again = run(alerts, config, "subscribers", "import", str(file))
    assert again.exit_code == 0, again.stderr
    landed, asked = stored(config)
    assert set(landed) == set(addresses)
    assert landed[addresses[1]] == "daily"
    assert asked == len(addresses), "nobody is asked twice"


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"], ids=["CRLF", "LF", "CR"])
def test_wards_and_postcodes_files_with_any_line_ends_load_every_row(
    alerts: CliRunner, config: Path, tmp_path: Path, ending: str  # noqa: F811
) -> None:
    wards = tmp_path / "wards.csv"
    wards.write_bytes(b"\xef\xbb\xbf" + ending.join([
        "code,name,team_email", "RIV,Riverside,riv@police.example",
        "HIL,Hillcrest,hil@police.example", ""]).encode())
    loaded = run(alerts, config, "wards", "import", str(wards))
    assert loaded.exit_code == 0, loaded.stderr
    assert "added 2 ward(s)" in loaded.stdout
    postcodes = tmp_path / "postcodes.csv"
    postcodes.write_bytes(ending.join(["postcode,ward", "RV1 1AA,RIV", "HL2 1AA,HIL",
                                       ""]).encode())
    placed = run(alerts, config, "wards", "import-postcodes", str(postcodes))
    assert placed.exit_code == 0, placed.stderr
    assert "2" in placed.stdout


@pytest.mark.parametrize("command", [("wards", "import"), ("wards", "import-postcodes")])
def test_a_wards_or_postcodes_line_the_csv_module_cannot_read_is_one_line_naming_it(
    alerts: CliRunner, config: Path, tmp_path: Path, command: tuple[str, ...]  # noqa: F811
) -> None:
    file = tmp_path / "file.csv"
    header = "code,name,team_email" if command[1] == "import" else "postcode,ward"
    file.write_text(f'{header}\n"{"x" * 1_900_000}\n', encoding="utf-8")
    error = one_line_error(run(alerts, config, *command, str(file)))
    assert "line 2" in error and "longer than" in error
