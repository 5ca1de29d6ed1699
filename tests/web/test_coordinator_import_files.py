"""A coordinator's CSV upload through HTTP, whatever wrote the file: lines ending in CRLF, LF
or CR alone (old Mac Excel), with or without a UTF-8 BOM, all import; a line the csv module
cannot read (a cell of 1.9 MB: a quote left open) is the form's error naming the line, and
the upload changes nothing.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from subscriptions.subscribers import Subscriber, Subscription
from tests.web.test_coordinators import (  # noqa: F401 (fixtures)
    World,
    csrf_of,
    jo,
    snapshot,
    text_of,
    world,
)


def upload(jo: TestClient, scheme_id: int, data: bytes) -> Response:  # noqa: F811
    form = jo.get(f"/staff/schemes/{scheme_id}/import")
    return jo.post(f"/staff/schemes/{scheme_id}/import",
                   data={"asked": "yes", "written": "yes", "csrf_token": csrf_of(form.text)},
                   files={"file": ("members.csv", data, "text/csv")})


def members(factory: sessionmaker[Session], scheme: str) -> set[str]:
    with factory() as session:
        return set(session.scalars(
            select(Subscriber.email).join(Subscription)
            .where(Subscription.scheme == scheme)))


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"], ids=["CRLF", "LF", "CR"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "BOM"])
def test_an_upload_with_any_line_ends_imports_every_line(
    factory: sessionmaker[Session], jo: TestClient, world: World,  # noqa: F811
    ending: str, bom: bytes,
) -> None:
    data = bom + ending.join(["email,name", "gil@home.example,Gil",
                              'ivy@home.example,"Ivy, of Mill Lane"', ""]).encode()
    imported = upload(jo, world.mill_lane, data)
    assert imported.status_code == 200
    assert "2 addresses read" in text_of(imported)
    assert {"gil@home.example", "ivy@home.example"} <= members(factory, "Mill Lane Watch")


def test_a_line_the_csv_module_cannot_read_is_the_forms_error_naming_it(
    factory: sessionmaker[Session], jo: TestClient, world: World  # noqa: F811
) -> None:
    before = snapshot(factory)
    data = ('email,name\ngil@home.example,Gil\nivy@home.example,"' + "x" * 1_900_000
            + "\nkit@home.example,Kit\n").encode()
    refused = upload(jo, world.mill_lane, data)
    assert refused.status_code == 400
    assert '<a href="#file">The file cannot be read: line 3: a cell is longer than 131,072 ' \
        "characters" in refused.text
    assert snapshot(factory) == before
