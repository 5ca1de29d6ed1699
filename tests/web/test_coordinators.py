"""The coordinators' pages through FastAPI's TestClient, on both stores: a coordinator imports
a CSV into their scheme and sees the bad lines named, messages the members (the email reaches
only the scheme's confirmed members, through the SMTP sink, with List-Unsubscribe and the
how-to-report text), and cannot see or change another scheme's members by any URL. Every
form needs its CSRF token; the export is a download that is never cached.

Adding an address gives one answer whatever its state and shows nobody who has not joined;
a resident already subscribed is emailed an invitation whose link opens a page that changes
nothing until its button is pressed. A name with a line break is refused on the form and in
a file; no cell of the export is a live spreadsheet formula.
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.audit import AuditEntry
from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.web.app import create_app
from alerts.web.coordinators import NOTICES
from subscriptions.base import utcnow
from subscriptions.csv_io import EXPORT_COLUMNS
from subscriptions.personal_data import erase_subscriber
from subscriptions.schemes import add_scheme
from subscriptions.subscribers import Subscriber, Subscription
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import Ward
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
DRAFT = re.compile(r'name="draft" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class World:
    mill_lane: int  # Riverside, kept by Jo
    church_street: int  # Riverside, kept by Sam
    dan: int  # a Church Street member's subscription
    eve: int  # a Riverside subscriber in no scheme


def member(session: Session, ward: Ward, scheme: str, email: str, *,
           confirmed: bool = True) -> Subscription:
    subscription = make_subscriber(session, ward, email, confirmed=confirmed)
    subscription.scheme = scheme
    session.flush()
    return subscription


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    with transaction(factory) as session:
        riverside = make_ward(session, "RIV", "Riverside")
        mill = add_scheme(session, "Mill Lane Watch", "RIV")
        church = add_scheme(session, "Church Street Watch", "RIV")
        member(session, riverside, mill.name, "ann@home.example")
        member(session, riverside, mill.name, "cat@home.example", confirmed=False)
        dan = member(session, riverside, church.name, "dan@home.example")
        eve = make_subscriber(session, riverside, "eve@home.example")
        add_user(session, "jo@watch.example", Role.COORDINATOR, scheme_names=[mill.name],
                 name="Jo Lane", password=PASSWORD)
        add_user(session, "sam@watch.example", Role.COORDINATOR, scheme_names=[church.name],
                 password=PASSWORD)
        add_user(session, "pc.riv@police.example", Role.OFFICER, ward_codes=["RIV"],
                 password=PASSWORD)
        return World(mill.id, church.id, dan.id, eve.id)


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match, "every form carries a CSRF token"
    return match.group(1)


def signed_in(settings: Settings, factory: sessionmaker[Session], email: str) -> TestClient:
    client = TestClient(create_app(factory, settings=settings))
    token = csrf_of(client.get("/staff/sign-in").text)
    answer = client.post("/staff/sign-in", data={"email": email, "password": PASSWORD,
                                                 "csrf_token": token},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def jo(settings: Settings, factory: sessionmaker[Session], world: World) -> TestClient:
    return signed_in(settings, factory, "jo@watch.example")


def snapshot(factory: sessionmaker[Session]) -> tuple[object, ...]:
    """Everything a coordinator could change: subscriptions, messages, outbox, audit."""
    with factory() as session:
        subscriptions = tuple(session.execute(
            select(Subscription.id, Subscription.status, Subscription.scheme,
                   Subscription.frequency).order_by(Subscription.id)))
        return (subscriptions,
                session.scalar(select(func.count()).select_from(Subscriber)),
                session.scalar(select(func.count()).select_from(Message)),
                session.scalar(select(func.count()).select_from(Delivery)),
                session.scalar(select(func.count()).select_from(AuditEntry)
                               .where(AuditEntry.action != "sign_in")))


def text_of(response: Response) -> str:
    """The page's visible words, tags dropped and spaces squeezed, for matching sentences."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


IMPORT = (
    "email,name,frequency\n"
    "gil@home.example,Gil,weekly\n"        # 2
    "not-an-address,Nobody,weekly\n"       # 3: bad
    "hal@home.example,Hal,fortnightly\n"   # 4: bad
    "dan@home.example,Dan,weekly\n"        # 5: on Church Street's list
    "ivy@home.example,Ivy,daily\n"         # 6
)


def test_a_coordinator_imports_sees_bad_lines_messages_only_their_members_and_no_other_scheme(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], world: World
) -> None:
    sink, settings = smtp
    jo = signed_in(settings, factory, "jo@watch.example")

    listing = jo.get("/staff/schemes/")
    assert listing.status_code == 200
    assert "Mill Lane Watch" in listing.text and "Church Street Watch" not in listing.text

    # Import: the good lines land (declared written consent: addresses new to us are
    # confirmed at once), the bad ones are named by line, and nothing is said of Dan.
    form = jo.get(f"/staff/schemes/{world.mill_lane}/import")
    imported = jo.post(f"/staff/schemes/{world.mill_lane}/import",
                       data={"asked": "yes", "written": "yes", "csrf_token": csrf_of(form.text)},
                       files={"file": ("members.csv", IMPORT.encode(), "text/csv")})
    assert imported.status_code == 200
    words = text_of(imported)
    assert "3 addresses read. Each that can join the scheme has been added if it was new " \
        "to us, or otherwise sent an email to confirm or an invitation to accept." in words
    assert "2 lines skipped" in words
    assert "Line 3: email 'not-an-address' is not a valid address" in words
    assert "Line 4: frequency 'fortnightly' is not one of immediate, daily, weekly" in words
    assert "Line 5" not in words
    page = jo.get(f"/staff/schemes/{world.mill_lane}")
    for email in ("ann@home.example", "gil@home.example", "ivy@home.example"):
        assert email in page.text
    for email in ("cat@home.example", "dan@home.example", "eve@home.example"):
        assert email not in page.text

    # Message the members: preview the real email, then send.
    form = jo.get(f"/staff/schemes/{world.mill_lane}/message")
    preview = jo.post(f"/staff/schemes/{world.mill_lane}/message", data={
        "subject": "Bin day moves", "body": "Bins now go out on Tuesday.\n\nThanks, Jo",
        "csrf_token": csrf_of(form.text)})
    assert preview.status_code == 200
    assert "Send to 3 members" in preview.text
    assert "Mill Lane Watch: Bin day moves" in preview.text
    assert '<template shadowrootmode="open">' in preview.text  # the email, whole in the page
    assert "Bins now go out on Tuesday." in preview.text
    draft = DRAFT.search(preview.text)
    assert draft is not None
    sent = jo.post(f"/staff/schemes/{world.mill_lane}/message/send", data={
        "subject": "Bin day moves", "body": "Bins now go out on Tuesday.\n\nThanks, Jo",
        "draft": draft.group(1), "csrf_token": csrf_of(preview.text)}, follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/staff/schemes/{world.mill_lane}/message?sent=3"
    assert "Your message is on its way to 3 members." in text_of(jo.get(sent.headers["location"]))

    report = deliver_due(factory, settings)
    assert report.sent == 3
    assert sorted(r for received in sink.received for r in received.rcpt_tos) == [
        "ann@home.example", "gil@home.example", "ivy@home.example"]
    for received in sink.received:
        message = received.message
        assert message["Subject"] == "Mill Lane Watch: Bin day moves"
        unsubscribe = message["List-Unsubscribe"]
        assert unsubscribe.startswith("<https://alerts.example.org/unsubscribe/")
        assert "<mailto:unsubscribe+" in unsubscribe
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for kind in ("plain", "html"):
            part = message.get_body((kind,))
            assert part is not None
            content = part.get_content()
            assert "Bins now go out on Tuesday." in content
            assert "Jo Lane" in content
            words = re.sub(r"<[^>]+>", "", content)  # 999 is a tap-to-call link in HTML
            assert "call 999" in words and "Crimestoppers" in words
            assert "not the way to report a crime" in content.lower()

    # Church Street is not Jo's: every URL is refused and nothing changes.
    before = snapshot(factory)
    church = f"/staff/schemes/{world.church_street}"
    token = csrf_of(jo.get(f"/staff/schemes/{world.mill_lane}").text)
    attempts = [
        jo.get(church), jo.get(f"{church}/import"), jo.get(f"{church}/export"),
        jo.get(f"{church}/bounces"), jo.get(f"{church}/message"),
        jo.get(f"{church}/members/{world.dan}/remove"),
        jo.post(f"{church}/members", data={"email": "new@home.example", "frequency": "weekly",
                                           "asked": "yes", "written": "yes",
                                           "csrf_token": token}),
        jo.post(f"{church}/members/{world.dan}/remove", data={"csrf_token": token}),
        jo.post(f"{church}/import", data={"asked": "yes", "written": "yes", "csrf_token": token},
                files={"file": ("x.csv", b"email\nnew@home.example\n", "text/csv")}),
        jo.post(f"{church}/message", data={"subject": "Hi", "body": "Hi", "csrf_token": token}),
        jo.post(f"{church}/message/send", data={"subject": "Hi", "body": "Hi",
                                                "draft": "another-draft-key",
                                                "csrf_token": token}),
        # Another scheme's member (and a ward subscriber in no scheme) named in Jo's own URLs.
        jo.get(f"/staff/schemes/{world.mill_lane}/members/{world.dan}/remove"),
        jo.post(f"/staff/schemes/{world.mill_lane}/members/{world.dan}/remove",
                data={"csrf_token": token}),
        jo.post(f"/staff/schemes/{world.mill_lane}/members/{world.eve}/remove",
                data={"csrf_token": token}),
        jo.get("/staff/schemes/99999"),
    ]
    assert [a.status_code for a in attempts] == [403] * len(attempts)
    assert all("dan@home.example" not in a.text for a in attempts)
    assert "Nothing was changed" in attempts[0].text
    assert snapshot(factory) == before


def test_every_form_without_its_csrf_token_is_refused_and_changes_nothing(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    with factory() as session:
        ann = session.scalars(select(Subscription.id).join(Subscriber)
                              .where(Subscriber.email == "ann@home.example")).one()
    mill = f"/staff/schemes/{world.mill_lane}"
    before = snapshot(factory)
    for token in ("", "forged-token"):
        attempts = [
            jo.post(f"{mill}/members", data={"email": "new@home.example", "frequency": "weekly",
                                             "asked": "yes", "csrf_token": token}),
            jo.post(f"{mill}/members/{ann}/remove", data={"csrf_token": token}),
            jo.post(f"{mill}/import", data={"asked": "yes", "csrf_token": token},
                    files={"file": ("x.csv", b"email\nnew@home.example\n", "text/csv")}),
            jo.post(f"{mill}/message", data={"subject": "Hi", "body": "Hi",
                                             "csrf_token": token}),
            jo.post(f"{mill}/message/send", data={"subject": "Hi", "body": "Hi",
                                                  "draft": "a-draft-key",
                                                  "csrf_token": token}),
        ]
        assert [a.status_code for a in attempts] == [403] * len(attempts)
        assert all("could not be accepted" in a.text for a in attempts)
    assert snapshot(factory) == before


def test_a_coordinator_adds_a_member_whose_consent_is_recorded_and_who_is_asked_to_confirm(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    page = jo.get(f"/staff/schemes/{world.mill_lane}")
    added = jo.post(f"/staff/schemes/{world.mill_lane}/members", data={
        "email": "kit@home.example", "name": "Kit", "frequency": "daily", "asked": "yes",
        "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert added.status_code == 303
    shown = jo.get(added.headers["location"])
    assert "If this address can join the scheme, we have sent it an invitation." in shown.text
    assert "kit@home.example" not in shown.text  # not until Kit confirms
    with factory() as session:
        kit = session.scalars(select(Subscription).join(Subscriber)
                              .where(Subscriber.email == "kit@home.example")).one()
        assert (kit.status, kit.scheme, kit.frequency, kit.consent_method) == (
            "pending", "Mill Lane Watch", "daily", "coordinator")
        assert kit.consent_source.startswith(f"/staff/schemes/{world.mill_lane}/members, by "
                                             "coordinator ")
        assert session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.subscriber_id == kit.subscriber_id)) == 1


def test_the_add_form_names_each_problem_and_keeps_what_was_typed(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    page = jo.get(f"/staff/schemes/{world.mill_lane}")
    before = snapshot(factory)
    refused = jo.post(f"/staff/schemes/{world.mill_lane}/members", data={
        "email": "kit@home.example", "name": "Kit", "frequency": "weekly",
        "csrf_token": csrf_of(page.text)})
    assert refused.status_code == 400
    assert 'class="error-summary"' in refused.text
    assert '<a href="#asked">Confirm that the resident asked to join the scheme</a>' \
        in refused.text
    assert 'value="kit@home.example"' in refused.text and 'value="Kit"' in refused.text
    refused = jo.post(f"/staff/schemes/{world.mill_lane}/members", data={
        "email": "kit@", "frequency": "weekly", "asked": "yes",
        "csrf_token": csrf_of(page.text)})
    assert refused.status_code == 400
    assert '<a href="#email">Enter an email address in the right format' in refused.text
    assert snapshot(factory) == before


def test_an_import_without_a_file_or_the_declaration_is_refused_with_an_error_summary(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    form = jo.get(f"/staff/schemes/{world.mill_lane}/import")
    before = snapshot(factory)
    no_file = jo.post(f"/staff/schemes/{world.mill_lane}/import",
                      data={"asked": "yes", "written": "yes", "csrf_token": csrf_of(form.text)},
                      files={"file": ("", b"", "application/octet-stream")})
    assert no_file.status_code == 400
    assert '<a href="#file">Choose a CSV file to import</a>' in no_file.text
    assert 'id="written" name="written" value="yes" aria-describedby="written-hint" checked' \
        in no_file.text
    undeclared = jo.post(f"/staff/schemes/{world.mill_lane}/import",
                         data={"csrf_token": csrf_of(form.text)},
                         files={"file": ("m.csv", b"email\nkit@home.example\n", "text/csv")})
    assert undeclared.status_code == 400
    assert '<a href="#asked">Confirm that everyone in the file asked to join the scheme</a>' \
        in undeclared.text
    assert snapshot(factory) == before


def test_removing_a_member_asks_first_then_unsubscribes_them(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    with factory() as session:
        ann = session.scalars(select(Subscription.id).join(Subscriber)
                              .where(Subscriber.email == "ann@home.example")).one()
    ask = jo.get(f"/staff/schemes/{world.mill_lane}/members/{ann}/remove")
    assert ask.status_code == 200
    assert "will be unsubscribed from Riverside" in ask.text
    done = jo.post(f"/staff/schemes/{world.mill_lane}/members/{ann}/remove",
                   data={"csrf_token": csrf_of(ask.text)}, follow_redirects=False)
    assert done.status_code == 303
    assert "Removed." in jo.get(done.headers["location"]).text
    with factory() as session:
        assert session.get_one(Subscription, ann).status == "unsubscribed"
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None
        assert (entry.actor, entry.action, entry.target) == (
            "jo@watch.example", "scheme.member.remove", f"subscription {ann}")


def test_the_export_is_a_csv_download_that_is_never_cached(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    answer = jo.get(f"/staff/schemes/{world.mill_lane}/export")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-disposition"] == \
        'attachment; filename="mill-lane-watch-members.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert [(r["email"], r["status"]) for r in rows] == [("ann@home.example", "confirmed")]


def test_who_bounced_names_the_suppressed_members_and_why(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    with transaction(factory) as session:
        suppress(session, "ann@home.example", SuppressionReason.HARD_BOUNCE,
                 "hard bounce: mailbox does not exist 5.1.1")
        suppress(session, "dan@home.example", SuppressionReason.COMPLAINT)
    page = jo.get(f"/staff/schemes/{world.mill_lane}/bounces")
    assert page.status_code == 200
    words = text_of(page)
    # "Why": the label each cell shows on a phone (seen there, hidden from screen readers).
    assert "ann@home.example Why Their address bounced hard bounce: mailbox does not exist" \
        in words
    assert "dan@home.example" not in words
    assert "suppressed" in jo.get(f"/staff/schemes/{world.mill_lane}").text


def test_a_message_with_nothing_in_it_is_refused_with_an_error_summary(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    form = jo.get(f"/staff/schemes/{world.mill_lane}/message")
    refused = jo.post(f"/staff/schemes/{world.mill_lane}/message", data={
        "subject": "", "body": "  ", "csrf_token": csrf_of(form.text)})
    assert refused.status_code == 400
    assert '<a href="#subject">Enter a subject</a>' in refused.text
    assert '<a href="#body">Enter the message</a>' in refused.text


def test_an_officer_keeps_their_wards_schemes_and_a_visitor_is_sent_to_sign_in(
    settings: Settings, factory: sessionmaker[Session], world: World
) -> None:
    officer = signed_in(settings, factory, "pc.riv@police.example")
    listing = officer.get("/staff/schemes/")
    assert "Mill Lane Watch" in listing.text and "Church Street Watch" in listing.text
    assert officer.get(f"/staff/schemes/{world.church_street}").status_code == 200
    visitor = TestClient(create_app(factory, settings=settings))
    answer = visitor.get(f"/staff/schemes/{world.mill_lane}/export", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/staff/sign-in?next=")


# --- a coordinator stays inside their scheme ----------------------------------------------------

def add_on_the_form(jo: TestClient, scheme_id: int, email: str, **fields: str) -> Response:
    page = jo.get(f"/staff/schemes/{scheme_id}")
    return jo.post(f"/staff/schemes/{scheme_id}/members", data={
        "email": email, "name": "", "frequency": "weekly", "asked": "yes",
        "csrf_token": csrf_of(page.text), **fields}, follow_redirects=False)


@pytest.mark.parametrize("written", ["", "yes"])
def test_the_add_form_gives_one_answer_whatever_the_address_and_shows_none_of_them(
    factory: sessionmaker[Session], jo: TestClient, world: World, written: str
) -> None:
    with transaction(factory) as session:
        riverside = session.get_one(Ward, session.get_one(Subscription, world.eve).ward_id)
        make_subscriber(session, riverside, "left@home.example").status = "unsubscribed"
        suppress(session, "kim@home.example", SuppressionReason.COMPLAINT)
        gone = make_subscriber(session, riverside, "gone@home.example")
        erase_subscriber(session, gone.subscriber_id, now=utcnow())
    addresses = ["eve@home.example", "cat@home.example", "dan@home.example",
                 "left@home.example", "kim@home.example", "gone@home.example",
                 "nobody@home.example"]
    before = text_of(jo.get(f"/staff/schemes/{world.mill_lane}"))
    answers = {email: add_on_the_form(jo, world.mill_lane, email, written=written)
               for email in addresses}
    assert {(a.status_code, a.headers["location"]) for a in answers.values()} == {
        (303, f"/staff/schemes/{world.mill_lane}?done=invited"
              + ("-written" if written else ""))}
    after = text_of(jo.get(answers["eve@home.example"].headers["location"]))
    notice = NOTICES["invited-written" if written else "invited"]
    assert notice in after
    for email in addresses[:-1]:
        assert email not in after
    if written:  # written consent for an address new to us: a member at once
        assert "nobody@home.example" in after
    else:  # nobody has joined, so the page is as it was, but for the one answer
        assert after.replace(f"{notice} ", "") == before
    with factory() as session:
        assert session.get_one(Subscription, world.eve).scheme is None
        assert session.get_one(Subscription, world.dan).scheme == "Church Street Watch"
        left = session.scalars(select(Subscription).join(Subscriber)
                               .where(Subscriber.email == "left@home.example")).one()
        assert left.status == "unsubscribed"
        for email in ("kim@home.example", "gone@home.example"):
            assert session.scalar(select(Subscriber).where(Subscriber.email == email)) is None


INVITE_LINK = re.compile(r"https://alerts\.example\.org(/scheme-invitation/[^\s<\"]+)")


def invitation_link(factory: sessionmaker[Session], email: str) -> str:
    with factory() as session:
        [text] = session.scalars(
            select(Message.text).join(Delivery).join(Subscriber,
                                                     Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == email))
    found = INVITE_LINK.search(text)
    assert found, text
    return found.group(1)


def test_an_invited_resident_joins_only_by_pressing_the_button_their_link_opens(
    factory: sessionmaker[Session], settings: Settings, jo: TestClient, world: World
) -> None:
    assert add_on_the_form(jo, world.mill_lane, "eve@home.example").status_code == 303
    link = invitation_link(factory, "eve@home.example")
    resident = TestClient(create_app(factory, settings=settings))
    before = snapshot(factory)
    for _ in range(2):  # a mail scanner, then the resident: opening changes nothing
        opened = resident.get(link)
        assert opened.status_code == 200
        assert opened.headers["cache-control"] == "no-store"
        assert "set-cookie" not in opened.headers
        words = text_of(opened)
        assert "Join Mill Lane Watch" in words
        assert "Mill Lane Watch is a Neighbourhood Watch scheme in Riverside." in words
        assert "the scheme's coordinator sees your name and email address" in words
    assert snapshot(factory) == before
    assert "eve@home.example" not in jo.get(f"/staff/schemes/{world.mill_lane}").text

    joined = resident.post(link)
    assert joined.status_code == 200
    assert "You have joined Mill Lane Watch" in text_of(joined)
    assert resident.post(link).status_code == 200  # pressing again changes nothing more
    with factory() as session:
        eve = session.get_one(Subscription, world.eve)
        assert (eve.scheme, eve.status) == ("Mill Lane Watch", "confirmed")
        joins = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "scheme.member.join")).all()
        assert [(e.target, e.detail) for e in joins] == [
            (f"subscription {world.eve}", f"scheme {world.mill_lane}; accepted an invitation")]
    assert "eve@home.example" in jo.get(f"/staff/schemes/{world.mill_lane}").text


def test_an_invitation_link_altered_expired_or_overtaken_joins_nothing(
    factory: sessionmaker[Session], settings: Settings, jo: TestClient, world: World
) -> None:
    add_on_the_form(jo, world.mill_lane, "eve@home.example")
    link = invitation_link(factory, "eve@home.example")
    resident = TestClient(create_app(factory, settings=settings))
    other_scheme = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    for bad in (other_scheme, "/scheme-invitation/not-a-token"):
        assert resident.get(bad).status_code == 400
        refused = resident.post(bad)
        assert refused.status_code == 400
        assert "This invitation cannot be used" in refused.text
    with transaction(factory) as session:  # Eve leaves the ward before she accepts
        session.get_one(Subscription, world.eve).status = "unsubscribed"
    assert resident.post(link).status_code == 400
    with factory() as session:
        eve = session.get_one(Subscription, world.eve)
        assert (eve.scheme, eve.status) == (None, "unsubscribed")


def test_a_name_with_a_line_break_is_refused_on_the_form_and_in_a_file(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    before = snapshot(factory)
    refused = add_on_the_form(jo, world.mill_lane, "kit@home.example",
                              name="Kit\r\nBcc: everyone@home.example")
    assert refused.status_code == 400
    assert '<a href="#name">The name must not contain a line break, a tab or another ' \
        'control character</a>' in refused.text
    assert 'aria-invalid="true"' in refused.text.split('id="name"')[1].split(">")[0]
    form = jo.get(f"/staff/schemes/{world.mill_lane}/import")
    imported = jo.post(f"/staff/schemes/{world.mill_lane}/import",
                       data={"asked": "yes", "csrf_token": csrf_of(form.text)},
                       files={"file": ("m.csv", b'email,name\nkit@home.example,"Kit\nBcc"\n',
                                       "text/csv")})
    assert "name must not contain a line break" in text_of(imported)
    assert snapshot(factory)[:4] == before[:4]


def test_no_cell_of_the_exported_file_is_a_live_spreadsheet_formula(
    factory: sessionmaker[Session], jo: TestClient, world: World
) -> None:
    with transaction(factory) as session:
        riverside = session.get_one(Ward, session.get_one(Subscription, world.eve).ward_id)
        member(session, riverside, "Mill Lane Watch", "evil@home.example").subscriber.name = \
            '=HYPERLINK("https://evil.example/","Update your details")'
    rows = list(csv.reader(io.StringIO(jo.get(f"/staff/schemes/{world.mill_lane}/export").text)))
    assert [row[2] for row in rows[1:]] == [
        "", "'=HYPERLINK(\"https://evil.example/\",\"Update your details\")"]
