"""A product error that a page does not answer itself becomes its own status, once, in
`create_app`: JSON where the client reads JSON, a staff page on the staff site, plain text
elsewhere; a 5xx says only that the service cannot answer (FastAPI's TestClient, both stores)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app
from subscriptions.languages import LanguageError
from subscriptions.postcodes import PostcodeError
from tests.web.test_officers import OFFICER, sign_in, with_passwords

UNAVAILABLE = "the service cannot answer just now; try again later"


def failing_with(error: Exception) -> object:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise error
    return broken


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    with_passwords(factory)
    return TestClient(create_app(factory, settings=settings), raise_server_exceptions=False)


def test_an_error_in_a_json_address_is_json_with_its_status(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alerts.web.open_feeds.ward_stamp",
                        failing_with(LanguageError("language 'xx' is not one of en, cy")))
    response = client.get("/wards/RIV/items.json")
    assert response.status_code == 400
    assert response.json() == {"error": "language 'xx' is not one of en, cy"}


def test_an_error_of_the_store_is_503_and_names_nothing(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.core.db import DatabaseError

    monkeypatch.setattr("alerts.web.open_feeds.list_public_wards",
                        failing_with(DatabaseError("the database at /srv/alerts.db is locked")))
    response = client.get("/wards/")
    assert response.status_code == 503
    assert response.text == UNAVAILABLE


def test_an_error_on_a_staff_page_is_a_staff_page_with_its_status(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sign_in(client, OFFICER).status_code in (200, 303)
    monkeypatch.setattr("alerts.usecases.officers.wards_at_a_glance",
                        failing_with(PostcodeError("'NOWHERE' is not a UK postcode")))
    response = client.get("/staff/")
    assert response.status_code == 400
    assert "That could not be done" in response.text
    assert "&#39;NOWHERE&#39; is not a UK postcode. Nothing was changed." in response.text
    assert "(officer)" in response.text  # the page still says who is signed in
