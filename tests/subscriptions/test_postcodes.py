"""Postcodes: normal form and UK shape (pure), the `postcode,ward` file with line-numbered
errors, loading it on both stores, finding wards by full postcode or outward code, through
`alerts wards import-postcodes` and on the subscribe page.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app
from subscriptions.postcodes import (
    Postcode,
    PostcodeError,
    any_postcodes,
    import_postcodes,
    normalise_postcode,
    parse_postcodes_csv,
    wards_for_postcode,
)
from tests.cli.test_commands import alerts, config, run  # noqa: F401 (fixtures)
from tests.factories import make_ward


@pytest.mark.parametrize(("raw", "normal"), [
    ("SW1A 1AA", "SW1A 1AA"), ("sw1a1aa", "SW1A 1AA"), ("  Sw1A   1aA ", "SW1A 1AA"),
    ("M1 1AE", "M1 1AE"), ("B33 8TH", "B33 8TH"), ("CR2 6XH", "CR2 6XH"),
    ("DN55 1PT", "DN55 1PT"), ("W1A 0AX", "W1A 0AX"), ("e11aa", "E1 1AA"),
])
def test_postcodes_are_upper_case_with_one_space_before_the_inward_code(
    raw: str, normal: str
) -> None:
    assert normalise_postcode(raw) == normal


@pytest.mark.parametrize("raw", [
    "", "SW1A", "SW1A 1A", "1SW 1AA", "SW1A 1AAA", "SWAA 1AA", "SW1A-1AA", "SW1A 11A",
    "ABC1 1AA", "<b>",
])
def test_anything_not_shaped_like_a_uk_postcode_is_refused(raw: str) -> None:
    with pytest.raises(PostcodeError, match="not a UK postcode"):
        normalise_postcode(raw)


def test_the_file_names_each_bad_line_and_keeps_every_good_one() -> None:
    rows, errors = parse_postcodes_csv(
        "\ufeffPostcode,Ward\r\nsw1a1aa,RIV\r\nnot a postcode,RIV\r\nM1 1AE,\r\n"
        "SW1A 1AA,RIV\r\nSW1A 1AA,HIL\r\n\r\nB33 8TH,HIL\r\n")
    assert [(r.line, r.postcode, r.ward) for r in rows] == [
        (2, "SW1A 1AA", "RIV"), (8, "B33 8TH", "HIL")]
    assert [str(e) for e in errors] == [
        "line 3: 'not a postcode' is not a UK postcode (like SW1A 1AA)",
        "line 4: ward is empty",
        "line 6: SW1A 1AA is already given to ward 'RIV' on line 2",
    ]
    with pytest.raises(PostcodeError, match="lacks the column"):
        parse_postcodes_csv("code,ward\nSW1A 1AA,RIV\n")


def test_loading_stores_postcodes_and_a_reload_moves_them(session: Session) -> None:
    make_ward(session, "RIV", "Riverside")
    make_ward(session, "HIL", "Hillcrest")
    assert not any_postcodes(session)
    rows, _ = parse_postcodes_csv("postcode,ward\nRV1 1AA,RIV\nRV1 2BB,RIV\nHL2 1AA,HIL\n"
                                  "ZZ9 9ZZ,NOPE\n")
    stored, errors = import_postcodes(session, rows)
    assert stored == 3 and [str(e) for e in errors] == ["line 5: no ward with code 'NOPE'"]
    assert any_postcodes(session)
    assert wards_for_postcode(session, "rv1 1aa") == {"RIV"}
    assert wards_for_postcode(session, "RV11AA") == {"RIV"}
    assert wards_for_postcode(session, "RV1") == {"RIV"}
    assert wards_for_postcode(session, "hl2") == {"HIL"}
    for nothing in ("RV1 9ZZ", "XX1", "Riverside", "", "RV1 1"):
        assert wards_for_postcode(session, nothing) == set(), nothing

    rows, _ = parse_postcodes_csv("postcode,ward\nRV1 2BB,HIL\nRV1 1AA,RIV\n")
    assert import_postcodes(session, rows) == (2, [])
    assert wards_for_postcode(session, "RV1") == {"RIV", "HIL"}, "an outward code can span wards"
    assert wards_for_postcode(session, "RV1 2BB") == {"HIL"}
    assert len(session.scalars(select(Postcode)).all()) == 3


def test_import_postcodes_through_the_cli(alerts: CliRunner, config: Path,  # noqa: F811
                                          tmp_path: Path) -> None:
    run(alerts, config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
    file = tmp_path / "postcodes.csv"
    file.write_text("postcode,ward\nRV1 1AA,RIV\nrv12bb,RIV\nRV1-3CC,RIV\nRV1 4DD,NOPE\n")
    result = run(alerts, config, "wards", "import-postcodes", str(file))
    assert result.exit_code == 1
    assert f"loaded 2 postcode(s) from {file}; skipped 2 bad row(s)" in result.stdout
    assert result.stderr.splitlines() == [
        f"{file}: line 4: 'RV1-3CC' is not a UK postcode (like SW1A 1AA); row skipped",
        f"{file}: line 5: no ward with code 'NOPE'; row skipped",
    ]
    good = tmp_path / "good.csv"
    good.write_text("postcode,ward\nRV1 5EE,RIV\n")
    result = run(alerts, config, "wards", "import-postcodes", str(good))
    assert result.exit_code == 0 and "loaded 1 postcode(s)" in result.stdout
    missing = tmp_path / "bad.csv"
    missing.write_text("pc,ward\n")
    result = run(alerts, config, "wards", "import-postcodes", str(missing))
    assert result.exit_code != 0 and "lacks the column postcode" in result.stderr


def test_the_subscribe_page_finds_a_ward_by_postcode_once_they_are_loaded(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
        make_ward(session, "HIL", "Hillcrest")
    client = TestClient(create_app(factory, settings=settings))
    before = client.get("/subscribe", params={"q": "HL2 1AA"}).text
    assert "Hillcrest" not in before and "or your postcode" not in before
    with factory.begin() as session:
        import_postcodes(session, parse_postcodes_csv("postcode,ward\nHL2 1AA,HIL\n")[0])
    for query in ("HL2 1AA", "hl21aa", "HL2"):
        page = client.get("/subscribe", params={"q": query}).text
        assert '<label for="ward-HIL">Hillcrest</label>' in page, query
        assert "Riverside" not in page, query
    assert "or your postcode" in client.get("/subscribe").text
    by_name = client.get("/subscribe", params={"q": "river"}).text
    assert "Riverside" in by_name and "Hillcrest" not in by_name
    unknown = client.get("/subscribe", params={"q": "ZZ9 9ZZ"}).text
    assert "nor do we know it as a postcode" in unknown
