"""Was this useful?, end to end: a digest and an alert delivered to a maildir through the
real pipeline, their vote links opened with the web app (FastAPI's TestClient: opening asks,
the page's button records), and the officer's ward page showing the counts. On both stores."""

from __future__ import annotations

import logging
import mailbox
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import MessageItem
from alerts.mail.vote_links import Ballot, new_ballot_number
from alerts.migrations.schema import Base
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases.digest_rounds import queue_digests
from alerts.usecases.posting import post_urgent
from alerts.usecases.votes import MIN_AUDIENCE, UsefulVote, read_stored_vote, record_vote
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency
from tests.factories import make_subscriber, make_ward
from tests.web.test_officers import sign_in, with_passwords

SECRET = "test-secret-key-for-tests"
POSTS = ("Bikes marked at the library", "Dog fouling on the canal path")


@dataclass(frozen=True)
class Sent:
    text: str
    html: str


def delivered(settings: Settings) -> dict[str, list[Sent]]:
    """Every email in the maildir, by recipient, decoded."""
    found: dict[str, list[Sent]] = {}
    for raw in mailbox.Maildir(Path(settings.mail.maildir), create=False):
        message = message_from_bytes(raw.as_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        plain, html = message.get_body(("plain",)), message.get_body(("html",))
        assert plain is not None and html is not None
        found.setdefault(str(message["To"]), []).append(
            Sent(str(plain.get_content()), str(html.get_content())))
    return found


def vote_link(sent: Sent, title: str, answer: str) -> str:
    """The path of the text part's `answer` ("Yes" or "No") link under the post `title`;
    the HTML part's link for the same answer carries the same token."""
    section = sent.text.split(f"* {title}\n", 1)[1].split("\n* ", 1)[0]
    match = re.search(rf"^{answer}:\s+(https://alerts\.example\.org/useful/\S+)$", section,
                      re.MULTILINE)
    assert match, section
    url = match.group(1)
    label = "Yes, it was useful" if answer == "Yes" else "No, it was not useful"
    assert f'<a href="{url}" style="color: #0b5cad;">{label}</a>' in sent.html
    return urlsplit(url).path


def chosen_answer(page: str) -> str:
    """The answer ("yes" or "no") a vote page has chosen."""
    chosen = re.findall(r'name="useful" value="(yes|no)" checked', page)
    assert len(chosen) == 1, "one answer is chosen"
    return str(chosen[0])


def vote_by_button(client: TestClient, path: str) -> httpx.Response:
    """Open a vote link, as a resident does, and send the answer the page has chosen."""
    page = client.get(path)
    assert page.status_code == 200
    return client.post(path, data={"useful": chosen_answer(page.text)})


def digest_for_residents(factory: sessionmaker[Session], settings: Settings,
                         residents: int) -> tuple[dict[str, int], list[str]]:
    """A ward whose confirmed residents get a digest of the two POSTS, delivered to the
    maildir; returns the posts' ids by title and the residents' addresses."""
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        emails = [make_subscriber(session, ward, f"r{n}@home.example").subscriber.email
                  for n in range(residents)]
    with factory.begin() as session:
        ward = session.merge(ward)
        stored = store_items(session, officer_source(session, ward), [
            CollectedItem(guid=f"post-{n}", kind=ItemKind.POST, title=title,
                          body_html=f"<p>{title}, more to follow.</p>", published_at=utcnow())
            for n, title in enumerate(POSTS)])
    [outcome] = queue_digests(factory, settings, ward_code="RIV")
    assert outcome.queued
    report = deliver_due(factory, settings)
    assert report.sent == residents and report.failed == 0
    return dict(zip(POSTS, stored.new_item_ids, strict=True)), emails


def rows(factory: sessionmaker[Session]) -> list[UsefulVote]:
    with factory() as session:
        return list(session.scalars(select(UsefulVote).order_by(UsefulVote.id)))


def everything_stored(factory: sessionmaker[Session]) -> str:
    """Every value of every table, as text, to search for what must not be there."""
    dump: list[str] = []
    with factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                dump.append(f"{table.name}: " + " ".join(str(value) for value in row))
    return "\n".join(dump)


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    return TestClient(create_app(factory, settings=settings))


def test_a_not_useful_click_records_one_vote_for_that_post_and_nothing_about_the_resident(
        factory: sessionmaker[Session], settings: Settings, client: TestClient,
        caplog: pytest.LogCaptureFixture) -> None:
    ids, emails = digest_for_residents(factory, settings, residents=MIN_AUDIENCE)
    mail = delivered(settings)
    first = mail[emails[0]][0]
    path = vote_link(first, POSTS[0], "No")
    token = path.rsplit("/", 1)[1]
    with factory() as session:
        ballot = read_stored_vote(session, SECRET, token)
    assert ballot is not None

    with caplog.at_level(logging.DEBUG):
        asked = client.get(path)
        page = client.post(path, data={"useful": chosen_answer(asked.text)})
    assert page.status_code == 200
    assert "Done: your answer is recorded." in page.text
    assert f"“{POSTS[0]}” was not useful" in page.text
    for response in (asked, page):
        assert "script" not in response.headers["content-security-policy"]
        assert "set-cookie" not in response.headers
    # What the server side logged (the test's own HTTP client logs the URL it asks for).
    logged = " ".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert token not in logged and ballot.number not in logged

    [vote] = rows(factory)
    assert (vote.item_id, vote.useful) == (ids[POSTS[0]], False)
    with factory() as session:
        digest = session.scalar(select(MessageItem.message_id)
                                .where(MessageItem.item_id == ids[POSTS[0]]))
    assert vote.message_id == digest is not None
    # The row names the post, the message, the answer and the hour; nothing about who.
    stored = everything_stored(factory)
    assert token not in stored and ballot.number not in stored
    assert vote.ballot not in token and stored.count(vote.ballot) == 1
    assert not any(email in f"{vote.ballot} {vote.voted_at}" for email in emails)

    again = vote_by_button(client, path)
    assert again.status_code == 200 and "already recorded" in again.text
    in_welsh = client.post(path, data={"useful": "no"}, headers={"Accept-Language": "cy"})
    assert "Diolch am ddweud wrthym" in in_welsh.text
    assert len(rows(factory)) == 1

    changed = client.post(path, data={"useful": "yes"})
    assert changed.status_code == 200 and f"“{POSTS[0]}” was useful" in changed.text
    assert "Done: your answer is changed." in changed.text
    [vote] = rows(factory)
    assert vote.useful is True and vote.item_id == ids[POSTS[0]]
    reopened = client.get(path).text
    assert "You have answered already" in reopened and chosen_answer(reopened) == "no"
    assert [v.useful for v in rows(factory)] == [True]

    assert not [v for v in rows(factory) if v.item_id == ids[POSTS[1]]]

    second_resident = vote_link(mail[emails[1]][0], POSTS[0], "No")
    assert second_resident != path
    assert vote_by_button(client, second_resident).status_code == 200
    assert sorted(v.useful for v in rows(factory)) == [False, True]
    assert {v.item_id for v in rows(factory)} == {ids[POSTS[0]]}


def test_opening_a_vote_link_records_nothing_and_asks_with_the_links_answer_chosen(
        factory: sessionmaker[Session], settings: Settings, client: TestClient) -> None:
    ids, emails = digest_for_residents(factory, settings, residents=1)
    sent = delivered(settings)[emails[0]][0]
    for title in POSTS:
        for answer in ("Yes", "No"):
            path = vote_link(sent, title, answer)
            for _ in range(2):  # a mail filter that opens every link, twice
                page = client.get(path)
                assert page.status_code == 200
                assert rows(factory) == [], "opening a vote link records nothing"
            assert f"Was “{title}” useful to you?" in page.text
            assert chosen_answer(page.text) == answer.lower()
            assert f'<form method="post" action="{path}">' in page.text
            assert page.text.count("<button") == 1 and "set-cookie" not in page.headers
    path = vote_link(sent, POSTS[1], "Yes")
    assert client.post(path, data={"useful": "yes"}).status_code == 200
    assert [(v.item_id, v.useful) for v in rows(factory)] == [(ids[POSTS[1]], True)]


def test_a_forged_or_altered_vote_link_records_nothing(
        factory: sessionmaker[Session], settings: Settings, client: TestClient) -> None:
    ids, emails = digest_for_residents(factory, settings, residents=1)
    path = vote_link(delivered(settings)[emails[0]][0], POSTS[1], "Yes")
    item, message, answer, number, tag = path.rsplit("/", 1)[1].split(".")
    other_post = str(ids[POSTS[0]])
    for forged in (f"{other_post}.{message}.{answer}.{number}.{tag}",
                   f"{item}.{message}.n.{number}.{tag}",
                   f"{item}.{message}.{answer}.{number}.{tag[::-1]}",
                   f"{item}.{message}.{answer}.{new_ballot_number()}.{tag}",
                   "12-abcdefghijklmnopqrst"):
        for response in (client.get(f"/useful/{forged}"),
                         client.post(f"/useful/{forged}", data={"useful": "yes"})):
            assert response.status_code == 400
            assert "This link does not work" in response.text
    assert client.post(path, data={"useful": "maybe"}).status_code == 400
    assert rows(factory) == []


def test_the_post_and_alert_emails_carry_vote_links_for_their_item(
        factory: sessionmaker[Session], settings: Settings, client: TestClient) -> None:
    from alerts.usecases.digest_rounds import queue_immediate

    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        resident = make_subscriber(session, ward, "ann@home.example",
                                   frequency=Frequency.IMMEDIATE).subscriber.email
    with factory.begin() as session:
        ward = session.merge(ward)
        [post] = store_items(session, officer_source(session, ward), [CollectedItem(
            guid="now", kind=ItemKind.POST, title="Street surgery moved",
            body_html="<p>Now on Tuesday.</p>")]).new_item_ids
        queue_immediate(session, ward, settings, utcnow())
        alert = post_urgent(session, settings, ward_code="RIV", title="Mill Lane closed",
                            body="Avoid Mill Lane tonight.", now=utcnow())
    assert deliver_due(factory, settings).sent == 2
    sent = delivered(settings)[resident]
    assert len(sent) == 2
    for email in sent:
        assert "__ALERTS_" not in email.text and "__ALERTS_" not in email.html
        [yes, no] = re.findall(r"^(?:Yes|No):\s+(\S+)$", email.text, re.MULTILINE)
        assert vote_by_button(client, urlsplit(no if "Street" in email.text else yes).path
                              ).status_code == 200
    with factory() as session:
        alert_item = session.scalar(select(MessageItem.item_id)
                                    .where(MessageItem.message_id == alert.message_id))
        kinds = {v.item_id: v.useful for v in session.scalars(select(UsefulVote))}
    # The alert's link named no item (it is rendered before its item is stored): its
    # message did, and the vote is for the one item that message carried.
    assert kinds == {post: False, alert_item: True}


def test_the_officers_ward_page_shows_each_posts_votes(
        factory: sessionmaker[Session], settings: Settings, client: TestClient) -> None:
    with_passwords(factory)
    with factory.begin() as session:
        from subscriptions.wards import get_ward

        ward = get_ward(session, "RIV")
        liked, disliked = store_items(session, officer_source(session, ward), [
            CollectedItem(guid=f"v{n}", kind=ItemKind.POST, title=title, body_html="<p>x</p>")
            for n, title in enumerate(("Bikes marked", "Parking on Mill Lane"))]).new_item_ids
        message = session.scalar(select(MessageItem.message_id)) or 0
        for item, useful in ((liked, True), (liked, True), (liked, True), (liked, False),
                             (disliked, False)):
            record_vote(session, Ballot(item, message, useful, new_ballot_number()),
                        now=utcnow())
    assert sign_in(client).url.path == "/staff/"
    page = client.get("/staff/wards/RIV/")
    assert page.status_code == 200
    rows_ = {m.group(1): m.group(2) for m in re.finditer(
        r"<tr><td>([^<]+)</td>.*?<td>(useful \d+ &middot; not useful \d+|not asked)</td></tr>",
        page.text)}
    assert rows_["Bikes marked"] == "useful 3 &middot; not useful 1"
    assert rows_["Parking on Mill Lane"] == "useful 0 &middot; not useful 1"
