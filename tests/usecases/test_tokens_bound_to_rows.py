"""Every credential is bound to the row it was issued for, not to a reusable id.

A row deleted and written again gets a new id (ids are never reused) and a new nonce, and
every token, cookie and link of the old row is refused: staff sessions, reset links and
invitations, and a resident's confirmation, preferences, unsubscribe, "my data", vote and
reply+/bounces+ addresses. The old tokens are taken from real emails and real cookies, as a
stranger who kept them would have them. Each part also re-creates a row under the very id
it had, which only the nonce can tell apart.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import parseaddr

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.signin import reset_token, session_token, user_for_reset, user_for_token
from alerts.accounts.users import Role, User, add_user, get_user, remove_user, set_password
from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.inbound.replies import Reply
from alerts.mail.messages import Message
from alerts.sources.items import Item
from alerts.usecases.my_data import erase_data
from alerts.usecases.posting import post_urgent
from alerts.usecases.scheme_invitations import queue_invitations
from alerts.web.staff import SESSION_COOKIE
from subscriptions.base import utcnow
from subscriptions.schemes import Scheme, add_scheme
from subscriptions.subscribers import Status, Subscriber, Subscription
from subscriptions.suppression import Suppression
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward
from tests.servers import Received, SinkHandler
from tests.web.test_residents import client_for, csrf_of

PASSWORD = "correct horse battery staple"
LINK = re.compile(
    r"https://alerts\.example\.org(/(?:preferences|confirm|my-data|useful|scheme-invitation)/"
    r"[^\s\"<>]+)")


def links_in(message: EmailMessage, kind: str) -> list[str]:
    body = message.get_body(("plain",))
    assert body is not None
    return [path for path in LINK.findall(body.get_content()) if path.startswith(f"/{kind}/")]


def mail_to(sink: SinkHandler, address: str) -> list[Received]:
    return [received for received in sink.received if received.rcpt_tos == [address]]


def ids_of(factory: sessionmaker[Session], email: str) -> tuple[int, int]:
    with factory() as session:
        subscriber, subscription = session.execute(
            select(Subscriber.id, Subscription.id).join(Subscription)
            .where(Subscriber.email == email)).one()
        return subscriber, subscription


# Staff: sessions, reset links, invitations.

def test_a_removed_officers_open_session_never_signs_in_as_the_next_account(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
        add_user(session, "pc.gone@police.example", Role.OFFICER, ward_codes=["RIV"],
                 password=PASSWORD)
    client = client_for(factory, settings)
    form = client.get("/staff/sign-in").text
    signed_in = client.post("/staff/sign-in", data={
        "email": "pc.gone@police.example", "password": PASSWORD, "next": "/staff/",
        "csrf_token": csrf_of(form)})
    assert signed_in.url.path == "/staff/" and client.cookies.get(SESSION_COOKIE)
    with factory.begin() as session:
        gone = get_user(session, "pc.gone@police.example")
        old_id = gone.id
        remove_user(session, gone)
        newcomer = add_user(session, "new.admin@police.example", Role.ADMIN, password=PASSWORD)
        new_id = newcomer.id
    page = client.get("/staff/", follow_redirects=False)
    assert page.status_code in (302, 303) and "/staff/sign-in" in page.headers["location"]
    assert new_id != old_id, "ids are never given twice"


def test_a_session_and_a_reset_link_are_refused_for_an_account_written_again_under_its_id(
    session: Session, settings: Settings
) -> None:
    secret = settings.web.secret_key
    invitee = add_user(session, "invited@watch.example", Role.ADMIN)
    officer = add_user(session, "officer@police.example", Role.ADMIN, password=PASSWORD)
    invitation, cookie = reset_token(secret, invitee), session_token(secret, officer)
    ids = invitee.id, officer.id
    for user in (invitee, officer):
        remove_user(session, user)
    # The same ids again (a restored backup, a hand-made row): no password, like the invitee.
    for ident, email in zip(ids, ("someone@watch.example", "other@police.example"), strict=True):
        session.execute(insert(User).values(id=ident, email=email, role=Role.ADMIN,
                                            name="", session_version=1, created_at=utcnow()))
    session.expire_all()
    assert user_for_reset(session, secret, invitation) is None
    assert user_for_token(session, secret, cookie) is None


def test_an_unused_invitation_never_sets_the_password_of_the_next_account_without_one(
    session: Session, settings: Settings
) -> None:
    secret = settings.web.secret_key
    invitee = add_user(session, "invited@watch.example", Role.ADMIN)
    invitation = reset_token(secret, invitee)
    assert user_for_reset(session, secret, invitation) is invitee
    remove_user(session, invitee)
    newcomer = add_user(session, "next@police.example", Role.ADMIN)
    assert user_for_reset(session, secret, invitation) is None
    assert user_for_reset(session, secret, reset_token(secret, newcomer)) is newcomer


def test_a_password_change_ends_earlier_reset_links_and_sessions(
    session: Session, settings: Settings
) -> None:
    secret = settings.web.secret_key
    officer = add_user(session, "officer@police.example", Role.ADMIN, password=PASSWORD)
    link, cookie = reset_token(secret, officer), session_token(secret, officer)
    nonce = officer.nonce
    set_password(session, officer, "another long pass phrase")
    assert officer.nonce != nonce
    assert user_for_reset(session, secret, link) is None
    assert user_for_token(session, secret, cookie) is None


# Residents: the links and addresses in their emails.

def test_an_erased_residents_links_and_addresses_act_on_nobody_who_comes_after(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, riv, "jo@home.example", name="Jo")
        post_urgent(session, settings, ward_code="RIV", title="Road closed",
                    body="Avoid the high street.", now=utcnow())
    deliver_due(factory, settings)
    client = client_for(factory, settings)
    client.post("/my-data", data={"email": "jo@home.example",
                                  "csrf_token": csrf_of(client.get("/my-data").text)})
    deliver_due(factory, settings)
    alert, data_mail = mail_to(sink, "jo@home.example")
    [preferences] = links_in(alert.message, "preferences")
    [my_data] = links_in(data_mail.message, "my-data")
    unsubscribe = re.findall(r"<https://alerts\.example\.org(/unsubscribe/[^>]+)>",
                             alert.message["List-Unsubscribe"])[0]
    reply_to = parseaddr(alert.message["Reply-To"])[1]
    bounces_to = alert.mail_from
    jo_ids = ids_of(factory, "jo@home.example")
    with factory.begin() as session:
        assert erase_data(session, jo_ids[0], now=utcnow())

    # Kim subscribes next and gets an alert of her own: new rows where Jo's were.
    with factory.begin() as session:
        make_subscriber(session, get_ward(session, "RIV"), "kim@home.example", name="Kim")
        post_urgent(session, settings, ward_code="RIV", title="Road open again",
                    body="The high street is open.", now=utcnow())
    deliver_due(factory, settings)
    kim_ids = ids_of(factory, "kim@home.example")
    assert kim_ids[0] > jo_ids[0] and kim_ids[1] > jo_ids[1], "ids are never given twice"

    assert client.get(preferences).status_code in (400, 404)
    assert "kim@home.example" not in client.get(my_data).text
    assert client.get(my_data).status_code in (400, 404)
    one_click = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code in (400, 404)
    intake = Intake(factory, settings)
    reply = (f"From: jo@home.example\r\nTo: {reply_to}\r\nSubject: Re: Road closed\r\n"
             "Message-ID: <old-reply@home.example>\r\n\r\nThanks for this.\r\n").encode()
    intake.process(reply, via=Via.FILE, envelope_recipients=(reply_to,))
    bounce = _hard_bounce(bounces_to, "kim@home.example")
    intake.process(bounce, via=Via.FILE, envelope_sender="", envelope_recipients=(bounces_to,))
    with factory() as session:
        kim = session.scalars(select(Subscription).join(Subscriber)
                              .where(Subscriber.email == "kim@home.example")).one()
        assert kim.status == Status.CONFIRMED, "still subscribed"
        assert session.scalar(select(func.count()).select_from(Reply)) == 0, \
            "no reply is filed under Kim"
        assert session.scalar(select(func.count()).select_from(Suppression)
                              .where(Suppression.email == "kim@home.example")) == 0


def _hard_bounce(to: str, failed: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.home.example\r\nTo: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.home.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.home.example\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n--B--\r\n"
    ).encode()


def test_an_erased_residents_confirmation_link_confirms_nobody_who_comes_after(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
    client = client_for(factory, settings)
    for email in ("jo@home.example", "kim@home.example"):
        if email == "kim@home.example":
            with factory.begin() as session:
                assert erase_data(session, ids_of(factory, "jo@home.example")[0], now=utcnow())
        client.post("/subscribe", data={"email": email, "wards": ["RIV"], "frequency": "weekly",
                                        "csrf_token": csrf_of(client.get("/subscribe").text)})
        deliver_due(factory, settings)
    [jo_confirmation] = mail_to(sink, "jo@home.example")
    [old_link] = links_in(jo_confirmation.message, "confirm")
    opened = client.get(old_link)
    if opened.status_code == 200 and "csrf_token" in opened.text:
        client.post(old_link, data={"csrf_token": csrf_of(opened.text)})
    with factory() as session:
        assert session.scalars(select(Subscription.status).join(Subscriber)
                               .where(Subscriber.email == "kim@home.example")).one() \
            == Status.PENDING, "Kim confirms with her own link, nobody else's"


def test_rows_written_again_under_their_old_ids_refuse_every_old_link_and_address(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    """What only the nonce can tell: the same ids, a different row (a restored backup)."""
    sink, settings = smtp
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        jo = make_subscriber(session, riv, "jo@home.example", name="Jo")
        scheme = add_scheme(session, "Mill Lane Watch", "RIV")
        post_urgent(session, settings, ward_code="RIV", title="Road closed",
                    body="Avoid the high street.", now=utcnow())
        queue_invitations(session, settings, scheme, [jo.id], now=utcnow())
    deliver_due(factory, settings)
    alert, invitation_mail = sorted(mail_to(sink, "jo@home.example"),
                                    key=lambda mail: "Invitation" in mail.message["Subject"])
    [preferences] = links_in(alert.message, "preferences")
    [invitation] = links_in(invitation_mail.message, "scheme-invitation")
    votes = links_in(alert.message, "useful")
    assert votes, "an alert asks whether it was useful"
    reply_to = parseaddr(alert.message["Reply-To"])[1]
    mailto = re.findall(r"<mailto:([^>?]+)", alert.message["List-Unsubscribe"])[0]
    with factory.begin() as session:
        delivery = session.scalars(select(Delivery).join(Message)
                                   .where(Message.kind == "alert")).one()
        message = session.get_one(Message, delivery.message_id)
        subscriber, subscription = ids_of(factory, "jo@home.example")
        kept = {"delivery": (delivery.id, delivery.message_id), "message": message.id}
        assert erase_data(session, subscriber, now=utcnow())
        # The alert itself goes too, then comes back under its id as another message.
        item_ids = list(session.scalars(select(Item.id)))
        session.execute(text("DELETE FROM message_items"))
        session.execute(text("DELETE FROM deliveries"))
        session.execute(text("DELETE FROM messages WHERE id <> :id"), {"id": kept["message"]})
        session.delete(session.get_one(Message, kept["message"]))
        session.flush()
        session.execute(insert(Message).values(
            id=kept["message"], ward_id=riv.id, kind="alert", subject="Another", html="",
            text="", created_at=utcnow()))
        session.execute(insert(Subscriber).values(
            id=subscriber, email="kim@home.example", name="Kim", created_at=utcnow()))
        session.execute(insert(Subscription).values(
            id=subscription, subscriber_id=subscriber, ward_id=riv.id, frequency="weekly",
            status=Status.CONFIRMED, consent_at=utcnow(), consent_method="officer-cli",
            consent_wording="v1", created_at=utcnow()))
        session.execute(insert(Delivery).values(
            id=kept["delivery"][0], message_id=kept["message"], subscriber_id=subscriber,
            status="sent", attempts=1, next_attempt_at=utcnow(), created_at=utcnow()))
        assert item_ids
    client = client_for(factory, settings)
    assert client.get(preferences).status_code in (400, 404)
    assert client.post(invitation).status_code in (400, 404)
    for vote in votes:
        opened = client.get(vote)
        assert opened.status_code in (400, 404)
        assert client.post(vote, data={"useful": "yes"}).status_code in (400, 404)
    intake = Intake(factory, settings)
    reply = (f"From: jo@home.example\r\nTo: {reply_to}\r\nSubject: Re: Road closed\r\n"
             "Message-ID: <old-reply-2@home.example>\r\n\r\nThanks.\r\n").encode()
    intake.process(reply, via=Via.FILE, envelope_recipients=(reply_to,))
    leave = (f"From: jo@home.example\r\nTo: {mailto}\r\nSubject: unsubscribe\r\n"
             "Message-ID: <old-leave@home.example>\r\n\r\nunsubscribe\r\n").encode()
    intake.process(leave, via=Via.FILE, envelope_recipients=(mailto,))
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Reply)) == 0
        kim = session.scalars(select(Subscription)).one()
        assert (kim.status, kim.scheme) == (Status.CONFIRMED, None), \
            "still subscribed, and in no scheme she did not join"


def test_ids_are_never_given_twice_even_after_the_newest_row_is_deleted(
    session: Session,
) -> None:
    riv = make_ward(session, "RIV", "Riverside")
    first = make_subscriber(session, riv, "jo@home.example")
    session.flush()
    old = first.subscriber_id, first.id
    session.delete(session.get_one(Subscriber, first.subscriber_id))
    session.flush()
    second = make_subscriber(session, riv, "kim@home.example")
    session.flush()
    assert second.subscriber_id > old[0] and second.id > old[1]
    scheme = Scheme(name="Mill Lane", ward_id=riv.id)
    session.add(scheme)
    session.flush()
    gone = scheme.id
    session.delete(scheme)
    session.flush()
    again = Scheme(name="Mill Lane", ward_id=riv.id)
    session.add(again)
    session.flush()
    assert again.id > gone
