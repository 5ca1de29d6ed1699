"""Was this useful?: vote tokens, one email's vote links, the marks filled at delivery (none
left behind), recording a vote once whatever happens, and counting votes per post."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.mail.marks import PREFERENCES_MARK, THIS_MESSAGES_ITEM, UNSUBSCRIBE_MARK, fill_links
from alerts.mail.messages import Message, MessageItem
from alerts.mail.mime import Outgoing, build_email, build_email_slowly
from alerts.mail.vote_links import Ballot, VoteLinks, new_ballot_number, read_vote, sign_vote
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases.votes import (
    MIN_AUDIENCE,
    Tally,
    UsefulVote,
    ballot_hash,
    count_votes,
    question_for_link,
    record_vote,
    vote_question,
)
from subscriptions.links import Purpose, sign_reference
from tests.factories import make_sent_message, make_subscriber, make_ward

SECRET = "test-secret-key-for-tests"
NOW = datetime(2026, 11, 20, 16, 20, 31, tzinfo=UTC)
VOTE_URL = re.compile(r"https://alerts\.example\.org/useful/([A-Za-z0-9._-]+)")
MESSAGE_NONCE = "m" * 32


def stored(message_id: int) -> str | None:
    """Every message these token tests name is stored, with MESSAGE_NONCE."""
    return MESSAGE_NONCE


def a_ballot(**changes: object) -> Ballot:
    return dataclasses.replace(Ballot(12, 34, False, new_ballot_number()), **changes)


# --- tokens ----------------------------------------------------------------------------


def test_a_vote_token_reads_back_as_the_ballot_it_was_made_from() -> None:
    ballot = a_ballot()
    assert read_vote(SECRET, sign_vote(SECRET, ballot, MESSAGE_NONCE), stored) == ballot
    assert read_vote(SECRET, sign_vote(SECRET, a_ballot(useful=True), MESSAGE_NONCE), stored)


def test_an_altered_forged_or_foreign_token_reads_as_nothing() -> None:
    ballot = a_ballot()
    token = sign_vote(SECRET, ballot, MESSAGE_NONCE)
    item, message, answer, number, tag = token.split(".")
    other_answer = ".".join([item, message, "y", number, tag])
    other_item = ".".join(["13", message, answer, number, tag])
    other_number = ".".join([item, message, answer, new_ballot_number(), tag])
    bad_tag = ".".join([item, message, answer, number, ("b" if tag[0] == "a" else "a") + tag[1:]])
    for forged in (other_answer, other_item, other_number, bad_tag, token + "x", token[:-1],
                   f" {token}", "", "nonsense",
                   sign_reference(SECRET, Purpose.UNSUBSCRIBE, 12, MESSAGE_NONCE)):
        assert read_vote(SECRET, forged, stored) is None, forged
    assert read_vote("another-secret", token, stored) is None
    assert read_vote(SECRET, token, lambda message_id: "n" * 32) is None, "message written again"
    assert read_vote(SECRET, token, lambda message_id: None) is None, "message gone"


def test_a_ballot_number_must_be_one_the_product_makes() -> None:
    with pytest.raises(ValueError):
        sign_vote(SECRET, a_ballot(number="short"), MESSAGE_NONCE)
    with pytest.raises(ValueError):
        sign_vote(SECRET, a_ballot(item_ref=-1), MESSAGE_NONCE)


# --- one email's links -----------------------------------------------------------------


def test_an_items_yes_and_no_links_share_one_ballot_that_no_other_item_or_email_has() -> None:
    links = VoteLinks(SECRET, "https://alerts.example.org/", message_id=34,
                      message_nonce=MESSAGE_NONCE)

    def ballot_of(url: str) -> Ballot:
        match = VOTE_URL.fullmatch(url)
        assert match, url
        ballot = read_vote(SECRET, match.group(1), stored)
        assert ballot is not None
        return ballot

    yes, no = ballot_of(links.url(12, True)), ballot_of(links.url(12, False))
    assert (yes.item_ref, yes.message_id, yes.useful) == (12, 34, True)
    assert (no.item_ref, no.useful) == (12, False)
    assert yes.number == no.number == ballot_of(links.url(12, True)).number
    assert ballot_of(links.url(13, True)).number != yes.number
    another_email = VoteLinks(SECRET, "https://alerts.example.org", message_id=34,
                              message_nonce=MESSAGE_NONCE)
    assert ballot_of(another_email.url(12, True)).number != yes.number


def test_previews_fill_every_vote_mark_with_a_stand_in() -> None:
    body = ("__ALERTS_USEFUL_12_yes__ __ALERTS_USEFUL_12_no__ __ALERTS_USEFUL_0_no__ "
            f"{UNSUBSCRIBE_MARK} {PREFERENCES_MARK}")
    assert fill_links(body, "U", "P") == "# # # U P"
    assert fill_links(body, "U", "P", "(own link)") == "(own link) " * 3 + "U P"
    made: list[tuple[int, bool]] = []

    def link(item: int, useful: bool) -> str:
        made.append((item, useful))
        return f"<{item}:{useful}>"

    assert fill_links(body, "U", "P", link) == "<12:True> <12:False> <0:False> U P"
    assert made == [(12, True), (12, False), (0, False)]


# --- delivery --------------------------------------------------------------------------


def an_email(settings: Settings, **changes: object) -> Outgoing:
    text = ("Bikes marked\nWas this useful to you?\nYes: __ALERTS_USEFUL_12_yes__\n"
            "No:  __ALERTS_USEFUL_12_no__\n\nDog fouling\nYes: __ALERTS_USEFUL_13_yes__\n"
            f"No:  __ALERTS_USEFUL_13_no__\n\nUnsubscribe: {UNSUBSCRIBE_MARK}\n")
    html = ("<p>Bikes marked</p><p>Was this useful to you? "
            "<a href='__ALERTS_USEFUL_12_yes__'>Yes, it was useful</a> &middot; "
            "<a href='__ALERTS_USEFUL_12_no__'>No, it was not useful</a></p>"
            "<p>Dog fouling <a href='__ALERTS_USEFUL_13_yes__'>Yes</a>"
            "<a href='__ALERTS_USEFUL_13_no__'>No</a></p>"
            f"<a href='{UNSUBSCRIBE_MARK}'>Leave</a><a href='{PREFERENCES_MARK}'>Change</a>")
    outgoing = Outgoing(delivery_id=41, message_id=7, kind="digest", subject="News",
                        html=html, text=text, calendar=None, ward_code="RIV",
                        ward_name="Riverside", recipient_email="ash@home.example",
                        recipient_name="Ash", subscription_id=93, created_at=NOW,
                        delivery_nonce="d" * 32, subscription_nonce="s" * 32,
                        message_nonce=MESSAGE_NONCE)
    return dataclasses.replace(outgoing, **changes)


def parts(data: bytes) -> tuple[str, str]:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@pytest.mark.parametrize("address", ["ash@home.example", "zoë@exämple.org"])
def test_no_mark_survives_personalisation_and_each_item_has_one_ballot_in_both_parts(
        settings: Settings, address: str) -> None:
    _, data = build_email(an_email(settings, recipient_email=address), settings, now=NOW)
    text, html = parts(data)
    assert "__ALERTS_" not in text and "__ALERTS_" not in html
    assert "__ALERTS_" not in data.decode("utf-8")
    ballots = [read_vote(SECRET, token, stored) for token in VOTE_URL.findall(text + html)]
    assert len(ballots) == 8 and all(ballots)
    numbers = {(b.item_ref, b.number) for b in ballots if b}
    assert {item for item, _ in numbers} == {12, 13} and len(numbers) == 2
    assert {b.message_id for b in ballots if b} == {7}
    assert "41" not in {str(b.item_ref) for b in ballots if b}  # not the delivery
    if address.isascii():  # the fast path, which cuts the encoded body at the marks
        body_lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
        assert max(len(line) for line in body_lines) <= 76, "RFC 2045 line length"


def test_every_copy_of_a_message_gets_ballots_of_its_own(settings: Settings) -> None:
    one = VOTE_URL.findall(parts(build_email(an_email(settings), settings, now=NOW)[1])[0])
    again = VOTE_URL.findall(parts(build_email_slowly(an_email(settings), settings,
                                                      now=NOW)[1])[0])
    assert len(one) == len(again) == 4 and not set(one) & set(again)


# --- recording and counting ----------------------------------------------------------------


def posts(session: Session, count: int = 2) -> list[int]:
    ward = make_ward(session)
    stored = store_items(session, officer_source(session, ward), [
        CollectedItem(guid=f"p{n}", kind=ItemKind.POST, title=f"Post {n}", body_html="<p>x</p>")
        for n in range(count)])
    return list(stored.new_item_ids)


def a_message(session: Session, item_ids: list[int], residents: int) -> int:
    ward = make_ward(session)
    subscriptions = [make_subscriber(session, ward) for _ in range(residents)]
    make_sent_message(session, ward, subscriptions)
    message_id = session.scalar(select(func.max(Message.id)))
    assert message_id is not None
    session.add_all(MessageItem(message_id=message_id, item_id=i) for i in item_ids)
    session.flush()
    return message_id


def votes(session: Session) -> list[UsefulVote]:
    return list(session.scalars(select(UsefulVote).order_by(UsefulVote.id)))


def test_a_ballot_counts_once_and_a_change_of_answer_keeps_it_one_vote(
        session: Session) -> None:
    item, _ = posts(session)
    message = a_message(session, [item], residents=MIN_AUDIENCE)
    ballot = Ballot(item, message, False, new_ballot_number())

    first = record_vote(session, ballot, now=NOW)
    again = record_vote(session, ballot, now=NOW + timedelta(minutes=5))
    assert first is not None and not first.already and first.item_title == "Post 0"
    assert again is not None and again.already and not again.useful
    [vote] = votes(session)
    assert (vote.item_id, vote.message_id, vote.useful) == (item, message, False)
    assert vote.ballot == ballot_hash(ballot.number) != ballot.number
    assert vote.voted_at.replace(tzinfo=UTC) == datetime(2026, 11, 20, 16, tzinfo=UTC)

    changed = record_vote(session, ballot, now=NOW, change_to=True)
    assert changed is not None and changed.useful and not changed.already
    [vote] = votes(session)
    session.refresh(vote)
    assert vote.useful is True


def test_a_message_that_reached_few_residents_keeps_no_message_id_on_its_votes(
        session: Session) -> None:
    item, _ = posts(session)
    message = a_message(session, [item], residents=MIN_AUDIENCE - 1)
    record_vote(session, Ballot(item, message, True, new_ballot_number()), now=NOW)
    [vote] = votes(session)
    assert vote.item_id == item and vote.message_id is None


def test_an_alerts_vote_is_for_the_one_item_its_message_carried(session: Session) -> None:
    item, other = posts(session)
    alert = a_message(session, [item], residents=1)
    both = a_message(session, [item, other], residents=1)
    vote = record_vote(session, Ballot(THIS_MESSAGES_ITEM, alert, True, new_ballot_number()),
                       now=NOW)
    assert vote is not None and vote.item_title == "Post 0"
    assert [v.item_id for v in votes(session)] == [item]
    # A message of several items cannot say which one a "this message" ballot meant.
    assert record_vote(session, Ballot(THIS_MESSAGES_ITEM, both, True, new_ballot_number()),
                       now=NOW) is None
    assert record_vote(session, Ballot(item + 1000, alert, True, new_ballot_number()),
                       now=NOW) is None
    assert len(votes(session)) == 1


def test_a_links_question_read_with_its_nonce_is_the_one_its_checked_ballot_asks(
        session: Session) -> None:
    """question_for_link (one statement, the burst's vote page) answers as read_stored_vote
    then vote_question: the alert's one item, none for a message of several or a post that
    is gone, nothing at all for a token that is not genuine."""
    item, other = posts(session)
    alert = a_message(session, [item], residents=1)
    both = a_message(session, [item, other], residents=1)
    nonce = {m: session.get_one(Message, m).nonce for m in (alert, both)}
    cases = [(THIS_MESSAGES_ITEM, alert), (THIS_MESSAGES_ITEM, both), (other, alert),
             (item + 1000, alert)]
    for item_ref, message in cases:
        ballot = Ballot(item_ref, message, True, new_ballot_number())
        found = question_for_link(session, SECRET, sign_vote(SECRET, ballot, nonce[message]))
        assert found == (ballot, vote_question(session, ballot)), (item_ref, message)
    assert question_for_link(session, SECRET, sign_vote(SECRET, ballot, "x" * 32)) is None
    token = sign_vote(SECRET, Ballot(THIS_MESSAGES_ITEM, alert, True, new_ballot_number()),
                      nonce[alert])
    found = question_for_link(session, SECRET, token)
    assert found is not None and found[1] is not None and found[1].item_title == "Post 0"
    assert question_for_link(session, SECRET, token.replace(f".{alert}.", f".{both}.")) is None
    assert question_for_link(session, SECRET, "not-a-token") is None


def test_votes_are_counted_per_post_in_one_query(
        session: Session, factory: sessionmaker[Session]) -> None:
    first, second, silent = posts(session, 3)
    message = a_message(session, [first, second], residents=1)
    for item, useful in ((first, True), (first, True), (first, False), (second, False)):
        record_vote(session, Ballot(item, message, useful, new_ballot_number()), now=NOW)
    session.commit()

    from sqlalchemy import event

    statements: list[str] = []
    engine = session.get_bind()
    listen = event.listens_for(engine, "before_cursor_execute")

    @listen
    def count(*args: object) -> None:
        statements.append(str(args[2]))

    try:
        with factory() as other:
            tallies = count_votes(other, [first, second, silent])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert tallies == {first: Tally(useful=2, not_useful=1), second: Tally(0, 1)}
    assert len([s for s in statements if "useful_votes" in s]) == 1
    assert count_votes(session, []) == {}


def test_a_vote_row_has_no_column_that_could_name_a_resident(session: Session) -> None:
    columns = {c.name for c in UsefulVote.__table__.columns}
    assert columns == {"id", "item_id", "message_id", "ballot", "useful", "voted_at"}
    targets = {fk.column.table.name for fk in UsefulVote.__table__.foreign_keys}
    assert targets == {"items", "messages"}
    assert Delivery.__tablename__ not in targets
