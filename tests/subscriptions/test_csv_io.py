import csv
import io

import pytest
from sqlalchemy.orm import Session

from subscriptions.base import utcnow
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.csv_io import (
    FORMULA_STARTS,
    CsvError,
    decode,
    import_rows,
    read_subscribers,
    spreadsheet_text,
    write_records,
)
from subscriptions.subscribers import Frequency, SubscriptionRecord, iter_subscriptions
from tests.factories import make_ward


def test_good_rows_are_kept_and_each_bad_row_is_named_by_line() -> None:
    text = (
        "email,ward,name,frequency\n"
        "ann@home.example,RIV,Ann,daily\n"
        "not-an-address,RIV,,\n"
        "bob@home.example,,Bob,\n"
        "cat@home.example,RIV,Cat,hourly\n"
        "dan@home.example,HIL,,\n"
    )
    rows, errors = read_subscribers(text)
    assert [(r.email, r.ward, r.frequency) for r in rows] == [
        ("ann@home.example", "RIV", Frequency.DAILY),
        ("dan@home.example", "HIL", Frequency.WEEKLY),
    ]
    assert [e.line for e in errors] == [3, 4, 5]
    assert "email" in errors[0].reason
    assert "ward is empty" in errors[1].reason
    assert "hourly" in errors[2].reason


def test_duplicates_are_merged_and_addresses_compared_without_case() -> None:
    rows, errors = read_subscribers(
        "email,ward\nAnn@Home.Example,RIV\nann@home.example,RIV\nann@home.example,HIL\n"
    )
    assert errors == []
    assert sorted((r.email, r.ward) for r in rows) == [
        ("ann@home.example", "HIL"), ("ann@home.example", "RIV")]


def test_excel_files_with_a_byte_order_mark_and_semicolons_are_read() -> None:
    text = decode("\ufeffEmail;Ward;Name\r\nann@home.example;RIV;Ann Smith\r\n".encode())
    rows, errors = read_subscribers(text)
    assert errors == []
    assert rows[0].name == "Ann Smith"


def test_a_file_without_the_required_columns_is_refused() -> None:
    with pytest.raises(CsvError, match="ward"):
        read_subscribers("email,name\nann@home.example,Ann\n")
    with pytest.raises(CsvError, match="UTF-8"):
        decode(b"email,ward\n\x81\x8d@x,RIV\n\xe9")


def test_a_name_or_scheme_too_long_to_store_is_a_bad_row_and_the_rest_land(
    session: Session,
) -> None:
    make_ward(session, "RIV")
    rows, errors = read_subscribers(
        "email,ward,name,scheme\n"
        f"ann@home.example,RIV,{'A' * 201},\n"
        f"bob@home.example,RIV,Bob,{'S' * 201}\n"
        f"cat@home.example,RIV,{'C' * 200},{'S' * 200}\n"
    )
    assert [(e.line, e.reason) for e in errors] == [
        (2, "name is longer than 200 characters"), (3, "scheme is longer than 200 characters")]
    consent = Consent(at=utcnow(), method=ConsentMethod.CSV_IMPORT, source="x" * 400 + ".csv")
    assert import_rows(session, rows, consent, confirmed=True) == (1, [])
    [record] = iter_subscriptions(session)
    assert (len(record.name), len(record.scheme)) == (200, 200)
    assert len(record.consent_source) == 300 and record.consent_source.endswith("x.csv")


def test_importing_adds_new_people_and_renews_known_ones_by_the_same_rules(
    session: Session,
) -> None:
    from subscriptions.base import utcnow
    from subscriptions.consent import Consent, ConsentMethod
    from subscriptions.csv_io import import_rows
    from subscriptions.subscribers import (
        Status,
        iter_subscriptions,
        subscribe,
        unsubscribe_everywhere,
    )
    from tests.factories import make_ward

    riv = make_ward(session, "RIV")
    make_ward(session, "HIL")
    earlier = Consent(at=utcnow(), method=ConsentMethod.WEB_FORM, source="/subscribe")
    subscribe(session, "left@home.example", riv.code, earlier, confirmed=True)
    unsubscribe_everywhere(session, "left@home.example")
    subscribe(session, "known@home.example", riv.code, earlier, confirmed=True)
    rows, errors = read_subscribers(
        "email,ward,name,frequency\n"
        "new@home.example,RIV,New Person,daily\n"
        "known@home.example,HIL,,\n"
        "left@home.example,RIV,,weekly\n"
        "nowhere@home.example,XXX,,\n"
    )
    assert errors == []
    consent = Consent(at=utcnow(), method=ConsentMethod.CSV_IMPORT, source="watch.csv")
    imported, problems = import_rows(session, rows, consent, confirmed=False)
    assert imported == 3
    assert [str(p) for p in problems] == ["line 5: no ward with code 'XXX'"]
    found = {(r.email, r.ward): r for r in iter_subscriptions(session)}
    assert found[("new@home.example", "RIV")].status == Status.PENDING
    assert found[("new@home.example", "RIV")].name == "New Person"
    assert found[("new@home.example", "RIV")].frequency == "daily"
    assert found[("new@home.example", "RIV")].consent_method == "import"
    assert found[("known@home.example", "HIL")].status == Status.PENDING
    assert found[("known@home.example", "RIV")].status == Status.CONFIRMED, "untouched"
    assert found[("left@home.example", "RIV")].status == Status.PENDING, "asked again"
    assert found[("left@home.example", "RIV")].consent_source == "watch.csv"


def test_the_files_excel_writes_are_all_read() -> None:
    plain_csv = "email,ward,name\r\nzoe@home.example,RIV,Zoë Brontë\r\n"
    for data in (
        plain_csv.encode("cp1252"),  # "CSV (Comma delimited)" on a UK machine
        b"\xef\xbb\xbf" + plain_csv.encode("utf-8"),  # "CSV UTF-8"
        plain_csv.replace(",", "\t").encode("utf-16"),  # "Unicode Text"
    ):
        rows, errors = read_subscribers(decode(data))
        assert errors == []
        assert [(r.email, r.ward, r.name) for r in rows] == [
            ("zoe@home.example", "RIV", "Zoë Brontë")]


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"Click\")", "+44 20 7946 0000", "-2+3",
            "@SUM(A1:A2)", "\tTabbed", "\rReturned"]


def test_no_cell_of_an_export_starts_a_spreadsheet_formula_and_the_export_imports_as_it_was(
) -> None:
    records = [SubscriptionRecord(
        email=f"r{n}@home.example", ward="RIV", name=name, frequency="weekly",
        scheme=name if n == 0 else "", status="confirmed", consent_at=utcnow(),
        consent_method="cli", consent_source="=cmd|' /C calc'!A0", consent_wording="2026-11")
        for n, name in enumerate(FORMULAS)]
    out = io.StringIO()
    assert write_records(records, out) == len(FORMULAS)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert [row[2] for row in rows[1:]] == ["'" + name for name in FORMULAS]
    assert rows[1][4] == "'" + FORMULAS[0] and rows[1][8] == "'=cmd|' /C calc'!A0"
    back, errors = read_subscribers(out.getvalue())
    assert errors == []
    assert [row.name for row in back] == [name.strip() for name in FORMULAS]
    assert back[0].scheme == FORMULAS[0]


def test_a_cell_that_starts_no_formula_is_written_as_it_is() -> None:
    for value in ("Ann Archer", "O'Brien", "'quoted'", "a=b", "ann@home.example", ""):
        assert spreadsheet_text(value) == value
