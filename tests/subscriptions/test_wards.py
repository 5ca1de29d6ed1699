import pytest
from sqlalchemy.orm import Session

from subscriptions.csv_io import parse_wards_csv
from subscriptions.wards import WardError, add_ward, import_wards, list_wards


def test_a_ward_code_that_is_already_taken_is_refused(session: Session) -> None:
    add_ward(session, "RIV", "Riverside", "riv@police.example")
    with pytest.raises(WardError, match="'RIV' is already taken"):
        add_ward(session, "RIV", "Riverside again", "riv@police.example")


@pytest.mark.parametrize(("code", "name", "email", "reason"), [
    ("has space", "X", "x@police.example", "ward code"),
    ("RIV", "   ", "x@police.example", "name is empty"),
    ("RIV", "Riverside", "not-an-address", "team email"),
    ("RIV", "R" * 201, "x@police.example", "longer than 200 characters"),
])
def test_bad_ward_fields_are_named(session: Session, code: str, name: str, email: str,
                                   reason: str) -> None:
    with pytest.raises(WardError, match=reason):
        add_ward(session, code, name, email)


def test_a_name_as_long_as_the_column_allows_is_kept(session: Session) -> None:
    add_ward(session, "RIV", "R" * 200, "riv@police.example")
    assert [len(w.name) for w in list_wards(session)] == [200]


def test_importing_wards_keeps_good_rows_and_names_bad_ones(session: Session) -> None:
    add_ward(session, "OLD", "Old Town", "old@police.example")
    rows, errors = parse_wards_csv(
        "code,name,team_email\nRIV,Riverside,riv@police.example\n"
        "bad code,Nowhere,x@police.example\nOLD,Old Town,old@police.example\n"
        "HIL,Hillcrest,hil@police.example\n"
    )
    added, taken = import_wards(session, rows)
    assert added == 2
    assert errors == ["line 3: ward code 'bad code' must be 1-32 letters, digits, '-' or '_', "
                      "starting with a letter or digit"]
    assert taken == ["line 4: ward code 'OLD' is already taken"]
    assert [w.code for w in list_wards(session)] == ["HIL", "OLD", "RIV"]
