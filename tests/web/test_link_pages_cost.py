"""The pages a link in an email opens cost one connection and a fixed few statements (issue
19): a mail filter opens every link of every message as it is delivered, each with that
resident's own tokens, so nothing is cached between them. Each reads the nonce its token is
checked against in the same statement as what it shows: the unsubscribe page reads the
resident's subscriptions with their wards' names, one statement; the one-click unsubscribe
that, then one UPDATE, in one session; the preferences page the resident's subscriptions,
then the ward list, and nothing per ward or per subscription, however many the resident
follows; a "was this useful?" link the message's nonce, the post's title and the ballot's
answer at once. The ward's archive (the first link of every digest) and its feeds read the
ward's stamp, then (changed within open_feeds.SETTLE, as here) its news and its sessions
(tests/web/test_kept_feeds.py: one statement once settled). Counted with SQLAlchemy's events
on the engine; the checks themselves stay as they are (test_residents)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool

from alerts.core.config import Settings
from alerts.mail.messages import Message, MessageItem
from alerts.mail.vote_links import Ballot, new_ballot_number, sign_vote
from alerts.usecases.posting import post_urgent
from alerts.usecases.votes import UsefulVote
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.subscribers import Status, Subscription
from subscriptions.wards import find_ward
from tests.factories import make_subscriber, make_ward, signed
from tests.usecases.test_open_feeds import publish

WARDS = (("RIV", "Riverside"), ("HIL", "Hillcrest"), ("MIL", "Millbrook"), ("OAK", "Oakfield"))


@dataclass
class Cost:
    connections: int = 0
    statements: int = 0


@contextmanager
def cost_of() -> Iterator[Cost]:
    """Connections taken from a pool and statements run while the block runs, through any
    engine: the pages' reads may run on an engine of their own (alerts.web.page_reads)."""
    cost = Cost()

    def checkout(*_: object) -> None:
        cost.connections += 1

    def statement(*_: object) -> None:
        cost.statements += 1

    event.listen(Pool, "checkout", checkout)
    event.listen(Engine, "before_cursor_execute", statement)
    try:
        yield cost
    finally:
        event.remove(Pool, "checkout", checkout)
        event.remove(Engine, "before_cursor_execute", statement)


@pytest.fixture
def residents(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """One resident of Riverside alone, one of every ward; their Riverside subscriptions."""
    with factory.begin() as session:
        wards = [make_ward(session, code, name) for code, name in WARDS]
        one = make_subscriber(session, wards[0], "one@home.example")
        many = [make_subscriber(session, ward, "many@home.example") for ward in wards]
        return {"one": one.id, "many": many[0].id}


def link(factory: sessionmaker[Session], settings: Settings, purpose: Purpose,
         ident: int) -> str:
    with factory() as session:
        return signed(session, settings.web.secret_key, purpose, ident)


def test_the_preferences_page_is_one_connection_and_two_statements_however_many_wards(
        factory: sessionmaker[Session], settings: Settings, engine: Engine,
        residents: dict[str, int]) -> None:
    client = TestClient(create_app(factory, settings=settings))
    for who in ("one", "many"):
        path = f"/preferences/{link(factory, settings, Purpose.PREFERENCES, residents[who])}"
        client.get(path)  # the first request of a process may read what it keeps
        with cost_of() as cost:
            page = client.get(path)
        assert page.status_code == 200 and "Riverside" in page.text
        # The resident's subscriptions with the token's nonce, the ward list.
        assert (cost.connections, cost.statements) == (1, 2), who
    ticked = page.text.count(" checked")  # the resident of every ward has each one ticked
    assert ticked >= len(WARDS)


def test_the_unsubscribe_page_and_a_one_click_unsubscribe_take_one_connection_each(
        factory: sessionmaker[Session], settings: Settings, engine: Engine,
        residents: dict[str, int]) -> None:
    client = TestClient(create_app(factory, settings=settings))
    path = f"/unsubscribe/{link(factory, settings, Purpose.UNSUBSCRIBE, residents['many'])}"
    client.get(path)
    with cost_of() as cost:
        page = client.get(path)
    assert page.status_code == 200 and "Hillcrest" in page.text
    assert (cost.connections, cost.statements) == (1, 1)  # the wards with the token's nonce
    with cost_of() as cost:
        left = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200 and (cost.connections, cost.statements) == (1, 2)
    with factory() as session:
        assert session.scalar(select(Subscription.status).where(
            Subscription.id == residents["many"])) == Status.UNSUBSCRIBED


def test_a_forged_link_is_refused_in_the_same_one_connection(
        factory: sessionmaker[Session], settings: Settings, engine: Engine,
        residents: dict[str, int]) -> None:
    client = TestClient(create_app(factory, settings=settings))
    token = link(factory, settings, Purpose.UNSUBSCRIBE, residents["one"])
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    for path in (f"/unsubscribe/{forged}", f"/preferences/{forged}"):
        with cost_of() as cost:
            refused = client.get(path)
        assert refused.status_code == 400 and cost.connections == 1, path
    with cost_of() as cost:
        refused = client.post(f"/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"})
    assert refused.status_code == 400 and cost.connections == 1
    with factory() as session:
        assert session.scalar(select(Subscription.status).where(
            Subscription.id == residents["one"])) == Status.CONFIRMED


def vote_links(factory: sessionmaker[Session], settings: Settings,
               answers: list[bool]) -> list[str]:
    """An urgent alert posted to Riverside, and a vote link to it for each of `answers`,
    each a ballot of its own (as each resident's copy carries)."""
    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="River path closed",
                    body="Use the high street.", now=utcnow())
    with factory() as session:
        message, item_id = session.execute(
            select(Message, MessageItem.item_id)
            .join(MessageItem, MessageItem.message_id == Message.id)).one()
        return [sign_vote(settings.web.secret_key,
                          Ballot(item_id, message.id, answer, new_ballot_number()),
                          message.nonce) for answer in answers]


def test_a_vote_link_asks_in_one_connection_and_one_statement_and_records_nothing(
        factory: sessionmaker[Session], settings: Settings, engine: Engine,
        residents: dict[str, int]) -> None:
    [token] = vote_links(factory, settings, answers=[True])
    client = TestClient(create_app(factory, settings=settings))
    client.get(f"/useful/{token}")
    with cost_of() as cost:
        page = client.get(f"/useful/{token}")
    assert page.status_code == 200 and "River path closed" in page.text
    assert (cost.connections, cost.statements) == (1, 1)  # the nonce, title and answer
    assert 'value="yes" checked' in page.text  # the link's answer, chosen, not recorded
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(UsefulVote)) == 0


def test_the_archive_and_the_feed_read_the_ward_and_its_items_in_three_statements(
        factory: sessionmaker[Session], settings: Settings, engine: Engine,
        residents: dict[str, int]) -> None:
    with factory.begin() as session:
        publish(session, find_ward(session, "RIV"), "Bikes marked at the library",
                at=utcnow() - timedelta(days=1))
    client = TestClient(create_app(factory, settings=settings))
    for path, shows in (("/wards/RIV/", "Bikes marked at the library"),
                        ("/wards/RIV/feed.atom", "Bikes marked at the library")):
        client.get(path)
        with cost_of() as cost:
            page = client.get(path)
        assert page.status_code == 200 and shows in page.text
        assert (cost.connections, cost.statements) == (1, 3), path
    # A code in another case still finds the ward (and sends the reader to its address).
    moved = client.get("/wards/riv/", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == "/wards/RIV/"

