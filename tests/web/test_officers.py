"""The officers' pages over HTTP (FastAPI's TestClient), on both stores: signing in and out,
the throttle and the reset link as a browser meets them, posting (update, session, urgent
alert behind its confirmation) with the mail reaching residents through an SMTP sink,
reading and answering a reply, and every way of reaching another ward refused with 403
and nothing changed.
"""

from __future__ import annotations

import mailbox
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.audit import AuditEntry
from alerts.accounts.signin import ACCOUNT_LIMIT
from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.inbound.replies import ReplyThread, ThreadAnswer
from alerts.mail.messages import Message, MessageKind
from alerts.sources.items import Item
from alerts.web.app import create_app
from alerts.web.staff import SESSION_COOKIE
from tests.servers import SinkHandler
from tests.usecases.test_officers import RESIDENT, RESIDENT_WORDS, World, build_world, reply

PASSWORD = "correct horse battery staple"
OFFICER = "pc.bloggs@police.example"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "every form carries a CSRF token"
    return match.group(1)


def client_for(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    return TestClient(create_app(factory, settings=settings))


def with_passwords(factory: sessionmaker[Session]) -> World:
    world = build_world(factory)
    with factory.begin() as session:
        for email, role in ((OFFICER, Role.OFFICER), ("admin@police.example", Role.ADMIN),
                            ("chair@watch.example", Role.COORDINATOR)):
            user = add_user(session, email, role, password=PASSWORD,
                            ward_codes=["RIV"] if role == Role.OFFICER else (),
                            scheme_names=["Mill Lane watch"] if role == Role.COORDINATOR
                            else ())
            assert user.id
    return world


def sign_in(client: TestClient, email: str = OFFICER, password: str = PASSWORD, *,
            next_: str = "/staff/") -> Response:
    token = csrf_of(client.get("/staff/sign-in").text)
    return client.post("/staff/sign-in", data={"email": email, "password": password,
                                               "next": next_, "csrf_token": token})


def post(client: TestClient, path: str, data: dict[str, str], *, form_page: str) -> Response:
    """Submit a form as a browser would: with the CSRF token of the page it is on."""
    return client.post(path, data={"csrf_token": csrf_of(client.get(form_page).text), **data})


def count(factory: sessionmaker[Session], model: type, *where: object) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    return with_passwords(factory)


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings, world: World) -> TestClient:
    return client_for(factory, settings)


@pytest.fixture
def officer(client: TestClient) -> TestClient:
    assert sign_in(client).url.path == "/staff/"
    return client


UPDATE = {"ward": "RIV", "kind": "post", "title": "Bikes marked at the library",
          "body": "We marked 40 bikes on Saturday.", "action": "publish"}
ALERT = {"ward": "RIV", "kind": "alert", "title": "Mill Lane closed tonight",
         "body": "Avoid Mill Lane until midnight: a burst water main.", "action": "publish",
         "confirm": "send"}


# --- the journey ---------------------------------------------------------------------------


def test_an_officer_posts_an_update_and_an_urgent_alert_that_reach_their_wards_residents(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        world: World) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    assert sign_in(client).url.path == "/staff/"
    overview = client.get("/staff/")
    assert "Riverside" in overview.text and "Hillcrest" not in overview.text

    form = "/staff/wards/RIV/post"
    done = post(client, form, UPDATE, form_page=form)
    assert done.url.path == "/staff/wards/RIV/" and "Published" in done.text
    confirm = post(client, form, {**ALERT, "action": "preview", "confirm": ""},
                   form_page=f"{form}?kind=alert")
    assert "Send this urgent alert to Riverside?" in confirm.text
    assert "It goes now to 1 confirmed subscriber" in confirm.text
    sent = client.post(form, data={"csrf_token": csrf_of(confirm.text), **ALERT})
    assert "queued for 1 subscriber" in sent.text

    report = deliver_due(factory, settings)
    assert report.sent == 2 and report.failed == 0
    to_ann = {r.message["Subject"]: r for r in sink.received if r.rcpt_tos == [RESIDENT]}
    assert set(to_ann) == {"Bikes marked at the library (Riverside)",
                           "[Urgent] Mill Lane closed tonight (Riverside)"}
    alert = to_ann["[Urgent] Mill Lane closed tonight (Riverside)"].message
    body = alert.get_body(("plain",))
    assert body is not None and "burst water main" in body.get_content()
    assert not any("bob@home.example" in r.rcpt_tos for r in sink.received)
    with factory() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["sign_in", "item.post", "alert.urgent"]


def test_an_officer_reads_a_residents_reply_and_the_answer_reaches_the_resident(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        world: World) -> None:
    sink, settings = smtp
    thread_id = reply(factory, settings, world.riv_delivery)
    client = client_for(factory, settings)
    sign_in(client)
    inbox = client.get("/staff/wards/RIV/replies")
    assert RESIDENT_WORDS in inbox.text and "Ann Example" in inbox.text
    assert "On Friday the team wrote" not in inbox.text  # the quote stays out of the list
    thread = f"/staff/wards/RIV/replies/{thread_id}"
    page = client.get(thread)
    assert RESIDENT_WORDS in page.text and "The email they were answering" in page.text

    answered = post(client, f"{thread}/answer",
                    {"answer": "Yes: 10 till 12 at the library. Bring some ID."},
                    form_page=thread)
    assert answered.url.path == thread and "on its way" in answered.text
    assert "Handled" in answered.text

    sink.received.clear()
    deliver_due(factory, settings)
    (answer,) = [r for r in sink.received if r.message["Subject"] == "Re: Riverside: your news"]
    assert answer.rcpt_tos == [RESIDENT]
    assert answer.message["Auto-Submitted"] == "no"  # written by a person
    text = answer.message.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    assert "Bring some ID." in content and "PC Jo Bloggs" in content and "999" in content
    # The resident's reply to the answer joins the same conversation.
    reply_to = answer.message["Reply-To"]
    with factory() as session:
        message_id = session.scalars(select(ThreadAnswer.message_id).join(
            Message, Message.id == ThreadAnswer.message_id).where(
            Message.kind == MessageKind.TEAM_ANSWER)).one()
        assert session.get_one(ThreadAnswer, message_id).thread_id == thread_id
    assert reply_to.startswith("reply+")


# --- another ward --------------------------------------------------------------------------


def test_officer_cannot_post_to_another_ward_by_editing_the_forms_hidden_ward_field(
        factory: sessionmaker[Session], officer: TestClient) -> None:
    form = "/staff/wards/RIV/post"
    for data in ({**UPDATE, "ward": "HIL"}, {**ALERT, "ward": "HIL"}):
        refused = post(officer, form, data, form_page=form)
        assert refused.status_code == 403 and "Nothing was changed" in refused.text
    assert count(factory, Item) == 0
    assert count(factory, Message, Message.kind == MessageKind.ALERT) == 0
    assert count(factory, AuditEntry, AuditEntry.action != "sign_in") == 0


def test_officer_cannot_post_to_another_ward_by_calling_its_url_directly(
        factory: sessionmaker[Session], officer: TestClient) -> None:
    for path in ("/staff/wards/HIL/", "/staff/wards/HIL/post", "/staff/wards/HIL/digest",
                 "/staff/wards/HIL/sources", "/staff/wards/HIL/replies"):
        assert officer.get(path).status_code == 403, path
    for data in ({**UPDATE, "ward": "HIL"}, {**ALERT, "ward": "HIL"}):
        refused = post(officer, "/staff/wards/HIL/post", data, form_page="/staff/wards/RIV/post")
        assert refused.status_code == 403
    assert count(factory, Item) == 0
    assert count(factory, Message, Message.kind == MessageKind.ALERT) == 0
    assert officer.get("/staff/wards/NOWHERE/").status_code == 404


def test_officer_cannot_read_mark_or_answer_a_reply_of_another_ward(
        factory: sessionmaker[Session], settings: Settings, world: World,
        officer: TestClient) -> None:
    hil = reply(factory, settings, world.hil_delivery, sender="bob@home.example",
                subject="Re: Hillcrest: your news")
    riv = reply(factory, settings, world.riv_delivery)
    assert officer.get(f"/staff/wards/HIL/replies/{hil}").status_code == 403
    # Its own ward's URL with the other ward's thread: still refused by the service.
    assert officer.get(f"/staff/wards/RIV/replies/{hil}").status_code == 403
    page = f"/staff/wards/RIV/replies/{riv}"
    for path, data in ((f"/staff/wards/RIV/replies/{hil}/answer", {"answer": "Hello"}),
                       (f"/staff/wards/HIL/replies/{hil}/answer", {"answer": "Hello"}),
                       (f"/staff/wards/RIV/replies/{hil}/handled", {"handled": "yes"})):
        assert post(officer, path, data, form_page=page).status_code == 403, path
    assert count(factory, Message, Message.kind == MessageKind.TEAM_ANSWER) == 0
    with factory() as session:
        assert session.get_one(ReplyThread, hil).handled_at is None


def test_an_urgent_alert_is_not_sent_without_its_confirmation(
        factory: sessionmaker[Session], officer: TestClient) -> None:
    form = "/staff/wards/RIV/post"
    page = post(officer, form, {**ALERT, "confirm": ""}, form_page=f"{form}?kind=alert")
    assert page.status_code == 200 and "Send the urgent alert now" in page.text
    assert count(factory, Message, Message.kind == MessageKind.ALERT) == 0


def test_a_post_with_mistakes_comes_back_with_an_error_summary_and_what_was_typed(
        factory: sessionmaker[Session], officer: TestClient) -> None:
    form = "/staff/wards/RIV/post?kind=session"
    page = post(officer, "/staff/wards/RIV/post",
                {"ward": "RIV", "kind": "session", "title": "Coffee with your team",
                 "body": "", "starts": "not a time", "action": "preview"}, form_page=form)
    assert page.status_code == 400
    assert "There is a problem" in page.text
    assert 'href="#starts"' in page.text and 'value="Coffee with your team"' in page.text
    page = post(officer, "/staff/wards/RIV/post",
                {"ward": "RIV", "kind": "session", "title": "Coffee with your team",
                 "body": "", "starts": "2030-05-04T10:00", "action": "preview"},
                form_page=form)
    assert 'href="#body"' in page.text and 'aria-invalid="true"' in page.text
    assert count(factory, Item) == 0


def test_a_session_is_published_in_the_services_time_zone(
        factory: sessionmaker[Session], officer: TestClient) -> None:
    done = post(officer, "/staff/wards/RIV/post",
                {"ward": "RIV", "kind": "session", "title": "Coffee with your team",
                 "body": "Come and chat.", "starts": "2030-07-06T10:00",
                 "ends": "2030-07-06T12:00", "location": "Mill Lane café",
                 "action": "publish"}, form_page="/staff/wards/RIV/post?kind=session")
    assert done.url.path == "/staff/wards/RIV/"
    with factory() as session:
        item = session.scalars(select(Item)).one()
    assert item.starts_at is not None and item.starts_at.hour == 9  # 10:00 BST is 09:00 UTC
    assert item.location == "Mill Lane café"


def test_the_digest_preview_and_the_sources_are_shown_to_the_wards_officer(
        officer: TestClient) -> None:
    assert "Nothing new since the last digest" in officer.get("/staff/wards/RIV/digest").text
    post(officer, "/staff/wards/RIV/post", UPDATE, form_page="/staff/wards/RIV/post")
    digest = officer.get("/staff/wards/RIV/digest")
    assert '<template shadowrootmode="open">' in digest.text  # the email, whole in the page
    assert "Bikes marked at the library" in digest.text
    assert "team posts" in officer.get("/staff/wards/RIV/sources").text


def test_a_thread_is_marked_handled_and_opened_again(
        factory: sessionmaker[Session], settings: Settings, world: World,
        officer: TestClient) -> None:
    thread = f"/staff/wards/RIV/replies/{reply(factory, settings, world.riv_delivery)}"
    done = post(officer, f"{thread}/handled", {"handled": "yes"}, form_page=thread)
    assert "Marked as handled" in done.text and "Open it again" in done.text
    done = post(officer, f"{thread}/handled", {"handled": "no"}, form_page=thread)
    assert "Marked as open again" in done.text
    with factory() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-2:] == ["reply.handled", "reply.reopened"]


# --- signing in ----------------------------------------------------------------------------


def test_every_form_without_its_csrf_token_is_refused(
        factory: sessionmaker[Session], settings: Settings, world: World,
        officer: TestClient) -> None:
    thread = reply(factory, settings, world.riv_delivery)
    for path, data in (
        ("/staff/wards/RIV/post", UPDATE),
        ("/staff/wards/RIV/post", ALERT),
        (f"/staff/wards/RIV/replies/{thread}/answer", {"answer": "Hello"}),
        (f"/staff/wards/RIV/replies/{thread}/handled", {"handled": "yes"}),
        ("/staff/sign-out", {}),
        ("/staff/sign-in", {"email": OFFICER, "password": PASSWORD}),
        ("/staff/reset", {"email": OFFICER}),
    ):
        for token in ({}, {"csrf_token": "forged"}):
            refused = officer.post(path, data={**data, **token})
            assert refused.status_code == 403, path
            assert "could not be accepted" in refused.text
    assert count(factory, Item) == 0
    assert count(factory, Message, Message.kind.in_([MessageKind.ALERT,
                                                     MessageKind.TEAM_ANSWER])) == 0
    assert officer.get("/staff/").url.path == "/staff/"  # still signed in


def test_ten_wrong_passwords_lock_sign_in_and_the_page_says_for_how_long(
        client: TestClient) -> None:
    for n in range(ACCOUNT_LIMIT):
        wrong = sign_in(client, password=f"wrong guess {n}")
        assert wrong.status_code == 400
        assert "The email address or the password is not right" in wrong.text
    locked = sign_in(client)
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.text
    assert SESSION_COOKIE not in client.cookies


def test_an_unknown_address_gets_the_same_answer_as_a_wrong_password(
        client: TestClient) -> None:
    unknown = sign_in(client, "nobody@police.example")
    wrong = sign_in(client, password="not the password")
    assert unknown.status_code == wrong.status_code == 400
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", unknown.text) == strip.sub("", wrong.text)


def test_a_tampered_session_cookie_signs_nobody_in(officer: TestClient) -> None:
    cookie = officer.cookies.get(SESSION_COOKIE)
    assert cookie
    ident, rest = cookie.split(".", 1)
    # Another signature; another user's id under this one's signature; not a token at all.
    for bad in (cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB"),
                f"{int(ident) + 1}.{rest}", "garbage"):
        officer.cookies.clear()
        officer.cookies.set(SESSION_COOKIE, bad, path="/staff")
        page = officer.get("/staff/wards/RIV/", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/staff/sign-in?next=%2Fstaff%2Fwards%2FRIV%2F"


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(
        client: TestClient) -> None:
    first = client.get("/staff/wards/RIV/replies")
    assert first.url.path == "/staff/sign-in"
    assert sign_in(client, next_="/staff/wards/RIV/replies").url.path == \
        "/staff/wards/RIV/replies"
    for target in ("https://evil.example/", "//evil.example/staff/", "/staff/\\evil", "/"):
        client.cookies.clear()
        landed = sign_in(client, next_=target)
        assert urlsplit(str(landed.url)).netloc == "testserver"
        assert landed.url.path == "/staff/", target


def test_signing_out_ends_the_session_even_for_a_copy_of_the_cookie(
        factory: sessionmaker[Session], officer: TestClient) -> None:
    copied = officer.cookies.get(SESSION_COOKIE)
    page = officer.get("/staff/")
    out = officer.post("/staff/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert out.url.path == "/staff/sign-in"
    officer.cookies.set(SESSION_COOKIE, copied or "", path="/staff")
    assert officer.get("/staff/").url.path == "/staff/sign-in"
    with factory() as session:
        assert "sign_out" in session.scalars(select(AuditEntry.action)).all()


def test_a_coordinator_is_sent_to_their_schemes_and_kept_out_of_ward_pages(
        client: TestClient) -> None:
    sign_in(client, "chair@watch.example")
    landed = client.get("/staff/", follow_redirects=False)
    assert landed.status_code == 303 and landed.headers["location"] == "/staff/schemes/"
    assert client.get("/staff/wards/RIV/").status_code == 403


def test_an_administrator_sees_every_ward(client: TestClient) -> None:
    sign_in(client, "admin@police.example")
    overview = client.get("/staff/")
    assert "Every ward" in overview.text
    assert "Riverside" in overview.text and "Hillcrest" in overview.text
    assert client.get("/staff/wards/HIL/replies").status_code == 200


def test_staff_pages_are_never_cached_or_framed(officer: TestClient) -> None:
    page = officer.get("/staff/wards/RIV/")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_forgotten_password_is_reset_through_an_emailed_link_that_works_once(
        factory: sessionmaker[Session], settings: Settings, client: TestClient) -> None:
    outbox = Path(settings.mail.maildir)
    asked = post(client, "/staff/reset", {"email": "nobody@police.example"},
                 form_page="/staff/reset")
    assert "Check your email" in asked.text
    assert not outbox.exists() or not list(mailbox.Maildir(outbox, create=False))
    same = post(client, "/staff/reset", {"email": OFFICER}, form_page="/staff/reset")
    assert same.text == asked.text  # the page says nothing about who has an account
    deliver_due(factory, settings)  # as the delivery loop of `alerts run`, woken, does
    (mail,) = list(mailbox.Maildir(outbox, create=False))
    assert mail["To"] == OFFICER
    body = mail.get_payload(decode=True).decode()
    link = re.search(r"https://alerts\.example\.org(/staff/reset/\S+)", body)
    assert link and "ignore this email" in body
    choose = client.get(link.group(1))
    assert "Choose your new password" in choose.text
    short = client.post(link.group(1), data={"csrf_token": csrf_of(choose.text),
                                             "password": "short", "repeated": "short"})
    assert short.status_code == 400 and 'href="#password"' in short.text
    done = client.post(link.group(1), data={
        "csrf_token": csrf_of(choose.text), "password": "a whole new passphrase",
        "repeated": "a whole new passphrase"})
    assert done.url.path == "/staff/sign-in" and "Your password is changed" in done.text
    assert client.get(link.group(1)).status_code == 400  # spent
    assert sign_in(client, password="a whole new passphrase").url.path == "/staff/"
