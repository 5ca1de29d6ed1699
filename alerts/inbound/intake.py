"""Intake: one raw email in, classified, acted on and journalled, whichever way it came.

The three ways in (`alerts inbound process`, the LMTP server, the IMAP poll) all call
`Intake.process`. The steps, in order: drop a message already handled (same bytes);
parse it, or keep it in the dead-letter folder with the reason; read the signed tokens in
the addresses it was sent to, and keep it for review, changing nothing, when one is forged;
classify it; act (complaint → suppress and unsubscribe, bounce → suppress or count,
auto-reply → record, command → unsubscribe, reply → store, acknowledge, queue for the team);
journal what was done.

A bounce is believed only when it came to a genuine `bounces+TOKEN@` address, and then only
about the subscriber that token names: anyone can write a delivery report naming any
address. One without (sent to `postmaster@`, a bare address, a `reply+` address) is kept for
review as an `untrusted_bounce` and suppresses no one.

Nothing here logs an address, a subject or a body: the journal and the log say what kind
of message it was and what was done, by id.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import MailSettings, Settings
from alerts.core.errors import AlertsError
from alerts.core.events import BounceReceived, ReplyReceived
from alerts.delivery.outbox import Delivery
from alerts.inbound.answers import acknowledge
from alerts.inbound.bounces import apply_bounce
from alerts.inbound.classify import Classification, Kind, classify, refuse_to_answer
from alerts.inbound.commands import subscription_of, unsubscribe_by_email
from alerts.inbound.complaints import act_on_complaint, complained_of
from alerts.inbound.forward import queue_forward
from alerts.inbound.journal import (
    InboundRecord,
    Via,
    already_seen,
    content_hash,
    hold,
    journal,
    record_owners,
    seen_among,
)
from alerts.inbound.mail import InboundMail, MalformedMail, parse_mail
from alerts.inbound.replies import (
    keep_thread,
    references_of,
    store_reply,
    stored_signals,
    thread_for,
)
from alerts.inbound.signals import emergency_signals
from alerts.inbound.text import UNREAD_NOTE, ReplyText, body_text, split_reply
from alerts.inbound.trust import sender_verified
from alerts.mail.addresses import AddressKind, claimed_kind, parse_address
from alerts.mail.messages import Message
from alerts.sources.sanitise import shorten
from subscriptions.base import utcnow
from subscriptions.links import Purpose, verify_reference
from subscriptions.subscribers import Subscriber, Subscription
from subscriptions.wards import Ward

if TYPE_CHECKING:  # the IMAP client is loaded by a poll only, not by every intake
    from alerts.inbound.imap import PollReport

log = logging.getLogger(__name__)

DEAD_LETTER = "dead-letter"
REVIEW = "review"
# `process_many` takes this many messages, or fewer when they come to more than this many
# bytes (a big one alone), in one transaction: SQLite's writers wait for it to end.
BATCH_MESSAGES = 50
BATCH_BYTES = 1024 * 1024



class IntakeUnavailable(AlertsError):
    """The database could not be used: the message was not handled; hand it over again later."""

    http_status = 503


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    action: str
    severity: str | None = None
    # For bounces, the failed address: printed for the operator by `--json`, never logged.
    recipient: str | None = None
    record_id: int | None = None
    reply_id: int | None = None
    flagged: bool = False
    duplicate: bool = False

    @property
    def reported_kind(self) -> str:
        """The kind `alerts inbound process` reports, one of a fixed set that scripts rely
        on (bounce, complaint, auto_reply, command, reply, rejected): a bounce that cannot
        be believed was rejected. The journal keeps it apart, for `alerts status`."""
        return str(Kind.REJECTED if self.kind == Kind.UNTRUSTED_BOUNCE else self.kind)


@dataclass
class Addressing:
    """What the signed tokens in the recipient addresses name."""

    reply_delivery: int | None = None
    bounce_delivery: int | None = None
    unsubscribe_subscription: int | None = None
    forged: list[str] = field(default_factory=list)  # the prefixes whose token failed
    # The rows the tokens were checked against, held so that reading them again (the
    # delivery a reply answers) is found in the session instead of asked of the database.
    rows: list[object] = field(default_factory=list)

    @property
    def delivery(self) -> int | None:
        return self.bounce_delivery or self.reply_delivery


def read_addressing(session: Session, recipients: tuple[str, ...], *, ours: MailSettings,
                    secret: str) -> Addressing:
    """Verify the tokens of the signed addresses among `recipients`. One that claims to be a
    signed address but whose token is not genuine (or not even shaped like one) is forged."""
    found = Addressing()
    for recipient in recipients:
        kind = claimed_kind(ours, recipient)
        if kind is None:
            continue
        signed = parse_address(ours, recipient)
        purpose = kind.purpose
        named: type[Delivery] | type[Subscription] = \
            Subscription if purpose == Purpose.UNSUBSCRIBE else Delivery
        ident = None if signed is None else \
            verify_reference(secret, purpose, signed.token, _nonces(session, named, found.rows))
        if ident is None:
            found.forged.append(kind.value)
        elif kind is AddressKind.REPLY:
            found.reply_delivery = ident
        elif kind is AddressKind.BOUNCES:
            found.bounce_delivery = ident
        else:
            found.unsubscribe_subscription = ident
    return found


@functools.cache
def _delivery_query() -> Select[Delivery, Message, Ward, Subscriber]:
    # Built once: building it cost as much as running it, for every message.
    return (select(Delivery, Message, Ward, Subscriber)
            .outerjoin(Message, Message.id == Delivery.message_id)
            .outerjoin(Ward, Ward.id == Message.ward_id)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id == bindparam("ident")))


def _nonces(session: Session, table: type[Delivery] | type[Subscription],
            rows: list[object]) -> Callable[[int], str | None]:
    """`nonce_of` for `verify_reference`, as `subscriptions.links.nonces_in`, reading the
    whole row (the one query intake makes of it) and keeping it in `rows`. A delivery comes
    with what intake reads next, in the same query: the message it carried, that message's
    ward and the resident it went to (each None where there is none)."""
    def nonce_of(ident: int) -> str | None:
        if table is Delivery:
            found = session.execute(_delivery_query(), {"ident": ident}).first()
            if found is None:
                return None
            # Held, so that intake's reads of them are found in the session.
            rows.extend(entity for entity in found if entity is not None)
            return found[0].nonce
        row = cast("Subscription | None", session.get(table, ident))
        if row is None:
            return None
        rows.append(row)
        nonce: str | None = row.nonce
        return nonce
    return nonce_of


class Intake:
    def __init__(self, factory: sessionmaker[Session], settings: Settings, *,
                 publish: Callable[[object], object] | None = None) -> None:
        self.factory = factory
        self.settings = settings
        self.publish = publish or (lambda event: None)

    def process(self, raw: bytes, *, via: Via, envelope_sender: str | None = None,
                envelope_recipients: tuple[str, ...] = (),
                now: datetime | None = None) -> Outcome:
        """Handle one email; raise `IntakeUnavailable` if it must be handed over again."""
        at = now or utcnow()
        digest = content_hash(raw)
        events: list[object] = []
        try:
            with self.factory() as session, session.begin():
                outcome = self._take(session, raw, digest, already_seen(session, digest),
                                     via=via, envelope_sender=envelope_sender,
                                     envelope_recipients=envelope_recipients,
                                     now=at, events=events)
        except IntegrityError:
            # The same bytes handled at this moment by another process (a redelivery race).
            with self.factory() as session:
                return _raced(already_seen(session, digest))
        except SQLAlchemyError as error:
            raise _unavailable(error) from None
        self._done(outcome, via, events)
        return outcome

    def process_many(self, raws: Sequence[bytes], *, via: Via) -> list[Outcome | Exception]:
        """Handle several emails in one transaction, and say for each what was done or what
        stopped it (`IntakeUnavailable`: hand it over again; any other exception: a fault of
        ours with that message). None is kept until the transaction commits, so a process
        killed before then leaves them all as never read, to be handled (once) by the next
        run. If one fails, the transaction is rolled back and each is handled again on its
        own (`process`), so that one fails alone and the others are kept. (A SAVEPOINT for
        each instead cost more than the commits it saves: SQLite journals each apart.)"""
        stamped = [(raw, content_hash(raw), utcnow()) for raw in raws]
        outcomes: list[Outcome] = []
        events: list[list[object]] = []
        try:
            with self.factory() as session, session.begin():
                _write_from_the_start(session)
                # Which were handled before, in one read; the same bytes twice in the batch
                # are asked again, to find the row the first made.
                before = seen_among(session, [digest for _raw, digest, _at in stamped])
                taken: set[str] = set()
                for raw, digest, at in stamped:
                    seen = already_seen(session, digest) if digest in taken \
                        else before.get(digest)
                    taken.add(digest)
                    events.append([])
                    outcomes.append(self._take(session, raw, digest, seen, via=via,
                                               envelope_sender=None, envelope_recipients=(),
                                               now=at, events=events[-1]))
        except Exception:  # which one, and why, is found by handling each on its own
            return [self._alone(raw, via, at) for raw, _digest, at in stamped]
        for outcome, published in zip(outcomes, events, strict=True):
            self._done(outcome, via, published)
        return list(outcomes)

    def _alone(self, raw: bytes, via: Via, now: datetime) -> Outcome | Exception:
        try:
            return self.process(raw, via=via, now=now)
        except Exception as error:  # as `process_many` reports it
            return error

    def _take(self, session: Session, raw: bytes, digest: str, seen: InboundRecord | None, *,
              via: Via, envelope_sender: str | None, envelope_recipients: tuple[str, ...],
              now: datetime, events: list[object]) -> Outcome:
        """Handle the message, or say it was already handled (`seen`: its journal row)."""
        if seen is not None:
            return Outcome(Kind(seen.kind), f"already handled as inbound #{seen.id}",
                           severity=seen.severity, record_id=seen.id, duplicate=True)
        return self._handle(session, raw, digest, via=via, envelope_sender=envelope_sender,
                            envelope_recipients=envelope_recipients, now=now, events=events)

    def _done(self, outcome: Outcome, via: Via, events: list[object]) -> None:
        """Once committed: log what was done and publish its events."""
        if not outcome.duplicate:
            log.info("inbound #%s via %s: %s: %s", outcome.record_id, via, outcome.kind,
                     outcome.action)
        for event in events:
            self.publish(event)

    def _journal(self, session: Session, digest: str, via: Via, outcome: Outcome, *,
                 classification: Classification | None, now: datetime,
                 delivery: Delivery | None = None, subscriber_id: int | None = None,
                 ward_id: int | None = None, held_as: str | None = None) -> int:
        """Journal what was done with the message; the row's id. An INSERT of its own, at
        once: the row is never changed, and as an object of the session its flush cost
        several times the statement."""
        return journal(session, dict(
            content_hash=digest, received_at=now, via=via, kind=outcome.kind,
            severity=outcome.severity,
            status=(classification.status if classification else None),
            action=shorten(outcome.action, 200),
            reason=shorten(classification.reason if classification else outcome.action, 300),
            delivery_id=delivery.id if delivery else None,
            subscriber_id=subscriber_id if subscriber_id is not None
            else (delivery.subscriber_id if delivery else None),
            ward_id=ward_id, held_as=held_as))

    def _held(self, session: Session, raw: bytes, digest: str, via: Via, folder: str,
              reason: str, now: datetime, classification: Classification | None = None,
              kind: Kind = Kind.REJECTED, matched: int | None = None) -> Outcome:
        """Keep the message for a person, journal it, and link the copy to the subscribers
        it names (and to `matched`, the one a genuine token named) for erasure."""
        path = hold(self.settings.inbound.held_dir, folder, raw, reason, digest, now)
        outcome = Outcome(kind, f"kept in {folder} for a person to look at: {reason}")
        record = self._journal(session, digest, via, outcome, classification=classification,
                               now=now, held_as=path)
        record_owners(session, record, raw, matched)
        return Outcome(outcome.kind, outcome.action, record_id=record)

    def _handle(self, session: Session, raw: bytes, digest: str, *, via: Via,
                envelope_sender: str | None, envelope_recipients: tuple[str, ...],
                now: datetime, events: list[object]) -> Outcome:
        settings = self.settings
        try:
            mail = parse_mail(raw, envelope_sender=envelope_sender,
                              envelope_recipients=envelope_recipients)
            text = split_reply(body_text(mail.message, cut=mail.truncated))
            classification = classify(mail, new_text=text.new, ours=settings.mail)
        except MalformedMail as error:
            return self._held(session, raw, digest, via, DEAD_LETTER, error.reason, now)
        except Exception as error:  # a message no step can read must not block the others
            # The type only: an exception's text can quote the message.
            log.error("an inbound message could not be read (%s)", type(error).__name__)
            return self._held(session, raw, digest, via, DEAD_LETTER,
                              f"could not be read ({type(error).__name__})", now)
        addressing = read_addressing(session, mail.recipients, ours=settings.mail,
                                     secret=settings.web.secret_key)
        bounce = classification.kind == Kind.BOUNCE
        if addressing.forged:
            return self._held(
                session, raw, digest, via, REVIEW,
                f"the signature of the {'/'.join(addressing.forged)}+ address does not match "
                "(forged or altered); nothing was changed", now, classification,
                kind=Kind.UNTRUSTED_BOUNCE if bounce else Kind.REJECTED)
        if classification.kind == Kind.COMPLAINT:
            return self._complaint(session, mail, digest, via, classification,
                                   addressing.delivery, now)
        if bounce and addressing.bounce_delivery is None:
            return self._held(
                session, raw, digest, via, REVIEW,
                "a delivery report not sent to a bounces+ address of this service; "
                "nobody was suppressed", now, classification, kind=Kind.UNTRUSTED_BOUNCE)
        delivery = session.get(Delivery, addressing.delivery) if addressing.delivery else None

        if bounce:
            # Only the bounces+ token says who bounced; the report's addresses are ignored.
            subscriber = delivery.subscriber_id if delivery else None
            result = apply_bounce(session, settings.inbound, classification,
                                  subscriber_id=subscriber, now=now)
            outcome = Outcome(Kind.BOUNCE, result.action, severity=classification.severity,
                              recipient=(classification.failed_recipients or (None,))[0])
            record = self._journal(session, digest, via, outcome, classification=classification,
                                   now=now, delivery=delivery, subscriber_id=subscriber)
            events.append(BounceReceived(subscriber, str(classification.severity),
                                         result.suppressed))
            return _with_record(outcome, record)

        if classification.kind == Kind.AUTO_REPLY:
            outcome = Outcome(Kind.AUTO_REPLY, "recorded; never answered")
            record = self._journal(session, digest, via, outcome, classification=classification,
                                   now=now, delivery=delivery)
            return _with_record(outcome, record)

        refusal = refuse_to_answer(mail, own_addresses=self._own_addresses(session),
                                   ours=settings.mail)
        message = session.get(Message, delivery.message_id) if delivery else None

        if classification.kind == Kind.COMMAND:
            subscription_id = addressing.unsubscribe_subscription
            if subscription_id is None and delivery is not None and message is not None \
                    and delivery.subscriber_id is not None and message.ward_id is not None:
                subscription_id = subscription_of(session, delivery.subscriber_id,
                                                  message.ward_id)
            if subscription_id is None:
                return self._held(session, raw, digest, via, REVIEW,
                                  "an unsubscribe request that names no subscription", now,
                                  classification, kind=Kind.COMMAND,
                                  matched=delivery.subscriber_id if delivery else None)
            action = unsubscribe_by_email(session, settings, subscription_id,
                                          may_answer=refusal is None, now=now)
            outcome = Outcome(Kind.COMMAND, action)
            record = self._journal(session, digest, via, outcome, classification=classification,
                                   now=now, delivery=delivery,
                                   ward_id=message.ward_id if message else None)
            return _with_record(outcome, record)

        if delivery is None or message is None:
            reason = ("not sent to a reply address" if addressing.delivery is None
                      else "the message it answers is no longer held")
            return self._held(session, raw, digest, via, REVIEW, reason, now, classification,
                              kind=Kind.REPLY,
                              matched=delivery.subscriber_id if delivery else None)
        return self._reply(session, mail, text, digest, via, classification, delivery,
                           message, refusal, now, events)

    def _complaint(self, session: Session, mail: InboundMail, digest: str, via: Via,
                   classification: Classification, delivery_id: int | None,
                   now: datetime) -> Outcome:
        """An abuse report: about the delivery its bounces+/reply+ address names, or else the
        one a genuine token in the original it carries names; held when none does."""
        subscription_id = None
        if delivery_id is None:
            delivery_id, subscription_id = complained_of(
                session, mail.message, ours=self.settings.mail,
                secret=self.settings.web.secret_key)
        delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
        if delivery is None and subscription_id is None:
            return self._held(session, mail.raw, digest, via, REVIEW,
                              "a complaint that names no delivery of this service by a genuine "
                              "token; nobody was suppressed", now, classification,
                              kind=Kind.COMPLAINT)
        result = act_on_complaint(session, delivery, subscription_id=subscription_id,
                                  detail=classification.reason, now=now)
        outcome = Outcome(Kind.COMPLAINT, result.action)
        record = self._journal(session, digest, via, outcome, classification=classification,
                               now=now, delivery=delivery, subscriber_id=result.subscriber_id,
                               ward_id=result.ward_id)
        return _with_record(outcome, record)

    def _reply(self, session: Session, mail: InboundMail, text: ReplyText, digest: str,
               via: Via, classification: Classification, delivery: Delivery,
               message: Message, refusal: str | None, now: datetime,
               events: list[object]) -> Outcome:
        settings = self.settings
        signals = emergency_signals(text.new)
        resident = delivery.subscriber_id
        assert resident is not None  # signed addresses are made for residents' rows only
        # A new thread waits for the acknowledgement, to be inserted acknowledged.
        ward = session.get_one(Ward, message.ward_id)
        subscriber = session.get_one(Subscriber, resident)  # kept for the forward below
        thread = thread_for(session, subscriber_id=resident, message=message, now=now)
        was = (thread.id, thread.acknowledged_at, thread.handled_at)
        thread.handled_at = None  # a new reply reopens a thread the team had closed
        answered, first = message.subject, cast("Message | None", message)
        if thread.message_id is not None and thread.message_id != message.id:
            first = session.get(Message, thread.message_id)
            answered = first.subject if first is not None else answered
        acknowledged = False
        if refusal is None:
            acknowledged = acknowledge(session, settings, thread, answered=answered,
                                       emergency=bool(signals), now=now,
                                       references=references_of(mail.message))
        action = "stored; queued for the ward team"
        if signals:
            action += "; flagged as a possible crime report"
        verified = sender_verified(mail.message, subscriber_email=subscriber.email,
                                   authserv_id=settings.inbound.trusted_authserv_id)
        if not verified:
            action += "; sender not verified"
        action += "; acknowledged" if acknowledged else (
            f"; not answered ({refusal})" if refusal else "; no acknowledgement (one a thread)")
        outcome = Outcome(Kind.REPLY, action, flagged=bool(signals))
        record = self._journal(session, digest, via, outcome, classification=classification,
                               now=now, delivery=delivery, ward_id=ward.id)
        if thread.id is None or (was[0] is not None and
                                 (thread.id, thread.acknowledged_at, thread.handled_at) != was):
            keep_thread(session, thread)  # new and not acknowledged (which wrote it), or changed
        reply = store_reply(session, dict(
            thread_id=thread.id, ward_id=ward.id, subscriber_id=resident,
            message_id=message.id, inbound_id=record, received_at=now,
            subject=shorten(mail.subject, 300), quoted=text.quoted,
            text=f"{text.new}\n\n{UNREAD_NOTE}".lstrip() if mail.truncated else text.new,
            signals=stored_signals(signals, sender_verified=verified),
            flagged=bool(signals), original=mail.raw))
        queue_forward(session, settings, reply, now=now, ward=ward, resident=subscriber,
                      answered=first if thread.message_id is not None else None)
        events.append(ReplyReceived(reply.id, ward.code, reply.flagged))
        return Outcome(Kind.REPLY, action, record_id=record, reply_id=reply.id,
                       flagged=reply.flagged)

    def _own_addresses(self, session: Session) -> frozenset[str]:
        """The service's own addresses, read once a transaction (`process_many` asks for
        them for every reply of its batch; only a ward's change, not made here, changes them)."""
        own: frozenset[str] | None = session.info.get("own addresses")
        if own is None:
            teams = session.scalars(select(Ward.team_email)).all()
            own = session.info["own addresses"] = frozenset(
                a.lower() for a in (self.settings.mail.from_address, *teams))
        return own


def _raced(seen: InboundRecord | None) -> Outcome:
    """The outcome of bytes another process journalled at the same moment."""
    if seen is None:
        raise IntakeUnavailable("the journal refused the message")
    return Outcome(Kind(seen.kind), f"already handled as inbound #{seen.id}",
                   record_id=seen.id, duplicate=True)


def _unavailable(error: SQLAlchemyError) -> IntakeUnavailable:
    return IntakeUnavailable(f"the database is unavailable ({type(error).__name__})")


def _write_from_the_start(session: Session) -> None:
    """On SQLite, begin the transaction now, as a writer. Python's sqlite3 begins one only at
    the first write, so the reads before it would stand outside the batch's transaction;
    and BEGIN IMMEDIATE waits its turn for the write lock (up to the busy timeout)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _with_record(outcome: Outcome, record: int) -> Outcome:
    return dataclasses.replace(outcome, record_id=record)


def poll_inbox(intake: Intake, settings: Settings) -> PollReport:
    """One IMAP poll; a message the database could not take stays for the next poll."""
    from alerts.inbound.imap import RetryLater, poll_mailbox

    def handle(raw: bytes) -> None:
        try:
            intake.process(raw, via=Via.IMAP)
        except IntakeUnavailable as error:
            raise RetryLater(str(error)) from None

    return poll_mailbox(settings.inbound, handle)
