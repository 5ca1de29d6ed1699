"""The coordinators' service (alerts.usecases.coordinators), on both stores: who keeps which scheme,
adding and removing members with consent recorded, CSV import and export, who bounced, and
the message to a scheme's members (only its confirmed members, through the outbox, at most a
few a day). Every boundary is enforced here, whatever page or command asks.

A coordinator stays inside their scheme: they see only the residents who joined it; adding
an address says nothing about it and changes nothing for a resident already subscribed
(who is invited instead); written consent overrides no unsubscribe, suppression or
erasure; a name with a line break is refused; no exported cell is a live formula.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import alerts.usecases.coordinators as coordinators
from alerts.accounts.access import Forbidden, Principal, command_line_principal, principal_for
from alerts.accounts.audit import AuditEntry
from alerts.accounts.users import Role, add_user
from alerts.cli import cli
from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.inbound.journal import InboundRecord
from alerts.mail.messages import Message, MessageKind
from alerts.usecases.coordinators import (
    MESSAGES_PER_DAY,
    CoordinatorError,
    MessageErrors,
    add_member,
    bounce_report,
    export_members,
    import_members,
    kept_schemes,
    member_of,
    preview_message,
    remove_member,
    send_message,
    view_scheme,
)
from subscriptions.base import utcnow
from subscriptions.consent import COORDINATOR_WORDING, ConsentMethod
from subscriptions.csv_io import EXPORT_COLUMNS
from subscriptions.personal_data import erase_subscriber
from subscriptions.schemes import Scheme, add_scheme
from subscriptions.subscribers import Frequency, Status, Subscriber, Subscription
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import Ward
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler

NOW = utcnow()


@dataclass(frozen=True)
class World:
    """Two schemes in Riverside, one in Hillside, and the people who keep them."""

    mill_lane: int  # Riverside, kept by Jo
    church_street: int  # Riverside, kept by Sam
    hill_top: int  # Hillside
    jo: Principal
    sam: Principal
    officer: Principal  # serves Riverside
    hill_officer: Principal  # serves Hillside
    admin: Principal


def principal(session: Session, email: str, role: Role, **kwargs: Any) -> Principal:
    return principal_for(session, add_user(session, email, role, **kwargs))


def member(session: Session, ward: Ward, scheme: str, email: str, *, confirmed: bool = True,
           name: str = "", frequency: Frequency = Frequency.WEEKLY) -> Subscription:
    subscription = make_subscriber(session, ward, email, confirmed=confirmed, name=name,
                                   frequency=frequency)
    subscription.scheme = scheme
    session.flush()
    return subscription


@pytest.fixture
def world(factory: sessionmaker[Session]) -> World:
    with transaction(factory) as session:
        riverside, hillside = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL")
        mill = add_scheme(session, "Mill Lane Watch", "RIV")
        church = add_scheme(session, "Church Street Watch", "RIV")
        hill = add_scheme(session, "Hill Top Watch", "HIL")
        member(session, riverside, mill.name, "ann@home.example", name="Ann")
        member(session, riverside, mill.name, "bob@home.example", name="Bob")
        member(session, riverside, mill.name, "cat@home.example", confirmed=False)
        member(session, riverside, church.name, "dan@home.example", name="Dan")
        make_subscriber(session, riverside, "eve@home.example")  # in the ward, no scheme
        member(session, hillside, hill.name, "fay@home.example")
        return World(
            mill.id, church.id, hill.id,
            jo=principal(session, "jo@watch.example", Role.COORDINATOR,
                         scheme_names=[mill.name], name="Jo Lane", password=None),
            sam=principal(session, "sam@watch.example", Role.COORDINATOR,
                          scheme_names=[church.name]),
            officer=principal(session, "pc.riv@police.example", Role.OFFICER,
                              ward_codes=["RIV"]),
            hill_officer=principal(session, "pc.hil@police.example", Role.OFFICER,
                                   ward_codes=["HIL"]),
            admin=principal(session, "admin@police.example", Role.ADMIN),
        )


def snapshot(factory: sessionmaker[Session]) -> tuple[object, ...]:
    """Everything a coordinator could change: subscriptions, messages, outbox, audit."""
    with factory() as session:
        subscriptions = tuple(session.execute(
            select(Subscription.id, Subscription.status, Subscription.scheme,
                   Subscription.frequency, Subscription.consent_method)
            .order_by(Subscription.id)))
        return (subscriptions,
                session.scalar(select(func.count()).select_from(Subscriber)),
                session.scalar(select(func.count()).select_from(Message)),
                session.scalar(select(func.count()).select_from(Delivery)),
                session.scalar(select(func.count()).select_from(AuditEntry)))


def audit(factory: sessionmaker[Session]) -> list[AuditEntry]:
    with factory() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def subscription_of(session: Session, email: str, ward_code: str = "RIV") -> Subscription:
    return session.scalars(
        select(Subscription).join(Subscriber).join(Ward, Ward.id == Subscription.ward_id)
        .where(Subscriber.email == email, Ward.code == ward_code)).one()


# --- who keeps what ---------------------------------------------------------------------------

def test_a_coordinator_keeps_their_own_schemes_an_officer_their_wards_an_admin_every_one(
    factory: sessionmaker[Session], world: World
) -> None:
    with factory() as session:
        def names(who: Principal) -> list[str]:
            return [s.name for s in kept_schemes(session, who)]

        assert names(world.jo) == ["Mill Lane Watch"]
        assert names(world.sam) == ["Church Street Watch"]
        assert names(world.officer) == ["Church Street Watch", "Mill Lane Watch"]
        assert names(world.hill_officer) == ["Hill Top Watch"]
        assert names(world.admin) == ["Church Street Watch", "Hill Top Watch", "Mill Lane Watch"]
        mill = kept_schemes(session, world.jo)[0]
        assert (mill.ward_code, mill.members, mill.confirmed) == ("RIV", 2, 2)


def test_a_coordinator_sees_only_the_members_who_joined_and_what_a_message_would_reach(
    factory: sessionmaker[Session], world: World
) -> None:
    # Cat was added and never confirmed: showing her would tell Jo her address was new to us.
    with factory() as session:
        view = view_scheme(session, world.jo, world.mill_lane, now=NOW)
        exported = io.StringIO()
        export_members(session, world.jo, world.mill_lane, exported, now=NOW)
    assert [(m.email, m.status) for m in view.members] == [
        ("ann@home.example", "confirmed"), ("bob@home.example", "confirmed")]
    assert [r["email"] for r in csv.DictReader(io.StringIO(exported.getvalue()))] == [
        "ann@home.example", "bob@home.example"]
    assert view.reachable == 2 and view.messages_left == MESSAGES_PER_DAY


def every_action(settings: Settings, who: Principal, scheme_id: int,
                 subscription_id: int) -> dict[str, Callable[[Session], object]]:
    """Each thing a coordinator can do, aimed at `scheme_id`."""
    return {
        "view": lambda s: view_scheme(s, who, scheme_id, now=NOW),
        "member": lambda s: member_of(s, who, scheme_id, subscription_id),
        "add": lambda s: add_member(s, settings, who, scheme_id, email="new@home.example",
                                    name="", frequency=Frequency.WEEKLY, resident_asked=True,
                                    prior_written=True, where="test", now=NOW),
        "remove": lambda s: remove_member(s, who, scheme_id, subscription_id, now=NOW),
        "import": lambda s: import_members(s, settings, who, scheme_id,
                                           b"email\nnew@home.example\n", resident_asked=True,
                                           prior_written=True, where="test", now=NOW),
        "export": lambda s: export_members(s, who, scheme_id, io.StringIO(), now=NOW),
        "bounces": lambda s: bounce_report(s, who, scheme_id, now=NOW),
        "preview": lambda s: preview_message(s, settings, who, scheme_id, subject="Hello",
                                             body="Hi all", now=NOW),
        "send": lambda s: send_message(s, settings, who, scheme_id, subject="Hello",
                                       body="Hi all", draft_key="draft-key-1", now=NOW),
    }


@pytest.mark.parametrize("action", ["view", "member", "add", "remove", "import", "export",
                                    "bounces", "preview", "send"])
def test_a_coordinator_can_neither_see_nor_change_another_schemes_members(
    factory: sessionmaker[Session], settings: Settings, world: World, action: str
) -> None:
    with factory() as session:
        dan = subscription_of(session, "dan@home.example").id
    before = snapshot(factory)
    for scheme_id in (world.church_street, world.hill_top, 9999):
        with pytest.raises(Forbidden), transaction(factory) as session:
            every_action(settings, world.jo, scheme_id, dan)[action](session)
    assert snapshot(factory) == before


@pytest.mark.parametrize("action", ["member", "remove"])
def test_another_schemes_member_named_in_ones_own_scheme_is_refused(
    factory: sessionmaker[Session], settings: Settings, world: World, action: str
) -> None:
    with factory() as session:
        others = [subscription_of(session, email).id
                  for email in ("dan@home.example", "eve@home.example")]
        others.append(subscription_of(session, "fay@home.example", "HIL").id)
    before = snapshot(factory)
    for subscription_id in (*others, 9999):
        with pytest.raises(Forbidden, match="not a member of your scheme"), \
                transaction(factory) as session:
            every_action(settings, world.jo, world.mill_lane, subscription_id)[action](session)
    assert snapshot(factory) == before


def test_officers_keep_their_wards_schemes_and_no_others(
    factory: sessionmaker[Session], world: World
) -> None:
    with factory() as session:
        assert view_scheme(session, world.officer, world.mill_lane, now=NOW).name \
            == "Mill Lane Watch"
        assert view_scheme(session, world.admin, world.hill_top, now=NOW).name \
            == "Hill Top Watch"
        with pytest.raises(Forbidden):
            view_scheme(session, world.hill_officer, world.mill_lane, now=NOW)


# --- adding and removing ------------------------------------------------------------------------

def add(factory: sessionmaker[Session], settings: Settings, who: Principal, scheme_id: int,
        email: str, *, name: str = "", written: bool = False,
        where: str = "page") -> object:
    with transaction(factory) as session:
        return add_member(session, settings, who, scheme_id, email=email, name=name,
                          frequency=Frequency.WEEKLY, resident_asked=True,
                          prior_written=written, where=where, now=NOW)


def mail_to(factory: sessionmaker[Session], email: str) -> list[Message]:
    with factory() as session:
        return list(session.scalars(
            select(Message).join(Delivery).join(Subscriber,
                                                Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == email).order_by(Message.id)))


def test_a_member_added_by_hand_is_asked_to_confirm_and_the_consent_names_the_page(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with transaction(factory) as session:
        add_member(session, settings, world.jo, world.mill_lane, email=" Gus@Home.example ",
                   name="Gus", frequency=Frequency.DAILY, resident_asked=True,
                   prior_written=False, where="/staff/schemes/1/members", now=NOW)
    with factory() as session:
        gus = subscription_of(session, "gus@home.example")
        assert (gus.scheme, gus.status, gus.frequency, gus.subscriber.name) == (
            "Mill Lane Watch", "pending", "daily", "Gus")
        assert (gus.consent_method, gus.consent_wording, gus.consent_prior_declared) == (
            ConsentMethod.COORDINATOR, COORDINATOR_WORDING, False)
        assert gus.consent_source == f"/staff/schemes/1/members, by coordinator {world.jo.user_id}"
    assert [m.kind for m in mail_to(factory, "gus@home.example")] == [MessageKind.CONFIRM]
    assert "Please confirm" in mail_to(factory, "gus@home.example")[0].subject
    entry = audit(factory)[-1]
    assert (entry.actor, entry.user_id, entry.action, entry.target) == (
        "jo@watch.example", world.jo.user_id, "scheme.member.add", f"scheme {world.mill_lane}")
    assert "1 confirmation(s) and 0 invitation(s) queued" in entry.detail
    assert "gus" not in entry.detail.lower()


def test_declared_written_consent_confirms_an_address_new_to_us_at_once_with_no_email(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    add(factory, settings, world.jo, world.mill_lane, "hal@home.example", written=True)
    with factory() as session:
        hal = subscription_of(session, "hal@home.example")
        assert (hal.scheme, hal.status) == ("Mill Lane Watch", "confirmed")
        assert hal.consent_prior_declared and hal.confirmed_at == NOW
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert "prior written consent declared" in audit(factory)[-1].detail


def test_adding_needs_the_declaration_that_the_resident_asked_and_a_usable_address(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    before = snapshot(factory)
    for email, asked, field in (("ivy@home.example", False, "asked"),
                                ("not an address", True, "email")):
        with pytest.raises(CoordinatorError) as refused, transaction(factory) as session:
            add_member(session, settings, world.jo, world.mill_lane, email=email, name="",
                       frequency=Frequency.WEEKLY, resident_asked=asked, prior_written=False,
                       where="page", now=NOW)
        assert refused.value.field == field
    assert snapshot(factory) == before


def test_a_resident_who_subscribed_on_their_own_is_invited_not_added(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with transaction(factory) as session:
        eve = subscription_of(session, "eve@home.example")
        eve.frequency, eve.subscriber.name = Frequency.IMMEDIATE, "Eve Evans"
        mine = (eve.id, eve.status, eve.scheme, eve.frequency, eve.consent_method)
    for written in (False, True):
        add(factory, settings, world.jo, world.mill_lane, "eve@home.example", name="E",
            written=written)
    with factory() as session:
        eve = subscription_of(session, "eve@home.example")
        assert (eve.id, eve.status, eve.scheme, eve.frequency, eve.consent_method) == mine
        assert eve.subscriber.name == "Eve Evans"
        view = view_scheme(session, world.jo, world.mill_lane, now=NOW)
    assert "eve@home.example" not in [m.email for m in view.members]
    # One invitation (the second add fell within the hour), of the kind a pending one may get.
    [invitation] = mail_to(factory, "eve@home.example")
    assert (invitation.kind, invitation.subject) == (
        MessageKind.CONFIRM, "Invitation to join Mill Lane Watch")
    assert "/scheme-invitation/" in invitation.text


# Every state an address can be in, as Jo might type it into Mill Lane Watch's form.
STATES = {
    "new to us": "new@home.example",
    "in the ward, no scheme": "eve@home.example",
    "waiting to confirm, for this scheme": "cat@home.example",
    "a member already": "ann@home.example",
    "in another scheme": "dan@home.example",
    "in another ward": "fay@home.example",
    "unsubscribed": "left@home.example",
    "paused": "rest@home.example",
    "suppressed": "kim@home.example",
    "erased": "gone@home.example",
}


@pytest.fixture
def every_state(factory: sessionmaker[Session], world: World) -> None:
    with transaction(factory) as session:
        riverside = session.get_one(Ward, session.get_one(Scheme, world.mill_lane).ward_id)
        make_subscriber(session, riverside, "left@home.example").status = Status.UNSUBSCRIBED
        make_subscriber(session, riverside, "rest@home.example").status = Status.PAUSED
        suppress(session, "kim@home.example", SuppressionReason.COMPLAINT, "spam report")
        gone = make_subscriber(session, riverside, "gone@home.example")
        erase_subscriber(session, gone.subscriber_id, now=NOW)


@pytest.mark.usefixtures("every_state")
def test_adding_an_address_tells_the_coordinator_nothing_about_it(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    def seen() -> tuple[object, ...]:
        with factory() as session:
            out = io.StringIO()
            export_members(session, world.jo, world.mill_lane, out, now=NOW)
            return (view_scheme(session, world.jo, world.mill_lane, now=NOW).members,
                    kept_schemes(session, world.jo), out.getvalue(),
                    bounce_report(session, world.jo, world.mill_lane, now=NOW))

    before = seen()
    answers = {state: add(factory, settings, world.jo, world.mill_lane, email)
               for state, email in STATES.items()}
    assert set(answers.values()) == {None}  # one answer, whatever the state
    assert seen() == before  # and nothing new to see: nobody has joined yet
    with factory() as session:  # a resident in another scheme is not invited away from it
        assert subscription_of(session, "dan@home.example").scheme == "Church Street Watch"
    for quiet in ("ann", "dan", "left", "rest", "kim", "gone"):
        assert mail_to(factory, f"{quiet}@home.example") == [], quiet


@pytest.mark.usefixtures("every_state")
@pytest.mark.parametrize("how", ["add", "import"])
def test_written_consent_never_overrides_an_unsubscribe_a_suppression_or_an_erasure(
    factory: sessionmaker[Session], settings: Settings, world: World, how: str
) -> None:
    gone = ("left", "rest", "kim", "gone")
    with factory() as session:
        before = {e: [(s.status, s.scheme) for s in session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == e))]
            for e in (f"{name}@home.example" for name in gone)}
    for name in gone:
        email = f"{name}@home.example"
        if how == "add":
            add(factory, settings, world.jo, world.mill_lane, email, written=True)
        else:
            with transaction(factory) as session:
                import_members(session, settings, world.jo, world.mill_lane,
                               f"email\n{email}\n".encode(), resident_asked=True,
                               prior_written=True, where="x", now=NOW)
    with factory() as session:
        after = {e: [(s.status, s.scheme) for s in session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == e))]
            for e in before}
    assert after == before == {
        "left@home.example": [("unsubscribed", None)], "rest@home.example": [("paused", None)],
        "kim@home.example": [], "gone@home.example": []}
    for name in gone:
        assert mail_to(factory, f"{name}@home.example") == []


@pytest.mark.parametrize("name", ["Gus\r\nBcc: everyone@home.example", "Gus\nGreen",
                                  "Gus\tGreen", "Gus\x00", "Gus\u2028Green"])
def test_a_name_with_a_line_break_or_a_control_character_is_refused_naming_the_field(
    factory: sessionmaker[Session], settings: Settings, world: World, tmp_path: Path,
    name: str,
) -> None:
    before = snapshot(factory)
    with pytest.raises(CoordinatorError, match="name must not contain") as refused:
        add(factory, settings, world.jo, world.mill_lane, "gus@home.example", name=name)
    assert refused.value.field == "name"
    quoted = name.replace('"', '""')
    with transaction(factory) as session:
        result = import_members(session, settings, world.jo, world.mill_lane,
                                f'email,name\ngus@home.example,"{quoted}"\n'.encode(),
                                resident_asked=True, prior_written=True, where="x", now=NOW)
    assert [e.reason for e in result.errors] == [
        "name must not contain a line break, a tab or another control character"]
    added = run(settings, tmp_path, "schemes", "add-member", "Mill Lane Watch",
                "gus@home.example", "--name", name)
    assert added.exit_code == 1
    assert "--name: The name must not contain a line break" in added.stderr
    with factory() as session:
        assert session.scalar(select(Subscriber).where(
            Subscriber.email == "gus@home.example")) is None
    assert snapshot(factory)[:4] == before[:4]


def test_removing_a_member_unsubscribes_them_and_is_audited_without_their_address(
    factory: sessionmaker[Session], world: World
) -> None:
    with factory() as session:
        bob = subscription_of(session, "bob@home.example").id
    with transaction(factory) as session:
        removed = remove_member(session, world.jo, world.mill_lane, bob, now=NOW)
    assert removed.email == "bob@home.example"
    with factory() as session:
        subscription = session.get(Subscription, bob)
        assert subscription is not None
        assert (subscription.status, subscription.unsubscribed_at) == ("unsubscribed", NOW)
    entry = audit(factory)[-1]
    assert (entry.action, entry.target) == ("scheme.member.remove", f"subscription {bob}")
    assert "bob" not in entry.detail


# --- import and export ---------------------------------------------------------------------------

BAD_AND_GOOD = (
    "email,name,frequency,ward,scheme\n"
    "lee@home.example,Lee,daily,RIV,Mill Lane Watch\n"  # 2: good
    "not-an-address,Nobody,weekly,RIV,\n"  # 3: bad address
    "max@home.example,Max,hourly,,\n"  # 4: bad frequency
    "ned@home.example,Ned,weekly,HIL,\n"  # 5: another ward
    "ola@home.example,Ola,weekly,riverside,Church Street Watch\n"  # 6: another scheme
    "dan@home.example,Dan,weekly,,\n"  # 7: on Church Street's list: left alone, unsaid
    "pat@home.example,Pat,,,\n"  # 8: good, weekly
    "ann@home.example,Ann,immediate,,\n"  # 9: already a member: kept as she chose
)


def test_an_import_names_each_bad_line_and_nothing_about_any_address(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with transaction(factory) as session:
        result = import_members(session, settings, world.jo, world.mill_lane,
                                BAD_AND_GOOD.encode(), resident_asked=True,
                                prior_written=False, where="/import (members.csv)", now=NOW)
    assert result.addresses == 4
    assert [(e.line, e.reason.split(" ")[0]) for e in result.errors] == [
        (3, "email"), (4, "frequency"), (5, "ward"), (6, "scheme")]
    with factory() as session:
        lee, pat = (subscription_of(session, e) for e in ("lee@home.example",
                                                           "pat@home.example"))
        assert [(s.scheme, s.status, s.frequency) for s in (lee, pat)] == [
            ("Mill Lane Watch", "pending", "daily"), ("Mill Lane Watch", "pending", "weekly")]
        assert lee.consent_method == ConsentMethod.COORDINATOR
        ann = subscription_of(session, "ann@home.example")
        assert (ann.status, ann.frequency) == ("confirmed", "weekly")
        assert subscription_of(session, "dan@home.example").scheme == "Church Street Watch"
    assert [len(mail_to(factory, f"{n}@home.example")) for n in ("lee", "pat", "dan", "ann")] \
        == [1, 1, 0, 0]
    entry = audit(factory)[-1]
    assert (entry.action, entry.target) == ("scheme.import", f"scheme {world.mill_lane}")
    assert entry.detail.startswith("4 address(es); 2 confirmation(s) and 0 invitation(s)")


def test_an_import_with_only_an_email_column_and_declared_consent_confirms_everyone(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with transaction(factory) as session:
        result = import_members(session, settings, world.jo, world.mill_lane,
                                b"\xef\xbb\xbfEmail\r\nquin@home.example\r\nray@home.example\r\n",
                                resident_asked=True, prior_written=True, where="x", now=NOW)
    assert (result.addresses, result.errors) == (2, [])
    with factory() as session:
        assert {subscription_of(session, e).status
                for e in ("quin@home.example", "ray@home.example")} == {"confirmed"}
        assert subscription_of(session, "ray@home.example").consent_prior_declared


def test_an_import_that_fails_part_way_leaves_nothing_half_written(
    factory: sessionmaker[Session], settings: Settings, world: World,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(coordinators, "confirm_imported", broken)
    before = snapshot(factory)
    with pytest.raises(RuntimeError), transaction(factory) as session:
        import_members(session, settings, world.jo, world.mill_lane, BAD_AND_GOOD.encode(),
                       resident_asked=True, prior_written=False, where="x", now=NOW)
    assert snapshot(factory) == before


@pytest.mark.parametrize(("data", "asked", "field", "says"), [
    (b"", True, "file", "Choose a CSV file"),
    (b"name\nLee\n", True, "file", "lacks the column email"),
    (b"email\nlee@home.example\n", False, "asked", "asked to join"),
])
def test_an_import_that_cannot_be_read_or_lacks_the_declaration_changes_nothing(
    factory: sessionmaker[Session], settings: Settings, world: World, data: bytes,
    asked: bool, field: str, says: str
) -> None:
    before = snapshot(factory)
    with pytest.raises(CoordinatorError, match=says) as refused, \
            transaction(factory) as session:
        import_members(session, settings, world.jo, world.mill_lane, data,
                       resident_asked=asked, prior_written=False, where="x", now=NOW)
    assert refused.value.field == field
    assert snapshot(factory) == before


def test_the_export_has_the_subscribers_export_columns_status_and_consent(
    factory: sessionmaker[Session], world: World
) -> None:
    with transaction(factory) as session:
        suppress(session, "bob@home.example", SuppressionReason.HARD_BOUNCE, "5.1.1")
        out = io.StringIO()
        assert export_members(session, world.jo, world.mill_lane, out, now=NOW) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert [(r["email"], r["ward"], r["scheme"], r["status"]) for r in rows] == [
        ("ann@home.example", "RIV", "Mill Lane Watch", "confirmed"),
        ("bob@home.example", "RIV", "Mill Lane Watch", "suppressed")]
    assert rows[0]["consent_method"] == "cli" and rows[0]["consent_at"]
    entry = audit(factory)[-1]
    assert (entry.action, entry.detail) == ("scheme.export", "2 row(s)")


FORMULAS = ['=HYPERLINK("https://evil.example/","Update your details")', "+1+1", "-2+3",
            "@SUM(1+1)"]


def test_no_cell_of_the_scheme_export_or_the_subscribers_export_is_a_live_formula(
    factory: sessionmaker[Session], settings: Settings, world: World, tmp_path: Path
) -> None:
    with transaction(factory) as session:
        riverside = session.get_one(Ward, session.get_one(Scheme, world.mill_lane).ward_id)
        for n, name in enumerate(FORMULAS):
            member(session, riverside, "Mill Lane Watch", f"f{n}@home.example", name=name)
        out = io.StringIO()
        export_members(session, world.jo, world.mill_lane, out, now=NOW)
    everything = run(settings, tmp_path, "subscribers", "export")
    assert everything.exit_code == 0
    for text in (out.getvalue(), everything.stdout):
        rows = list(csv.reader(io.StringIO(text)))
        assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@")]
        names = {row[2] for row in rows}
        assert {"'" + name for name in FORMULAS} <= names


def test_the_export_round_trips_through_the_import(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    out = io.StringIO()
    with transaction(factory) as session:
        export_members(session, world.jo, world.mill_lane, out, now=NOW)
    before = snapshot(factory)
    with transaction(factory) as session:
        result = import_members(session, settings, world.jo, world.mill_lane,
                                out.getvalue().encode(), resident_asked=True,
                                prior_written=False, where="x", now=NOW)
    assert (result.addresses, result.errors) == (2, [])
    assert snapshot(factory)[:4] == before[:4]  # the members are members already


# --- who bounced -------------------------------------------------------------------------------

def test_who_bounced_shows_suppressed_members_and_recent_bounces_of_this_scheme_only(
    factory: sessionmaker[Session], world: World
) -> None:
    with transaction(factory) as session:
        bob = subscription_of(session, "bob@home.example")
        dan = subscription_of(session, "dan@home.example")
        suppress(session, "bob@home.example", SuppressionReason.HARD_BOUNCE,
                 "hard bounce: user unknown 5.1.1", now=NOW - timedelta(days=1))
        suppress(session, "dan@home.example", SuppressionReason.COMPLAINT)
        for n, (subscription, days, severity) in enumerate(
                ((bob, 1, "hard"), (bob, 5, "soft"), (bob, 200, "soft"), (dan, 1, "hard"))):
            session.add(InboundRecord(
                content_hash=f"{n:064d}", received_at=NOW - timedelta(days=days), via="file",
                kind="bounce", severity=severity, reason=f"{severity} failure 5.x ({n})",
                subscriber_id=subscription.subscriber_id, ward_id=subscription.ward_id))
    with factory() as session:
        report = bounce_report(session, world.jo, world.mill_lane, now=NOW)
    assert [(s.member.email, s.reason, s.detail) for s in report.suppressed] == [
        ("bob@home.example", "hard_bounce", "hard bounce: user unknown 5.1.1")]
    assert [(b.member.email, b.severity, b.reason) for b in report.bounces] == [
        ("bob@home.example", "hard", "hard failure 5.x (0)"),
        ("bob@home.example", "soft", "soft failure 5.x (1)")]


# --- messaging the members ---------------------------------------------------------------------

def test_the_preview_is_the_real_email_from_the_coordinator_in_plain_text(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with factory() as session:
        draft = preview_message(session, settings, world.jo, world.mill_lane,
                                subject="  Bins\r\nBcc: x@evil.example ",
                                body="Bins go out <b>Tuesday</b>.\r\n\r\nThanks,\r\nJo",
                                now=NOW)
    assert draft.subject == "Bins Bcc: x@evil.example"
    assert draft.rendered.subject == "Mill Lane Watch: Bins Bcc: x@evil.example"
    assert draft.recipients == 2
    assert "Bins go out &lt;b&gt;Tuesday&lt;/b&gt;." in draft.rendered.html
    assert "Thanks,<br>Jo" in draft.rendered.html
    for part in (html.unescape(draft.rendered.html), draft.rendered.text):
        assert "A message from Jo Lane, the scheme's coordinator, to the members of " \
            "Mill Lane Watch" in " ".join(part.split())
        assert "comes from your scheme's coordinator, not from the police" in part
        assert "call 999" in re.sub(r"<[^>]+>", "", part) and "Crimestoppers" in part
    assert "Bins go out <b>Tuesday</b>.\n\nThanks,\nJo\n" in draft.rendered.text
    assert snapshot(factory)[2:4] == (0, 0)  # no message, no delivery


def test_a_message_an_officer_writes_says_it_is_from_the_wards_team(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with factory() as session:
        draft = preview_message(session, settings, world.officer, world.mill_lane,
                                subject="Bins", body="Tuesday", now=NOW)
    assert "A message from the Riverside Safer Neighbourhood Team to the members of " \
        "Mill Lane Watch" in draft.rendered.text
    assert "not from the police" not in draft.rendered.text


def test_an_empty_or_overlong_message_is_refused_naming_each_field(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with factory() as session, pytest.raises(MessageErrors) as refused:
        preview_message(session, settings, world.jo, world.mill_lane, subject=" ",
                        body="x" * 10_001, now=NOW)
    assert [(e.field, str(e)) for e in refused.value.errors] == [
        ("subject", "Enter a subject"),
        ("body", "The message must be 10,000 characters or fewer")]


def test_a_message_reaches_only_the_schemes_confirmed_unsuppressed_members(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], world: World
) -> None:
    sink, settings = smtp
    with transaction(factory) as session:
        suppress(session, "bob@home.example", SuppressionReason.HARD_BOUNCE)
        member(session, session.get_one(Ward, session.get_one(Scheme, world.mill_lane).ward_id),
               "Mill Lane Watch", "gil@home.example", name="Gil")
        sent = send_message(session, settings, world.jo, world.mill_lane, subject="Bins",
                            body="Bins go out on Tuesday.", draft_key="draft-key-1", now=NOW)
    assert sent.deliveries == 2 and sent.messages_left == MESSAGES_PER_DAY - 1
    report = deliver_due(factory, settings)
    assert report.sent == 2
    assert sorted(r for received in sink.received for r in received.rcpt_tos) == [
        "ann@home.example", "gil@home.example"]
    message = sink.received[0].message
    assert message["Subject"] == "Mill Lane Watch: Bins"
    assert message["Auto-Submitted"] == "no"
    assert "<https://alerts.example.org/unsubscribe/" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",))
    assert text is not None
    assert "Bins go out on Tuesday." in text.get_content()
    assert "THIS EMAIL IS NOT THE WAY TO REPORT A CRIME" in text.get_content()
    entry = audit(factory)[-1]
    assert (entry.action, entry.target, entry.detail) == (
        "scheme.message", f"scheme {world.mill_lane}",
        f"message {sent.message_id} to 2 member(s); draft draft-key-1")


def test_the_same_draft_sent_twice_goes_once(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    for _ in range(2):
        with transaction(factory) as session:
            last = send_message(session, settings, world.jo, world.mill_lane, subject="Bins",
                                body="Tuesday", draft_key="same-draft-key", now=NOW)
    assert last.repeated and last.message_id is None
    assert snapshot(factory)[2:4] == (1, 2)


def test_a_scheme_sends_at_most_a_few_messages_a_day(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    def send(key: str, at: timedelta) -> None:
        with transaction(factory) as session:
            send_message(session, settings, world.jo, world.mill_lane, subject="Bins",
                         body="Tuesday", draft_key=key, now=NOW + at)

    for n in range(MESSAGES_PER_DAY):
        send(f"draft-key-{n}", timedelta(hours=n))
    before = snapshot(factory)
    with pytest.raises(CoordinatorError, match="the most it may") as refused:
        send("draft-key-x", timedelta(hours=23))
    assert refused.value.field == "message"
    with factory() as session, pytest.raises(CoordinatorError, match="the most it may"):
        preview_message(session, settings, world.jo, world.mill_lane, subject="Bins",
                        body="Tuesday", now=NOW + timedelta(hours=23))
    assert snapshot(factory) == before
    send("draft-key-y", timedelta(hours=24, seconds=1))  # the first has left the window
    with factory() as session:  # another scheme's allowance is its own
        assert view_scheme(session, world.sam, world.church_street,
                           now=NOW).messages_left == MESSAGES_PER_DAY


def test_a_scheme_with_no_confirmed_members_has_no_one_to_message(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    with transaction(factory) as session:
        add_scheme(session, "Empty Close", "RIV")
        empty = session.scalars(select(Scheme.id).where(Scheme.name == "Empty Close")).one()
    with factory() as session, pytest.raises(CoordinatorError, match="no confirmed members"):
        preview_message(session, settings, world.admin, empty, subject="Hi", body="Hi",
                        now=NOW)


def test_the_command_line_acts_as_an_administrator_and_is_audited_by_name(
    factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    operator = command_line_principal("command line (root)")
    with transaction(factory) as session:
        add_member(session, settings, operator, world.hill_top, email="uma@home.example",
                   name="", frequency=Frequency.WEEKLY, resident_asked=True,
                   prior_written=True, where="alerts schemes add-member", now=NOW)
        assert subscription_of(session, "uma@home.example", "HIL").consent_source \
            == "alerts schemes add-member"
    entry = audit(factory)[-1]
    assert (entry.actor, entry.user_id) == ("command line (root)", None)
    assert "prior written consent declared" in entry.detail


# --- the same from the command line ------------------------------------------------------------

def run(settings: Settings, tmp_path: Path, *args: str) -> Result:
    config = tmp_path / "alerts.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_the_command_line_imports_exports_adds_and_removes_a_schemes_members(
    factory: sessionmaker[Session], settings: Settings, world: World, tmp_path: Path
) -> None:
    members = tmp_path / "members.csv"
    members.write_text(BAD_AND_GOOD)
    imported = run(settings, tmp_path, "schemes", "import", "Mill Lane Watch", str(members))
    assert imported.exit_code == 1
    assert f"{members}: line 3: email 'not-an-address'" in imported.stderr
    assert "line 7" not in imported.stderr  # Dan, on Church Street's list: not a word
    assert f"4 address(es) for Mill Lane Watch from {members}; skipped 4 bad row(s)" \
        in imported.stdout
    assert "each address that can join Mill Lane Watch has been sent an email to confirm " \
        "or an invitation to accept" in imported.stdout

    added = run(settings, tmp_path, "schemes", "add-member", "Hill Top Watch",
                "Vic@Home.example", "--name", "Vic", "--confirmed")
    assert (added.exit_code, added.stdout) == (0, (
        "if this address can join Hill Top Watch, it has been added if it was new to us, or "
        "sent an invitation to accept if it is already subscribed\n"))
    removed = run(settings, tmp_path, "schemes", "remove-member", "Mill Lane Watch",
                  "ann@home.example")
    assert removed.exit_code == 0, removed.output
    stranger = run(settings, tmp_path, "schemes", "remove-member", "Mill Lane Watch",
                   "dan@home.example")
    assert stranger.exit_code == 1
    assert "no member of Mill Lane Watch has that address" in stranger.stderr
    answers = {email: run(settings, tmp_path, "schemes", "add-member", "Mill Lane Watch", email)
               for email in ("dan@home.example", "eve@home.example", "new@home.example")}
    assert {(a.exit_code, a.stdout, a.stderr) for a in answers.values()} == {(0, (
        "if this address can join Mill Lane Watch, it has been sent an email to confirm or an "
        "invitation to accept; it is a member once it has\n"), "")}

    exported = run(settings, tmp_path, "schemes", "export", "Mill Lane Watch")
    assert exported.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["email"], r["status"]) for r in rows] == [
        ("ann@home.example", "unsubscribed"), ("bob@home.example", "confirmed")]
    members_listed = run(settings, tmp_path, "schemes", "members", "Mill Lane Watch", "--json")
    assert [m["email"] for m in json.loads(members_listed.stdout)] == [
        "ann@home.example", "bob@home.example"]
    assert {e.action for e in audit(factory) if e.actor.startswith("command line")} == {
        "scheme.import", "scheme.member.add", "scheme.member.remove", "scheme.export"}
