"""The print button on a coordinator's scheme page: it downloads the ward's latest digest as an
A4 PDF headed for the scheme, never cached, under the same rule as every scheme page (a
coordinator of another scheme is refused, and so is an id that names no scheme).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.web.app import create_app
from subscriptions.schemes import add_scheme
from tests.factories import make_ward
from tests.usecases.test_printed_digests import assert_a4, pdf_pages, publish_digest
from tests.web.test_coordinators import PASSWORD, signed_in, text_of

BUTTON = "Print the latest digest (PDF)"


@dataclass(frozen=True)
class Schemes:
    mill_lane: int  # Riverside, which has had a digest; kept by Jo
    hill_top: int  # Hillside, which has had none; kept by Sam


@pytest.fixture
def schemes(factory: sessionmaker[Session], settings: Settings) -> Schemes:
    publish_digest(factory, settings, "RIV", "Riverside")
    with transaction(factory) as session:
        make_ward(session, "HIL", "Hillside")
        mill = add_scheme(session, "Mill Lane Watch", "RIV")
        hill = add_scheme(session, "Hill Top Watch", "HIL")
        add_user(session, "jo@watch.example", Role.COORDINATOR, scheme_names=[mill.name],
                 password=PASSWORD)
        add_user(session, "sam@watch.example", Role.COORDINATOR, scheme_names=[hill.name],
                 password=PASSWORD)
        return Schemes(mill.id, hill.id)


def test_a_coordinator_prints_their_wards_latest_digest_from_the_scheme_page(
        factory: sessionmaker[Session], settings: Settings, schemes: Schemes) -> None:
    jo = signed_in(settings, factory, "jo@watch.example")
    page = jo.get(f"/staff/schemes/{schemes.mill_lane}")
    assert page.status_code == 200 and BUTTON in page.text
    assert f'href="/staff/schemes/{schemes.mill_lane}/digest.pdf"' in page.text

    answer = jo.get(f"/staff/schemes/{schemes.mill_lane}/digest.pdf")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["cache-control"] == "no-store"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="mill-lane-watch-digest-')
    assert disposition.endswith('.pdf"')
    assert answer.content.startswith(b"%PDF-")
    pages = pdf_pages(answer.content)
    assert_a4(pages)
    text = " ".join(page.text for page in pages)
    assert "Mill Lane Watch" in text and "Riverside" in text
    assert "call 999" in text and "call 101" in text
    assert "Garden sheds broken into on Mill Lane" in text


def test_a_coordinator_of_another_scheme_or_an_unknown_id_is_refused(
        factory: sessionmaker[Session], settings: Settings, schemes: Schemes) -> None:
    sam = signed_in(settings, factory, "sam@watch.example")

    refused = [sam.get(f"/staff/schemes/{schemes.mill_lane}/digest.pdf"),
               sam.get("/staff/schemes/99999/digest.pdf")]

    assert [answer.status_code for answer in refused] == [403, 403]
    assert all(not answer.content.startswith(b"%PDF") for answer in refused)
    assert all("Garden sheds" not in answer.text for answer in refused)


def test_signing_in_comes_before_the_pdf(
        factory: sessionmaker[Session], settings: Settings, schemes: Schemes) -> None:
    stranger = TestClient(create_app(factory, settings=settings))
    answer = stranger.get(f"/staff/schemes/{schemes.mill_lane}/digest.pdf",
                          follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/staff/sign-in")


def test_a_scheme_whose_ward_has_had_no_digest_is_told_there_is_nothing_to_print_yet(
        factory: sessionmaker[Session], settings: Settings, schemes: Schemes) -> None:
    sam = signed_in(settings, factory, "sam@watch.example")

    answer = sam.get(f"/staff/schemes/{schemes.hill_top}/digest.pdf", follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/staff/schemes/{schemes.hill_top}?done=no-digest"
    shown = text_of(sam.get(answer.headers["location"]))
    assert "There is nothing to print yet: the ward has had no digest." in shown
