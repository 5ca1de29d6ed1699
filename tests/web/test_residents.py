"""The residents' pages through FastAPI's TestClient, on both stores: subscribe (no
enumeration, consent recorded, one confirmation an hour), confirm (expiring signed link, whose
page's button confirms), preferences, unsubscribe (page and RFC 8058 one-click), CSRF, and what
a pending address gets.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases.confirmations import CONFIRM_SALT, confirmation_token
from alerts.usecases.digest_rounds import queue_digests
from alerts.usecases.posting import post_urgent
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.consent import CURRENT_WORDING, WORDING
from subscriptions.links import Purpose, new_nonce, nonces_in, seal, sign_reference
from subscriptions.subscribers import Frequency, Status, Subscriber, Subscription
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import Ward, get_ward
from tests.factories import make_subscriber, make_ward, signed, stored_nonce
from tests.servers import Received, SinkHandler

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def client_for(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    return TestClient(create_app(factory, settings=settings))


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "every form carries a CSRF token"
    return match.group(1)


def sign_up(client: TestClient, email: str, *wards: str,
            frequency: str = "weekly") -> tuple[int, str]:
    token = csrf_of(client.get("/subscribe").text)
    response = client.post("/subscribe", data={
        "email": email, "wards": list(wards), "frequency": frequency, "csrf_token": token})
    return response.status_code, response.text


def subscriptions_of(factory: sessionmaker[Session], email: str) -> list[Subscription]:
    with factory() as session:
        return list(session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == email)
            .order_by(Subscription.id)))


def confirm_link(received: Received) -> str:
    body = received.message.get_body(("plain",))
    assert body is not None
    match = re.search(r"https://alerts\.example\.org(/confirm/\S+)", body.get_content())
    assert match, "the confirmation email carries the link"
    return match.group(1)


def confirm_by_button(client: TestClient, path: str) -> httpx.Response:
    """Open a confirmation link, as a resident does, and press the page's one button."""
    page = client.get(path)
    assert page.status_code == 200 and "Confirm my subscription" in page.text
    return client.post(path, data={"csrf_token": csrf_of(page.text)})


def link_path(url: str) -> str:
    return urlsplit(url).path


@pytest.fixture
def wards(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
        make_ward(session, "HIL", "Hillcrest")
        make_ward(session, "OLD", "Old Town")


@pytest.mark.usefixtures("wards")
def test_the_subscribe_page_lists_and_filters_wards_and_shows_the_consent_wording(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    client = client_for(factory, settings)
    page = client.get("/subscribe")
    assert page.status_code == 200
    text = page.text
    assert '<html lang="en-GB">' in text and text.count("<h1") == 1
    assert "999" in text and "101" in text, "every page says this is not for reporting crime"
    assert WORDING[CURRENT_WORDING] in text
    assert all(name in text for name in ("Riverside", "Hillcrest", "Old Town"))
    assert '<label for="ward-RIV">Riverside</label>' in text
    filtered = client.get("/subscribe", params={"q": "river"}).text
    assert "Riverside" in filtered and "Hillcrest" not in filtered and "Old Town" not in filtered
    nothing = client.get("/subscribe", params={"q": "<b>zzz"}).text
    assert "&lt;b&gt;zzz" in nothing and "<b>zzz" not in nothing, "autoescaped"
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.usefixtures("wards")
def test_a_web_sign_up_is_pending_with_its_consent_and_gets_only_the_confirmation(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    status, _ = sign_up(client, "Jo@Home.example", "RIV", "HIL", frequency="daily")
    assert status == 200
    subscriptions = subscriptions_of(factory, "jo@home.example")
    assert [s.status for s in subscriptions] == [Status.PENDING, Status.PENDING]
    for s in subscriptions:
        assert (s.consent_method, s.consent_source, s.consent_wording, s.frequency) == (
            "web", "/subscribe", CURRENT_WORDING, "daily")
        assert s.confirmed_at is None
    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="Road closed",
                    body="Avoid the high street.", now=utcnow())
    deliver_due(factory, settings)
    assert len(sink.received) == 1, "a pending address gets the confirmation and nothing else"
    [mail] = sink.received
    assert mail.rcpt_tos == ["jo@home.example"]
    assert mail.message["Subject"] == "Please confirm your neighbourhood alerts"
    text = mail.message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    assert "Riverside" in content and "Hillcrest" in content
    assert "999" in content and "Crimestoppers" in content

    page = confirm_by_button(client, confirm_link(mail))
    assert page.status_code == 200 and "You are subscribed" in page.text
    confirmed = subscriptions_of(factory, "jo@home.example")
    assert [s.status for s in confirmed] == [Status.CONFIRMED, Status.CONFIRMED]
    assert all(s.confirmed_at is not None for s in confirmed)
    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="Second alert",
                    body="Now confirmed.", now=utcnow())
    deliver_due(factory, settings)
    subjects = sorted(str(r.message["Subject"]) for r in sink.received[1:])
    assert len(subjects) == 2 and any("Second alert" in s for s in subjects), "and the welcome"
    assert "Welcome to neighbourhood alerts for Hillcrest" in subjects


@pytest.mark.usefixtures("wards")
def test_the_answer_is_the_same_for_known_unknown_and_suppressed_addresses(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        make_subscriber(session, get_ward(session, "RIV"), "known@home.example",
                        frequency=Frequency.WEEKLY)
        suppress(session, "blocked@home.example", SuppressionReason.COMPLAINT)
    client = client_for(factory, settings)
    answers = {email: sign_up(client, email, "RIV", frequency="immediate")
               for email in ("known@home.example", "new@home.example", "blocked@home.example")}
    assert len(set(answers.values())) == 1, "no enumeration: one status, one body"
    [known] = subscriptions_of(factory, "known@home.example")
    assert known.status == Status.CONFIRMED and known.frequency == "weekly", \
        "an unauthenticated form does not change a confirmed subscription"
    assert subscriptions_of(factory, "blocked@home.example") == []
    deliver_due(factory, settings)
    assert [r.rcpt_tos for r in sink.received] == [["new@home.example"]]


@pytest.mark.usefixtures("wards")
def test_at_most_one_confirmation_an_hour_per_address(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    first = sign_up(client, "jo@home.example", "RIV")
    again = [sign_up(client, "jo@home.example", "HIL") for _ in range(3)]
    assert all(answer == first for answer in again)
    deliver_due(factory, settings)
    assert len(sink.received) == 1, "the form cannot be used to mail-bomb an address"
    assert {s.status for s in subscriptions_of(factory, "jo@home.example")} == {Status.PENDING}
    with factory.begin() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.confirmation_sent_at is not None
        subscriber.confirmation_sent_at -= timedelta(minutes=61)
    sign_up(client, "jo@home.example", "OLD")
    deliver_due(factory, settings)
    assert len(sink.received) == 2, "an hour later another may go"


@pytest.mark.usefixtures("wards")
def test_expired_forged_and_altered_confirmation_links_are_refused_and_change_nothing(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    sign_up(client, "jo@home.example", "RIV")
    deliver_due(factory, settings)
    genuine = confirm_link(sink.received[0])
    [pending] = subscriptions_of(factory, "jo@home.example")
    with factory() as session:
        nonce = nonces_in(session, Subscriber)(pending.subscriber_id)
    assert nonce is not None
    # What a genuine token holds, sealed with the resident's nonce: only the signing differs.
    payload = {"s": pending.subscriber_id, "ids": [pending.id],
               "n": seal(settings.web.secret_key, Purpose.CONFIRM, pending.subscriber_id, nonce)}

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 49 * 3600

    expired = URLSafeTimedSerializer(settings.web.secret_key, salt=CONFIRM_SALT,
                                     signer=LongAgo).dumps(payload)
    forged = URLSafeTimedSerializer("another-key", salt=CONFIRM_SALT).dumps(payload)
    other_salt = URLSafeTimedSerializer(settings.web.secret_key, salt="x").dumps(payload)
    altered = genuine[:-3] + ("aaa" if not genuine.endswith("aaa") else "bbb")
    csrf = csrf_of(client.get(genuine).text)
    for path in (f"/confirm/{expired}", f"/confirm/{forged}", f"/confirm/{other_salt}",
                 altered, "/confirm/nonsense"):
        for page in (client.get(path), client.post(path, data={"csrf_token": csrf})):
            assert page.status_code == 400, path
            assert "This link does not work" in page.text and 'href="/subscribe"' in page.text
            assert "Nothing has been changed" in page.text
    assert subscriptions_of(factory, "jo@home.example")[0].status == Status.PENDING
    assert confirmation_token(settings, pending.subscriber_id, nonce, (pending.id,)) != expired
    assert confirm_by_button(client, genuine).status_code == 200
    assert subscriptions_of(factory, "jo@home.example")[0].status == Status.CONFIRMED


@pytest.mark.usefixtures("wards")
def test_opening_a_confirmation_link_changes_nothing_and_the_pages_button_confirms(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    sign_up(client, "jo@home.example", "RIV", "HIL")
    sign_up(client_for(factory, settings), "sam@home.example", "OLD")
    deliver_due(factory, settings)
    [mail] = [r for r in sink.received if r.rcpt_tos == ["jo@home.example"]]
    path = confirm_link(mail)

    def statuses() -> set[str]:
        return {s.status for s in subscriptions_of(factory, "jo@home.example")}

    scanner = client_for(factory, settings)  # a mail filter that opens every link, twice
    for _ in range(2):
        opened = scanner.get(path)
        assert opened.status_code == 200
        assert statuses() == {Status.PENDING}, "opening the link confirms nothing"
    page = opened.text
    assert "Confirm your subscription" in page and page.count("<button") == 1
    assert f'<form method="post" action="{path}">' in page
    assert "Hillcrest" in page and "Riverside" in page, "the wards the resident asked for"
    assert "jo@home.example" not in page and "Old Town" not in page
    assert opened.headers["cache-control"] == "no-store"
    assert opened.headers["referrer-policy"] == "no-referrer"
    assert scanner.post(path, data={}).status_code == 400, "the button's form has a CSRF token"
    assert statuses() == {Status.PENDING}

    done = client.post(path, data={"csrf_token": csrf_of(client.get(path).text)})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert statuses() == {Status.CONFIRMED}
    assert subscriptions_of(factory, "sam@home.example")[0].status == Status.PENDING


@pytest.mark.usefixtures("wards")
def test_form_errors_are_tied_to_their_fields_and_store_nothing(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    client = client_for(factory, settings)
    token = csrf_of(client.get("/subscribe").text)
    response = client.post("/subscribe", data={"email": "not an address", "csrf_token": token,
                                               "frequency": "hourly"})
    assert response.status_code == 400
    page = response.text
    assert 'aria-describedby="email-hint email-error"' in page and 'id="email-error"' in page
    assert 'aria-invalid="true"' in page
    assert 'aria-describedby="wards-error"' in page and 'id="wards-error"' in page
    assert 'id="frequency-error"' in page
    assert 'value="not an address"' in page, "what was typed is kept"
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


@pytest.mark.usefixtures("wards")
def test_posts_without_a_valid_csrf_token_are_refused(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        subscription = make_subscriber(session, get_ward(session, "RIV"), "jo@home.example")
        ident, secret = subscription.id, settings.web.secret_key
        preferences = f"/preferences/{signed(session, secret, Purpose.PREFERENCES, ident)}"
        unsubscribe = f"/unsubscribe/{signed(session, secret, Purpose.UNSUBSCRIBE, ident)}"
    client = client_for(factory, settings)
    form = {"email": "new@home.example", "wards": ["RIV"], "frequency": "weekly"}
    assert client.post("/subscribe", data=form).status_code == 400
    real = csrf_of(client.get("/subscribe").text)
    stranger = client_for(factory, settings)  # no cookie: a cross-site post
    assert stranger.post("/subscribe", data={**form, "csrf_token": real}).status_code == 400
    assert client.post("/subscribe", data={**form, "csrf_token": real + "x"}).status_code == 400
    refused = client.post(preferences, data={"frequency": "daily", "wards": ["RIV"]})
    assert refused.status_code == 400 and "Please try again" in refused.text
    assert client.post(unsubscribe, data={}).status_code == 400
    assert client.post(unsubscribe, data={"List-Unsubscribe": "Yes"}).status_code == 400
    assert subscriptions_of(factory, "new@home.example") == []
    [kept] = subscriptions_of(factory, "jo@home.example")
    assert (kept.status, kept.frequency) == (Status.CONFIRMED, "weekly")


def test_one_click_unsubscribe_from_a_digest_header_and_the_next_digest_skips_the_address(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    now = utcnow()
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, ward, "ann@home.example", at=now - timedelta(days=1))
        make_subscriber(session, ward, "bob@home.example", at=now - timedelta(days=1))
        store_items(session, officer_source(session, ward), [CollectedItem(
            guid="p1", kind=ItemKind.POST, title="Weekly round-up", published_at=now)])
    queue_digests(factory, settings, now=now)
    deliver_due(factory, settings)
    [ann_digest] = [r for r in sink.received if r.rcpt_tos == ["ann@home.example"]]
    header = str(ann_digest.message["List-Unsubscribe"])
    assert ann_digest.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https = re.search(r"<(https://[^>]+)>", header)
    assert https is not None
    # A mailbox provider's POST: no cookie, no CSRF token, a form-encoded body.
    provider = client_for(factory, settings)
    answer = provider.post(link_path(https.group(1)), content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and len(answer.content) < 100
    assert subscriptions_of(factory, "ann@home.example")[0].status == Status.UNSUBSCRIBED
    again = provider.post(link_path(https.group(1)), data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200, "a repeated one-click changes nothing and still answers"

    with factory.begin() as session:
        store_items(session, officer_source(session, session.merge(ward)), [CollectedItem(
            guid="p2", kind=ItemKind.POST, title="Next week", published_at=now)])
    sink.received.clear()
    next_week = now + timedelta(days=7)
    queue_digests(factory, settings, now=next_week)
    deliver_due(factory, settings, now=lambda: next_week + timedelta(minutes=1))
    assert [r.rcpt_tos for r in sink.received] == [["bob@home.example"]]


def test_one_click_also_accepts_multipart_form_data(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ident = make_subscriber(session, make_ward(session, "RIV", "Riverside"),
                                "jo@home.example").id
        token = signed(session, settings.web.secret_key, Purpose.UNSUBSCRIBE, ident)
    path = f"/unsubscribe/{token}"
    answer = client_for(factory, settings).post(
        path, files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert subscriptions_of(factory, "jo@home.example")[0].status == Status.UNSUBSCRIBED


def test_forged_or_altered_unsubscribe_and_preferences_links_are_refused(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ident = make_subscriber(session, make_ward(session, "RIV", "Riverside"),
                                "jo@home.example").id
        nonce = stored_nonce(session, Subscription, ident)
    secret = settings.web.secret_key
    client = client_for(factory, settings)
    unsubscribe = sign_reference(secret, Purpose.UNSUBSCRIBE, ident, nonce)
    preferences = sign_reference(secret, Purpose.PREFERENCES, ident, nonce)
    bad_tokens = [
        f"{ident + 1}-{unsubscribe.split('-')[1]}",  # another subscription's id, same tag
        unsubscribe[:-1] + ("a" if unsubscribe[-1] != "a" else "b"),
        sign_reference("another-key", Purpose.UNSUBSCRIBE, ident, nonce),
        sign_reference(secret, Purpose.UNSUBSCRIBE, ident, new_nonce()),  # another row's nonce
        preferences,  # a preferences token is not an unsubscribe token
        "garbage",
    ]
    for token in bad_tokens:
        for response in (client.get(f"/unsubscribe/{token}"),
                         client.post(f"/unsubscribe/{token}",
                                     data={"List-Unsubscribe": "One-Click"})):
            assert response.status_code == 400, token
            assert "This link does not work" in response.text
    altered_preferences = preferences[:-2] + ("zz" if not preferences.endswith("zz") else "yy")
    for token in (unsubscribe, altered_preferences):
        assert client.get(f"/preferences/{token}").status_code == 400
        csrf = csrf_of(client.get("/subscribe").text)
        assert client.post(f"/preferences/{token}", data={
            "frequency": "daily", "csrf_token": csrf}).status_code == 400
    [kept] = subscriptions_of(factory, "jo@home.example")
    assert (kept.status, kept.frequency) == (Status.CONFIRMED, "weekly")


def test_the_unsubscribe_page_is_one_button_and_can_leave_every_ward(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        ident = make_subscriber(session, riv, "jo@home.example").id
        make_subscriber(session, hil, "jo@home.example")
        other = make_subscriber(session, riv, "sam@home.example").id
        leave = signed(session, settings.web.secret_key, Purpose.UNSUBSCRIBE, ident)
        leave_other = signed(session, settings.web.secret_key, Purpose.UNSUBSCRIBE, other)
    client = client_for(factory, settings)
    path = f"/unsubscribe/{leave}"
    page = client.get(path)
    assert page.status_code == 200 and "Unsubscribe from Riverside" in page.text
    assert page.text.count("<button") == 1 and "Hillcrest" in page.text
    done = client.post(path, data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert [s.status for s in subscriptions_of(factory, "jo@home.example")] == [
        Status.UNSUBSCRIBED, Status.CONFIRMED]
    path = f"/unsubscribe/{leave_other}"
    page = client.get(path)
    assert "other wards" not in page.text
    path = f"/unsubscribe/{leave}"
    client.post(path, data={"csrf_token": csrf_of(client.get(path).text), "everywhere": "yes"})
    assert {s.status for s in subscriptions_of(factory, "jo@home.example")} == {
        Status.UNSUBSCRIBED}
    assert subscriptions_of(factory, "sam@home.example")[0].status == Status.CONFIRMED


def test_preferences_change_frequency_pause_resume_and_wards(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        make_ward(session, "OLD", "Old Town")
        ident = make_subscriber(session, riv, "jo@home.example").id
        make_subscriber(session, hil, "jo@home.example")
        token = signed(session, settings.web.secret_key, Purpose.PREFERENCES, ident)
    client = client_for(factory, settings)
    path = f"/preferences/{token}"

    def save(**form: object) -> str:
        response = client.post(path, data={**form, "csrf_token": csrf_of(client.get(path).text)})
        assert response.status_code == 200
        text: str = response.text
        return text

    page = client.get(path).text
    assert 'id="frequency-weekly" name="frequency" value="weekly"' in page
    assert 'value="RIV" aria-describedby="wards-hint" checked' in page
    assert 'value="OLD" aria-describedby="wards-hint">' in page
    saved = save(frequency="daily", wards=["RIV", "OLD"])
    assert "Your choices are saved" in saved
    with factory() as session:
        states = {code: (s.status, s.frequency, s.consent_source) for s, code in session.execute(
            select(Subscription, Ward.code).join(Ward).join(Subscriber)
            .where(Subscriber.email == "jo@home.example"))}
    assert states["RIV"][:2] == (Status.CONFIRMED, "daily")
    assert states["HIL"][0] == Status.UNSUBSCRIBED
    assert states["OLD"] == (Status.CONFIRMED, "daily", link_path(path)), \
        "a ward added from the emailed link is confirmed, with this page as its consent"

    save(frequency="daily", wards=["RIV", "OLD"], paused="yes")
    live = [s for s in subscriptions_of(factory, "jo@home.example")
            if s.status != Status.UNSUBSCRIBED]
    assert {s.status for s in live} == {Status.PAUSED}
    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="Road closed", body="Avoid it.",
                    now=utcnow())
    deliver_due(factory, settings)
    assert sink.received == [], "a paused resident hears nothing"
    assert 'name="paused" value="yes" aria-describedby="paused-hint" checked' in \
        client.get(path).text
    save(frequency="weekly", wards=["RIV", "OLD"])
    live = [s for s in subscriptions_of(factory, "jo@home.example")
            if s.status != Status.UNSUBSCRIBED]
    assert {(s.status, s.frequency) for s in live} == {(Status.CONFIRMED, "weekly")}


def test_the_outbox_row_for_a_confirmation_is_for_that_subscriber_only(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, ward, "other@home.example")
    client = client_for(factory, settings)
    sign_up(client, "jo@home.example", "RIV")
    with factory() as session:
        rows = session.execute(select(Delivery.subscriber_id, Subscriber.email)
                               .join(Subscriber, Subscriber.id == Delivery.subscriber_id)).all()
    assert [email for _, email in rows] == ["jo@home.example"]
