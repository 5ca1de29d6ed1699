"""The coordinators' service: what a Neighbourhood Watch coordinator does with their scheme's
member list (see it, add one resident, remove one, import a CSV, export it, see who bounced
and why), the message they send to their members, and the printed digest for members
without email.

A coordinator sees only the residents who joined their scheme, and adding an address tells
them nothing about it: an address new to us is asked to confirm (or, with written consent
declared, joins at once); a resident already subscribed is sent an invitation to accept
(`alerts.usecases.scheme_invitations`); anyone else (unsubscribed, paused, suppressed, erased, in
another scheme) gets nothing. The answer is the same in every case.

Every function takes the signed-in person (a `Principal`), loads the scheme by id and calls
`require_scheme` itself, so the rule "a coordinator keeps only their own schemes" holds
whatever page, URL or command asked; officers of the scheme's ward and administrators may
too. A scheme that does not exist is refused like one that is not the person's, so ids
reveal nothing. Every change is written to the audit log with ids, never a resident's
address or words. Functions work in the caller's transaction (the caller commits) and know
nothing of HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from alerts.accounts.access import (
    Forbidden,
    Principal,
    can_keep_scheme,
    can_use_ward,
    require_scheme,
    require_ward,
)
from alerts.accounts.audit import AuditEntry, record
from alerts.accounts.users import Role, User, add_user, find_user
from alerts.core.config import Settings
from alerts.core.errors import AlertsError
from alerts.delivery.fanout import fan_out
from alerts.inbound.classify import Kind
from alerts.inbound.journal import InboundRecord
from alerts.mail.messages import Message, MessageKind
from alerts.mail.render import (
    Rendered,
    render_email,
)
from alerts.usecases.confirmations import confirm_imported
from alerts.usecases.printed_digests import PrintedDigest, printed_digest
from alerts.usecases.scheme_invitations import queue_invitations
from subscriptions.addresses import AddressError, normalise_address
from subscriptions.consent import COORDINATOR_WORDING, Consent, ConsentMethod
from subscriptions.csv_io import CsvError, RowError, SubscriberRow, decode, write_records
from subscriptions.schemes import (
    Member,
    Scheme,
    SchemeError,
    SuppressedMember,
    add_scheme,
    join_scheme,
    list_members,
    member_row,
    read_scheme_file,
    scheme_records,
    suppressed_members,
    unsubscribe_member,
)
from subscriptions.subscribers import (
    Frequency,
    Status,
    SubscriberError,
    Subscription,
    receiving,
)
from subscriptions.wards import Ward, find_ward, list_wards

NOT_YOURS = "that is not one of your schemes"
NOT_A_MEMBER = "that is not a member of your scheme"
# A scheme's members hear from their coordinator now and then, not all day: at most this
# many messages in any 24 hours, per scheme.
MESSAGES_PER_DAY = 3
MESSAGE_WINDOW = timedelta(hours=24)
MAX_SUBJECT = 150
MAX_BODY = 10_000
MAX_IMPORT_BYTES = 2_000_000
BOUNCE_DAYS = 90
MAX_BOUNCES_SHOWN = 200
DRAFT_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class CoordinatorError(AlertsError, ValueError):
    """A request that cannot be done as asked; `field` names the form field at fault."""

    http_status = 400

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class MessageErrors(CoordinatorError):
    """Several fields of the message form are wrong at once."""

    def __init__(self, errors: Sequence[CoordinatorError]) -> None:
        super().__init__(str(errors[0]), errors[0].field)
        self.errors = list(errors)


def _scheme(session: Session, who: Principal, scheme_id: int, *,
            for_update: bool = False) -> Scheme:
    scheme = session.get(Scheme, scheme_id, with_for_update=for_update)
    if scheme is None:
        raise Forbidden(NOT_YOURS)
    require_scheme(who, scheme)
    return scheme


def _audit(session: Session, who: Principal, action: str, target: str, detail: str,
           now: datetime) -> None:
    record(session, who.email, action, target, detail, user_id=who.user_id or None, now=now)


def _source(who: Principal, where: str) -> str:
    return f"{where}, by {who.role} {who.user_id}" if who.user_id else where


# --- the schemes a person keeps -----------------------------------------------------------

@dataclass(frozen=True)
class SchemeSummary:
    id: int
    name: str
    ward_code: str
    ward_name: str
    members: int  # joined and still subscribed (confirmed or paused)
    confirmed: int  # of them, those mail reaches (`receiving`: not suppressed)


def kept_schemes(session: Session, who: Principal) -> list[SchemeSummary]:
    """The schemes the person keeps: a coordinator their own, an officer their wards',
    an administrator every one. The counts are of members who joined (see `joined`), so
    they do not move when an address is added that has yet to confirm."""
    live = Subscription.status.in_([Status.CONFIRMED, Status.PAUSED])
    query = (
        select(Scheme,
               func.count(Subscription.id),
               func.coalesce(func.sum(case((receiving(), 1), else_=0)), 0))
        .outerjoin(Subscription, (Subscription.ward_id == Scheme.ward_id)
                   & (Subscription.scheme == Scheme.name) & live)
        .group_by(Scheme.id)
        .order_by(Scheme.name)
    )
    if not who.is_admin:
        if who.role == Role.COORDINATOR:
            query = query.where(Scheme.id.in_(sorted(who.scheme_ids)))
        elif who.role == Role.OFFICER:
            query = query.where(Scheme.ward_id.in_(sorted(who.ward_ids)))
        else:
            return []
    return [SchemeSummary(scheme.id, scheme.name, scheme.ward.code, scheme.ward.name,
                          int(members), int(confirmed))
            for scheme, members, confirmed in session.execute(query)
            if can_keep_scheme(who, scheme)]


@dataclass(frozen=True)
class NewScheme:
    id: int
    # The coordinator's account was made now (or had no password yet): they are sent the
    # "choose a password" email.
    invite: User | None


def wards_for_new_schemes(session: Session, who: Principal) -> list[Ward]:
    """The wards the person may add a scheme to: an officer's own, every one for an admin."""
    if who.role == Role.COORDINATOR:
        return []
    return [ward for ward in list_wards(session) if can_use_ward(who, ward.id)]


def create_scheme(session: Session, who: Principal, *, name: str, ward_code: str,
                  coordinator_email: str, coordinator_name: str, now: datetime) -> NewScheme:
    """Add a scheme to one of the person's wards, with its coordinator (the web equivalent
    of `alerts schemes add`). Officers of the ward and administrators only."""
    ward = find_ward(session, ward_code)
    if ward is None:
        raise CoordinatorError("Choose one of your wards", "ward")
    require_ward(who, ward.id)
    try:
        address = normalise_address(coordinator_email)
    except AddressError:
        raise CoordinatorError("Enter the coordinator's email address in the right format, "
                               "like name@example.com", "coordinator") from None
    existing = find_user(session, address)
    if existing is not None and existing.role != Role.COORDINATOR:
        raise CoordinatorError("That address belongs to an account with another role",
                               "coordinator")
    try:
        scheme = add_scheme(session, name, ward.code)
    except SchemeError as exc:
        raise CoordinatorError(str(exc).capitalize(), "name") from None
    user = add_user(session, address, Role.COORDINATOR, scheme_names=[scheme.name],
                    name=coordinator_name if existing is None else "")
    _audit(session, who, "scheme.add", f"scheme {scheme.id}", f"ward {ward.code}", now)
    _audit(session, who, "scheme.coordinator", f"scheme {scheme.id}",
           f"user {user.id}" + (" (new account)" if existing is None else ""), now)
    return NewScheme(scheme.id, user if user.password_hash is None else None)


@dataclass(frozen=True)
class SchemeView:
    id: int
    name: str
    ward_code: str
    ward_name: str
    members: list[Member]
    messages_left: int

    @property
    def live(self) -> list[Member]:
        return [m for m in self.members if m.status != Status.UNSUBSCRIBED]

    @property
    def left(self) -> list[Member]:
        return [m for m in self.members if m.status == Status.UNSUBSCRIBED]

    @property
    def reachable(self) -> int:
        """Members a message would reach now: confirmed and not suppressed."""
        return sum(1 for m in self.members if m.state == Status.CONFIRMED)


def view_scheme(session: Session, who: Principal, scheme_id: int, *,
                now: datetime) -> SchemeView:
    scheme = _scheme(session, who, scheme_id)
    return SchemeView(scheme.id, scheme.name, scheme.ward.code, scheme.ward.name,
                      list_members(session, scheme), _messages_left(session, scheme, now))


# --- adding and removing members -----------------------------------------------------------

def _consent(who: Principal, where: str, *, prior_written: bool, now: datetime) -> Consent:
    return Consent(at=now, method=ConsentMethod.COORDINATOR, source=_source(who, where),
                   wording_version=COORDINATOR_WORDING, prior_consent_declared=prior_written)


def _join(session: Session, settings: Settings, who: Principal, scheme: Scheme,
          rows: Sequence[SubscriberRow], consent: Consent, *, action: str,
          now: datetime) -> list[RowError]:
    """Add the rows (see `join_scheme`), then email each address that can join: the double
    opt-in link to those made pending, the invitation to those already subscribed (one
    of either an hour per address). Audited with counts only; return the rows that were not
    for this scheme."""
    joined = join_scheme(session, scheme, rows, consent,
                         confirmed=consent.prior_consent_declared)
    asked = confirm_imported(session, settings, consent, now=now)
    invited = queue_invitations(session, settings, scheme, joined.invite, now=now)
    how = "prior written consent declared; " if consent.prior_consent_declared else ""
    _audit(session, who, action, f"scheme {scheme.id}",
           f"{len(rows)} address(es); {how}{asked.queued} confirmation(s) and "
           f"{invited.queued} invitation(s) queued, "
           f"{asked.held_back + invited.held_back} held back (one sent in the last hour)", now)
    return joined.errors


def add_member(session: Session, settings: Settings, who: Principal, scheme_id: int, *,
               email: str, name: str, frequency: Frequency, resident_asked: bool,
               prior_written: bool, where: str, now: datetime) -> None:
    """Add one resident to the scheme, the coordinator declaring that they asked to join
    (recorded as consent with the page and the wording), with the rules of `join_scheme`:
    an address new to us is sent the double opt-in email unless `prior_written` declares
    they gave consent in writing; a resident already subscribed is invited and joins only
    if they accept. Nothing is returned: whoever adds an address learns nothing about it
    (the page says the same whatever happened). CoordinatorError for a form that cannot
    be used, naming its field."""
    scheme = _scheme(session, who, scheme_id)
    if not resident_asked:
        raise CoordinatorError("Confirm that the resident asked to join the scheme", "asked")
    try:
        row = member_row(scheme, email, name=name, frequency=frequency)
    except AddressError:
        raise CoordinatorError("Enter an email address in the right format, like "
                               "name@example.com", "email") from None
    except SubscriberError as exc:
        raise CoordinatorError(f"The {exc}", "name") from None
    consent = _consent(who, where, prior_written=prior_written, now=now)
    errors = _join(session, settings, who, scheme, [row], consent, action="scheme.member.add",
                   now=now)
    if errors:
        raise CoordinatorError(_sentence(errors[0].reason), "email")


def _sentence(reason: str) -> str:
    return reason[:1].upper() + reason[1:]


def _member(session: Session, scheme: Scheme, subscription_id: int) -> Member:
    for member in list_members(session, scheme):
        if member.subscription_id == subscription_id:
            return member
    raise Forbidden(NOT_A_MEMBER)


def member_of(session: Session, who: Principal, scheme_id: int, subscription_id: int) -> Member:
    """One member of the scheme (for the page that asks "remove them?"); anyone else's
    subscription is Forbidden."""
    return _member(session, _scheme(session, who, scheme_id), subscription_id)


def remove_member(session: Session, who: Principal, scheme_id: int, subscription_id: int, *,
                  now: datetime) -> Member:
    """Unsubscribe one of the scheme's members; anyone else's subscription is Forbidden
    and nothing changes."""
    scheme = _scheme(session, who, scheme_id)
    member = _member(session, scheme, subscription_id)
    unsubscribe_member(session, scheme, subscription_id, now=now)
    _audit(session, who, "scheme.member.remove", f"subscription {subscription_id}",
           f"scheme {scheme.id}; unsubscribed (was {member.status})", now)
    return member


# --- import and export ---------------------------------------------------------------------

@dataclass(frozen=True)
class Imported:
    """What an import says: how many addresses its good lines held, and its bad lines. Not
    what became of each address: that is told to no one who adds them."""

    addresses: int
    errors: list[RowError]


def import_members(session: Session, settings: Settings, who: Principal, scheme_id: int,
                   data: bytes, *, resident_asked: bool, prior_written: bool, where: str,
                   now: datetime) -> Imported:
    """Add the residents of a CSV to the scheme (`email` required; `ward`, `scheme`,
    `name`, `frequency` optional: the scheme's ward and name are implied). Bad lines are
    returned with their line numbers and skipped; the good rows are added in the caller's
    transaction, all together or not at all, with the rules of `add_member`: an address new
    to us gets the double opt-in email unless `prior_written` declares every resident in the
    file gave consent in writing; a resident already subscribed gets an invitation."""
    scheme = _scheme(session, who, scheme_id)
    if not resident_asked:
        raise CoordinatorError("Confirm that everyone in the file asked to join the scheme",
                               "asked")
    if not data:
        raise CoordinatorError("Choose a CSV file to import", "file")
    if len(data) > MAX_IMPORT_BYTES:
        raise CoordinatorError(f"The file is larger than {MAX_IMPORT_BYTES // 1_000_000} MB; "
                               "split it and import each part", "file")
    try:
        rows, errors = read_scheme_file(decode(data), scheme_name=scheme.name,
                                        ward_code=scheme.ward.code, ward_name=scheme.ward.name)
    except CsvError as exc:
        raise CoordinatorError(f"The file cannot be read: {exc}", "file") from None
    consent = _consent(who, where, prior_written=prior_written, now=now)
    more = _join(session, settings, who, scheme, rows, consent, action="scheme.import",
                 now=now)
    return Imported(len(rows), sorted(errors + more, key=lambda e: e.line))


def export_members(session: Session, who: Principal, scheme_id: int, out: TextIO, *,
                   now: datetime) -> int:
    """Write the scheme's members as CSV (the columns of `alerts subscribers export`, with
    status and consent); return the number of rows. The export is audited: it carries
    residents' addresses out of the service."""
    scheme = _scheme(session, who, scheme_id)
    count = write_records(scheme_records(session, scheme), out)
    _audit(session, who, "scheme.export", f"scheme {scheme.id}", f"{count} row(s)", now)
    return count


def export_filename(session: Session, who: Principal, scheme_id: int) -> str:
    scheme = _scheme(session, who, scheme_id)
    slug = re.sub(r"[^a-z0-9]+", "-", scheme.name.lower()).strip("-") or f"scheme-{scheme.id}"
    return f"{slug}-members.csv"


def printable_digest(session: Session, settings: Settings, who: Principal, scheme_id: int, *,
                     now: datetime) -> PrintedDigest:
    """The sheet of the scheme's ward's latest digest, headed for the scheme, for members
    without email (a scheme lies in one ward, so there is one digest to print). It carries
    no resident's details, so printing changes and audits nothing; `NoDigestYet` when the
    ward has had none."""
    scheme = _scheme(session, who, scheme_id)
    return printed_digest(session, settings, scheme.ward, now=now, scheme=scheme)


# --- who bounced and why ---------------------------------------------------------------------

@dataclass(frozen=True)
class BounceRow:
    at: datetime
    member: Member
    severity: str
    reason: str


@dataclass(frozen=True)
class BounceReport:
    scheme_id: int
    scheme_name: str
    days: int
    suppressed: list[SuppressedMember]
    bounces: list[BounceRow]


def bounce_report(session: Session, who: Principal, scheme_id: int, *, now: datetime,
                  days: int = BOUNCE_DAYS) -> BounceReport:
    """Members on the suppression list with the reason, and the bounces recorded for
    members' addresses in the last `days` days with their severity and reason (the
    journal's safe words: never the bounce's own text)."""
    scheme = _scheme(session, who, scheme_id)
    members = {m.subscriber_id: m for m in list_members(session, scheme)}
    bounces: list[BounceRow] = []
    if members:
        for entry in session.scalars(
            select(InboundRecord)
            .where(InboundRecord.kind == Kind.BOUNCE,
                   InboundRecord.subscriber_id.in_(sorted(members)),
                   InboundRecord.received_at >= now - timedelta(days=days))
            .order_by(InboundRecord.received_at.desc(), InboundRecord.id.desc())
            .limit(MAX_BOUNCES_SHOWN)
        ):
            assert entry.subscriber_id is not None
            bounces.append(BounceRow(entry.received_at, members[entry.subscriber_id],
                                     entry.severity or "unknown", entry.reason))
    return BounceReport(scheme.id, scheme.name, days, suppressed_members(session, scheme),
                        bounces)


# --- messaging the members -------------------------------------------------------------------

@dataclass(frozen=True)
class Draft:
    """A message as it will go out: the real email, rendered, and who it would reach."""

    subject: str
    body: str
    rendered: Rendered
    recipients: int
    messages_left: int


@dataclass(frozen=True)
class Sent:
    message_id: int | None  # None when this draft had already been sent
    deliveries: int
    messages_left: int
    repeated: bool = False


def _clean_subject(subject: str) -> str:
    cleaned = " ".join(subject.split())  # no line breaks can reach the Subject header
    if not cleaned:
        raise CoordinatorError("Enter a subject", "subject")
    if len(cleaned) > MAX_SUBJECT:
        raise CoordinatorError(f"The subject must be {MAX_SUBJECT} characters or fewer",
                               "subject")
    return cleaned


def _clean_body(body: str) -> str:
    cleaned = body.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not cleaned:
        raise CoordinatorError("Enter the message", "body")
    if len(cleaned) > MAX_BODY:
        raise CoordinatorError(f"The message must be {MAX_BODY:,} characters or fewer", "body")
    return cleaned


def _paragraphs(body: str) -> list[list[str]]:
    return [[line.rstrip() for line in block.strip("\n").split("\n")]
            for block in re.split(r"\n[ \t]*\n", body) if block.strip()]


def render_scheme_message(settings: Settings, *, scheme_name: str, ward_name: str,
                          sender: str, from_coordinator: bool, subject: str, body: str,
                          now: datetime) -> Rendered:
    """The message as every member gets it: the writer's words (as plain text, never HTML),
    who it is from, and the how-to-report footer; rendered once for all."""
    return render_email("scheme-message", f"{scheme_name}: {subject}", settings, now=now,
                        title=subject, scheme_name=scheme_name, ward_name=ward_name,
                        sender=sender, from_coordinator=from_coordinator,
                        paragraphs=_paragraphs(body))


def _recipients(session: Session, scheme: Scheme) -> int:
    return session.scalar(
        select(func.count()).select_from(Subscription).where(
            Subscription.ward_id == scheme.ward_id, Subscription.scheme == scheme.name,
            receiving())) or 0


def _sent_recently(session: Session, scheme: Scheme, now: datetime) -> list[datetime]:
    return list(session.scalars(
        select(AuditEntry.at).where(AuditEntry.action == "scheme.message",
                                    AuditEntry.target == f"scheme {scheme.id}",
                                    AuditEntry.at > now - MESSAGE_WINDOW)
        .order_by(AuditEntry.at)))


def _messages_left(session: Session, scheme: Scheme, now: datetime) -> int:
    return max(0, MESSAGES_PER_DAY - len(_sent_recently(session, scheme, now)))


def _sender(who: Principal, scheme: Scheme) -> tuple[str, bool]:
    """Who the email says wrote it, and whether that is the scheme's coordinator (an officer
    of the ward or an administrator may write too: then it is from the ward's team)."""
    if who.role == Role.COORDINATOR:
        name = " ".join(who.name.split())
        return (f"{name}, the scheme's coordinator," if name else "the scheme's coordinator",
                True)
    return f"the {scheme.ward.name} Safer Neighbourhood Team", False


def _check_quota(session: Session, settings: Settings, scheme: Scheme, now: datetime) -> int:
    sent = _sent_recently(session, scheme, now)
    if len(sent) >= MESSAGES_PER_DAY:
        again = (sent[0] + MESSAGE_WINDOW).astimezone(ZoneInfo(settings.scheduler.timezone))
        raise CoordinatorError(
            f"{scheme.name} has sent {MESSAGES_PER_DAY} messages in the last 24 hours, the "
            f"most it may. You can send another after {again:%H:%M} on {again:%A} "
            f"{again.day} {again:%B}", "message")
    return MESSAGES_PER_DAY - len(sent)


def _draft(session: Session, settings: Settings, who: Principal, scheme: Scheme, *,
           subject: str, body: str, now: datetime) -> Draft:
    errors: list[CoordinatorError] = []
    try:
        subject = _clean_subject(subject)
    except CoordinatorError as exc:
        errors.append(exc)
    try:
        body = _clean_body(body)
    except CoordinatorError as exc:
        errors.append(exc)
    if errors:
        raise MessageErrors(errors)
    recipients = _recipients(session, scheme)
    if recipients == 0:
        raise CoordinatorError(f"{scheme.name} has no confirmed members to send to yet",
                               "message")
    left = _check_quota(session, settings, scheme, now)
    sender, from_coordinator = _sender(who, scheme)
    rendered = render_scheme_message(settings, scheme_name=scheme.name,
                                     ward_name=scheme.ward.name, sender=sender,
                                     from_coordinator=from_coordinator, subject=subject,
                                     body=body, now=now)
    return Draft(subject, body, rendered, recipients, left)


def preview_message(session: Session, settings: Settings, who: Principal, scheme_id: int, *,
                    subject: str, body: str, now: datetime) -> Draft:
    """The email as the members will get it, and how many it would reach; changes nothing."""
    scheme = _scheme(session, who, scheme_id)
    return _draft(session, settings, who, scheme, subject=subject, body=body, now=now)


def send_message(session: Session, settings: Settings, who: Principal, scheme_id: int, *,
                 subject: str, body: str, draft_key: str, now: datetime) -> Sent:
    """Queue the message for the scheme's confirmed, unsuppressed members only (not the rest
    of the ward), through the outbox like any other mail: the footer, List-Unsubscribe and
    the send-time consent check apply. At most `MESSAGES_PER_DAY` a scheme in 24 hours;
    `draft_key` (from the preview) makes sending the same draft twice send it once."""
    scheme = _scheme(session, who, scheme_id, for_update=True)  # one sender at a time
    if not DRAFT_KEY.match(draft_key):
        raise CoordinatorError("The message form was incomplete; preview it again", "message")
    target = f"scheme {scheme.id}"
    if session.scalar(select(AuditEntry.id).where(
            AuditEntry.action == "scheme.message", AuditEntry.target == target,
            AuditEntry.detail.endswith(f"; draft {draft_key}", autoescape=True))) is not None:
        return Sent(None, 0, _messages_left(session, scheme, now), repeated=True)
    draft = _draft(session, settings, who, scheme, subject=subject, body=body, now=now)
    rendered = draft.rendered
    message = Message(ward_id=scheme.ward_id, kind=MessageKind.SCHEME, subject=rendered.subject,
                      html=rendered.html, text=rendered.text, calendar=None, created_at=now)
    session.add(message)
    session.flush()
    deliveries = fan_out(session, message, now=now,
                         audience=Subscription.scheme == scheme.name)
    _audit(session, who, "scheme.message", target,
           f"message {message.id} to {deliveries} member(s); draft {draft_key}", now)
    return Sent(message.id, deliveries, draft.messages_left - 1)
