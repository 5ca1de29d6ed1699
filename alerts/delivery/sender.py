"""The sender: claim due outbox rows, build each email, hand it to a transport, record the outcome.

One pass (`deliver_due`) claims rows in batches until none is due. Each claimed row is checked
again at send time: a subscription that is no longer confirmed cancels the row, so an address
that left after fan-out is never sent to. Sends run concurrently (at most `mail.concurrency`
in flight, paced to `mail.rate_per_second` when set). Each success is recorded as soon as its
250 arrives (`_Recorder`: the successes that arrive during one write go in the next, one
UPDATE and commit each), and a send's slot is free again only once its row says `sent`; so
however the process dies, at most `mail.concurrency` messages were accepted by the relay
without being recorded, and only those can go out twice. Failures are written once per
batch. A 4xx or a dropped connection queues the row again with backoff, a 5xx fails it.
When the transport cannot reach its server at all, the pass stops after the current batch so
an outage does not walk the whole queue; the rest stays queued for the next pass. When
`[dkim]` is set, every copy (staff mail too) is DKIM-signed as the last step before the
transport (alerts.mail.dkim); the keys are read once a pass.

The loop talks SMTP on every connection; building a resident's copy (its signed links) and
signing it cost more than that, so they run in a process of their own (alerts.mail.
copy_process, kept from pass to pass) whenever a batch is signed or holds a copy for each
connection: on the loop they held it, and the connections waited (a third of a bare SMTP
sender's rate); on a thread, their Python held the GIL the loop needs. A copy is built
before it takes a connection, up to twice `mail.concurrency` of them waiting for one, so no
connection waits for a build and the copy process always has the next ones to build.

Staff mail (forwards to ward teams, their reminders, password resets and invitations: see
STAFF_KINDS) is claimed, paced, retried and recorded the same way, but it goes to the row's
staff address as the bytes built when it was queued, and no resident rule applies: no
subscription or suppression check, and a hard bounce suppresses nobody.

Nothing here writes a recipient address to a log or to `last_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, Engine, and_, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import MailSettings, Settings
from alerts.core.events import DeliveryFailed, EventBus
from alerts.delivery.maildir import MaildirTransport
from alerts.delivery.outbox import (
    Delivery,
    claim_due,
    mark_all_sent,
    mark_cancelled,
    mark_failed,
    mark_for_retry,
)
from alerts.delivery.smtp import SmtpTransport
from alerts.delivery.transport import (
    PermanentFailure,
    ServerUnavailable,
    TransientFailure,
    redact,
)
from alerts.delivery.transport import (
    Transport as Transport,  # re-exported: what a caller may hand `deliver_due`
)
from alerts.mail.copy_process import CopyProcess, copy_process
from alerts.mail.dkim import Signer, load_signer
from alerts.mail.messages import ANSWER_KINDS, Message, MessageKind
from alerts.mail.mime import Outgoing, PreparedMessage, personalise_email, prepare_message
from alerts.mail.staff import staff_envelope
from subscriptions.base import utcnow
from subscriptions.subscribers import Status, Subscriber, Subscription
from subscriptions.suppression import Suppression, SuppressionReason, suppress
from subscriptions.wards import Ward

log = logging.getLogger(__name__)


# Messages a resident asked for go whatever the state of their subscription.
ANYONE_KINDS = (MessageKind.DATA_REQUEST, MessageKind.TEAM_ANSWER, *ANSWER_KINDS)


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    suppressed: int = 0


class _Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class _Claimed:
    """A row to send: to a resident (`outgoing`, personalised at send time) or staff mail
    (`staff_email`, the bytes built when it was queued; None if it has none to send)."""

    delivery_id: int
    recipient: str
    attempts: int
    outgoing: Outgoing | None = None
    staff_email: bytes | None = None


@dataclass(frozen=True)
class _Outcome:
    delivery_id: int
    attempts: int
    result: _Result
    reason: str = ""
    unavailable: bool = False
    hard_bounce: bool = False
    recorded: bool = False  # a success already written by the recorder


class _Recorder:
    """Writes successes to the outbox as they come: `sent(id)` returns once the row is
    committed as `sent`. Writes run one at a time on a connection of their own, in a thread
    of their own (so the sends go on meanwhile, and never wait behind `alerts run`'s jobs in
    the loop's default executor). A write takes every id that is waiting: those that came
    while the last one ran, and those that come within `WINDOW` seconds of the first, or
    until half the connections wait. So a busy pass makes one write for several rows, for
    a few milliseconds more of each slot, and a quiet one writes at once."""

    WINDOW = 0.005

    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime],
                 concurrency: int) -> None:
        self._factory = factory
        self._clock = clock
        self._enough = max(1, concurrency // 2)
        self._pending: list[int] = []
        self._waiting: list[asyncio.Future[None]] = []
        self._filled = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="alerts-record")
        self._connection: Connection | None = None

    async def sent(self, delivery_id: int) -> None:
        """Record one success; raises what the write raised if it failed."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append(delivery_id)
        self._waiting.append(done)
        if len(self._pending) >= self._enough:
            self._filled.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        while self._pending:
            if len(self._pending) < self._enough:
                self._filled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._filled.wait(), self.WINDOW)
            ids, self._pending = self._pending, []
            waiting, self._waiting = self._waiting, []
            try:
                await asyncio.get_running_loop().run_in_executor(self._thread, self._write,
                                                                 ids)
            except Exception as exc:
                log.warning("could not record %d sent rows (%s); trying again at the end of "
                            "the batch", len(ids), type(exc).__name__)
                for done in waiting:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for done in waiting:
                if not done.done():  # its send was cancelled meanwhile: recorded all the same
                    done.set_result(None)

    def _write(self, ids: list[int]) -> None:
        """In the recorder's thread: one UPDATE and one commit for `ids`."""
        if self._connection is None:
            with self._factory() as session:
                bind = session.get_bind()
            self._connection = bind.connect() if isinstance(bind, Engine) else bind
        try:
            with self._connection.begin():
                mark_all_sent(self._connection, ids, self._clock())
        except Exception:
            self._close_connection()  # the next write starts on a fresh one
            raise

    def _close_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()

    def _finish(self, ids: list[int]) -> None:
        try:
            if ids:
                self._write(ids)
        except Exception:
            log.exception("could not record %d sent rows", len(ids))
        finally:
            self._close_connection()

    def close(self) -> None:
        """At the end of the pass: write what is still pending (the pass was cancelled) after
        any write under way, in the recorder's thread, and let the thread end."""
        if self._writer is not None:
            self._writer.cancel()  # a write under way in its thread still completes
        ids, self._pending = self._pending, []
        self._thread.submit(self._finish, ids)
        self._thread.shutdown(wait=False)


class _Pacer:
    """Spaces sends at least 1/rate seconds apart; a rate of 0 means no cap."""

    def __init__(self, rate_per_second: float) -> None:
        self.interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        # Reserving the slot before sleeping needs no lock: the loop runs one task at a time.
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def safe_batch_size(wanted: int, mail: MailSettings) -> int:
    """A batch small enough to be sent within its lease even if every send times out.

    A batch that outlived its lease could be claimed and sent again by another sender.
    """
    rounds_in_lease = max(1, int(mail.lease_seconds // (2 * mail.smtp_timeout)))
    return max(1, min(wanted, mail.concurrency * rounds_in_lease))


def make_transport(settings: Settings) -> Transport:
    """The transport `mail.transport` names."""
    if settings.mail.transport == "smtp":
        return SmtpTransport(settings.mail)
    if settings.mail.transport == "maildir":
        return MaildirTransport(settings.mail.maildir)
    raise ValueError(f"mail.transport must be \"maildir\" or \"smtp\", not "
                     f"{settings.mail.transport!r}")


def deliver_due(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    transport: Transport | None = None,
    now: Callable[[], datetime] | None = None,
    batch_size: int = 200,
    on_progress: Callable[[int], None] | None = None,
    bus: EventBus | None = None,
    should_stop: Callable[[], bool] | None = None,
    kinds: Collection[str] | None = None,
) -> DeliveryReport:
    """Send everything due now and return the counts; call from code with no running loop."""
    return asyncio.run(
        deliver_due_async(factory, settings, transport=transport, now=now,
                          batch_size=batch_size, on_progress=on_progress, bus=bus,
                          should_stop=should_stop, kinds=kinds)
    )


async def deliver_due_async(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    transport: Transport | None = None,
    now: Callable[[], datetime] | None = None,
    batch_size: int = 200,
    on_progress: Callable[[int], None] | None = None,
    bus: EventBus | None = None,
    should_stop: Callable[[], bool] | None = None,
    kinds: Collection[str] | None = None,
) -> DeliveryReport:
    """One pass over the outbox: claim in batches until nothing is due.

    The transport (given, or made from `mail.transport`) is entered for the pass and left
    at its end. Rows waiting for a later retry stay queued. With `kinds`, only messages of
    those kinds are sent (a command that sends what it queued, now).
    """
    clock = now or utcnow
    mail = settings.mail
    report = DeliveryReport()
    signer = load_signer(settings.dkim)  # before anything is claimed: a bad key stops here
    signing = None if signer is None else copy_process(settings, signer)
    carrier = transport if transport is not None else make_transport(settings)
    slots = asyncio.Semaphore(max(mail.concurrency, 1))
    ahead = asyncio.Semaphore(2 * max(mail.concurrency, 1))
    pacer = _Pacer(mail.rate_per_second)

    async def build(claimed: _Claimed, copies: CopyProcess | None) -> tuple[str, bytes]:
        outgoing = claimed.outgoing
        if outgoing is None:  # staff mail: sent as it was built
            if claimed.staff_email is None:
                raise ValueError("staff mail with no email to send")
            if signing is None:
                return staff_envelope(mail), claimed.staff_email
            return staff_envelope(mail), await signing.sign(claimed.staff_email)
        if copies is not None:  # built, and signed when [dkim] is set, off the loop
            return await copies.build(outgoing, clock())
        prepared = encoded.get(outgoing.message_id)
        if prepared is None:
            prepared = encoded[outgoing.message_id] = prepare_message(outgoing, settings)
        return personalise_email(prepared, outgoing, settings, now=clock())

    def failed(claimed: _Claimed, exc: Exception) -> _Outcome:
        ident, attempts, recipient = claimed.delivery_id, claimed.attempts, claimed.recipient
        if isinstance(exc, TransientFailure):
            return _Outcome(ident, attempts, _Result.RETRY, exc.reason,
                            unavailable=isinstance(exc, ServerUnavailable))
        if isinstance(exc, PermanentFailure):
            # A staff address refused is not a resident's to suppress.
            return _Outcome(ident, attempts, _Result.FAILED, exc.reason,
                            hard_bounce=exc.hard_bounce and claimed.outgoing is not None)
        if isinstance(exc, ValueError):
            # building refuses what no retry can mend, e.g. a line break in a header.
            return _Outcome(ident, attempts, _Result.FAILED, redact(str(exc), recipient))
        # A fault of ours must not abandon the batch: its other rows still have to be sent
        # and recorded, or they would wait for the lease to end.
        detail = redact(f"{type(exc).__name__}: {exc}", recipient)
        log.error("delivery %d: unexpected error: %s", ident, detail)
        return _Outcome(ident, attempts, _Result.RETRY, f"unexpected error: {detail}")

    async def attempt(claimed: _Claimed, copies: CopyProcess | None) -> _Outcome:
        ident, attempts = claimed.delivery_id, claimed.attempts
        # A copy is built (and signed) before it takes a connection, up to `ahead` of them
        # waiting for one, so that no connection waits for a build. Counted until the copy
        # has its connection, not until it is sent: counted while it was sent, the copies
        # being sent left the copy process a few at a time, and it sat idle between them.
        waiting = True
        await ahead.acquire()
        try:
            try:
                envelope_from, data = await build(claimed, copies)
            except Exception as exc:
                return failed(claimed, exc)
            async with slots:
                ahead.release()
                waiting = False
                try:
                    await pacer.wait()
                    await carrier.send(envelope_from, claimed.recipient, data)
                except Exception as exc:
                    return failed(claimed, exc)
                # Still holding the slot: it is free again only once the success is on
                # record.
                try:
                    await recorder.sent(ident)
                except Exception:
                    return _Outcome(ident, attempts, _Result.SENT)  # written with the batch
        finally:
            if waiting:
                ahead.release()
        return _Outcome(ident, attempts, _Result.SENT, recorded=True)

    batch = safe_batch_size(batch_size, mail)
    # Each message is encoded once per pass; each copy only swaps in its own links.
    encoded: dict[int, PreparedMessage] = {}
    recorder = _Recorder(factory, clock, mail.concurrency)

    async with carrier:
        try:
            while True:
                with factory() as session:
                    ids = claim_due(session, limit=batch, lease_seconds=mail.lease_seconds,
                                    now=clock(), kinds=kinds)
                    if not ids:
                        break
                    ready, cancelled = _load(session, ids)
                    for ident, reason in cancelled:
                        mark_cancelled(session, ident, reason)
                        report.cancelled += 1
                    # Commit before sending: no transaction stays open while the network works.
                    session.commit()

                copies = _copies_for(ready, settings, signer)
                outcomes = await asyncio.gather(*(attempt(claimed, copies)
                                                  for claimed in ready))

                with factory() as session:
                    addresses = {c.delivery_id: c.recipient for c in ready}
                    delivered = [o for o in outcomes if o.result is _Result.SENT]
                    # Successes the recorder could not write get a second chance here.
                    mark_all_sent(session,
                                  [o.delivery_id for o in delivered if not o.recorded], clock())
                    report.sent += len(delivered)
                    failures = [
                        _record(session, outcome, addresses[outcome.delivery_id], settings,
                                clock(), report)
                        for outcome in outcomes
                        if outcome.result is not _Result.SENT
                    ]
                    session.commit()
                if bus is not None:
                    for failure in failures:
                        bus.publish(failure)
                log.info("batch of %d done; this pass so far: %s", len(ids), report)
                if on_progress is not None:
                    on_progress(len(ids))
                if should_stop is not None and should_stop():
                    break  # between batches: everything claimed so far is sent and recorded
                if any(outcome.unavailable for outcome in outcomes):
                    log.warning("stopping this pass: the mail server cannot be reached; "
                                "the remaining rows stay queued")
                    break
        finally:
            recorder.close()  # before the connections say QUIT, which may take a while
    return report


def _copies_for(ready: list[_Claimed], settings: Settings,
                signer: Signer | None) -> CopyProcess | None:
    """Where a batch's copies are built: in the copy process when they are signed (the
    process signs them there) or when there are enough of them to keep the loop busy (at
    least one for each connection); a few unsigned ones on the loop, which saves a small
    pass (a confirmation, a test) starting a process."""
    residents = sum(claimed.outgoing is not None for claimed in ready)
    if signer is None and residents < max(settings.mail.concurrency, 1):
        return None
    return copy_process(settings, signer) if residents else None


def _record(
    session: Session,
    outcome: _Outcome,
    address: str,
    settings: Settings,
    now: datetime,
    report: DeliveryReport,
) -> DeliveryFailed:
    """Write a failed outcome to its row; return the event to publish."""
    # Transports redact already; this is the last line of defence for `last_error`.
    reason = redact(outcome.reason, address)
    if outcome.result is _Result.FAILED:
        mark_failed(session, outcome.delivery_id, reason)
        report.failed += 1
        if outcome.hard_bounce:
            suppress(session, address, SuppressionReason.HARD_BOUNCE, reason, now=now)
            report.suppressed += 1
        return DeliveryFailed(outcome.delivery_id, reason, permanent=True)
    if mark_for_retry(
        session,
        outcome.delivery_id,
        reason,
        attempts=outcome.attempts,
        max_attempts=settings.mail.max_attempts,
        base_seconds=settings.mail.retry_base_seconds,
        now=now,
    ):
        report.retried += 1
        return DeliveryFailed(outcome.delivery_id, reason, permanent=False)
    report.failed += 1
    return DeliveryFailed(outcome.delivery_id, reason, permanent=True)


def _load(session: Session, ids: Sequence[int]) -> tuple[list[_Claimed], list[tuple[int, str]]]:
    """Read what each claimed row needs; split it into rows to send and rows to cancel."""
    staff = [
        _Claimed(ident, recipient, attempts, staff_email=email)
        for ident, attempts, recipient, email in session.execute(
            select(Delivery.id, Delivery.attempts, Delivery.recipient, Message.email)
            .join(Message, Message.id == Delivery.message_id)
            .where(Delivery.id.in_(ids), Delivery.recipient.is_not(None))
            .order_by(Delivery.id))
        if recipient is not None
    ]
    ready, cancelled = _load_for_residents(session, ids)
    return ready + staff, cancelled


def _load_for_residents(session: Session, ids: Sequence[int]
                        ) -> tuple[list[_Claimed], list[tuple[int, str]]]:
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.attempts,
            Delivery.message_id,
            Ward.code,
            Ward.name,
            Subscriber.email,
            Subscriber.name,
            Subscription.id,
            Subscription.status,
            Suppression.reason,
            Delivery.nonce,
            Subscription.nonce,
        )
        .join(Message, Message.id == Delivery.message_id)
        .join(Ward, Ward.id == Message.ward_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(
            Subscription,
            and_(
                Subscription.subscriber_id == Delivery.subscriber_id,
                Subscription.ward_id == Message.ward_id,
            ),
        )
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .where(Delivery.id.in_(ids), Delivery.subscriber_id.is_not(None))
        .order_by(Delivery.id)
    ).all()
    # A batch usually carries one or two messages: read each body once, not once a row.
    message_ids = {row[2] for row in rows}
    messages = {
        message.id: message
        for message in session.scalars(select(Message).where(Message.id.in_(message_ids)))
    }
    ready: list[_Claimed] = []
    cancelled: list[tuple[int, str]] = []
    for (ident, attempts, message_id, ward_code, ward_name, email, name, subscription_id,
         status, suppressed, delivery_nonce, subscription_nonce) in rows:
        if suppressed is not None:
            cancelled.append((ident, f"not sent: the address is suppressed ({suppressed})"))
            continue
        message = messages[message_id]
        # The confirmation email exists to reach a pending address; nothing else may,
        # except what the resident asked for: the "my data" link, answers to their mail.
        allowed = {Status.CONFIRMED, Status.PENDING} if message.kind == MessageKind.CONFIRM \
            else set(Status) if message.kind in ANYONE_KINDS \
            else {Status.CONFIRMED}
        if subscription_id is None or subscription_nonce is None or status not in allowed:
            state = status or "gone"
            cancelled.append((ident, f"not sent: the subscription is {state} "
                                     "(not confirmed or unsubscribed)"))
            continue
        ready.append(_Claimed(
            ident, email, attempts, Outgoing(
                delivery_id=ident,
                message_id=message_id,
                kind=message.kind,
                subject=message.subject,
                html=message.html,
                text=message.text,
                calendar=message.calendar,
                ward_code=ward_code,
                ward_name=ward_name,
                recipient_email=email,
                recipient_name=name,
                subscription_id=subscription_id,
                created_at=message.created_at,
                delivery_nonce=delivery_nonce,
                subscription_nonce=subscription_nonce,
                message_nonce=message.nonce,
                references=message.thread_references,
            ),
        ))
    return ready, cancelled
