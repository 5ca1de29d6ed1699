"""Inbound mail as an operator sees it: what came in lately, what waits for a person,
bounces nobody could vouch for, and replies that have not reached their ward team (their
forwards' outbox rows). Counts only, like the outbox report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.inbound.classify import Kind
from alerts.inbound.journal import InboundRecord
from alerts.inbound.replies import ReplyThread
from alerts.mail.messages import Message, MessageKind


@dataclass(frozen=True)
class InboundReport:
    last_day_by_kind: dict[str, int]
    held_last_week: int  # kept in review/ or dead-letter/ for a person to look at
    # Delivery reports that came without a genuine bounces+ token: held, believed by no one.
    untrusted_bounces_last_week: int
    replies_to_forward: int
    replies_not_forwarded: int  # the team's address refused them, or attempts ran out
    open_threads: int


def inbound_report(session: Session, now: datetime) -> InboundReport:
    by_kind = {
        kind: count for kind, count in session.execute(
            select(InboundRecord.kind, func.count())
            .where(InboundRecord.received_at >= now - timedelta(days=1))
            .group_by(InboundRecord.kind))
    }
    week = InboundRecord.received_at >= now - timedelta(days=7)
    held = session.scalar(select(func.count()).select_from(InboundRecord).where(
        InboundRecord.held_as.is_not(None), week)) or 0
    untrusted = session.scalar(select(func.count()).select_from(InboundRecord).where(
        InboundRecord.kind == Kind.UNTRUSTED_BOUNCE, week)) or 0
    forwards = dict(session.execute(
        select(Delivery.status, func.count())
        .join(Message, Message.id == Delivery.message_id)
        .where(Message.kind == MessageKind.FORWARD)
        .group_by(Delivery.status)).all())
    waiting = forwards.get(DeliveryStatus.QUEUED, 0) + forwards.get(DeliveryStatus.SENDING, 0)
    given_up = forwards.get(DeliveryStatus.FAILED, 0) + forwards.get(DeliveryStatus.CANCELLED, 0)
    open_threads = session.scalar(select(func.count()).select_from(ReplyThread).where(
        ReplyThread.handled_at.is_(None))) or 0
    return InboundReport(dict(sorted(by_kind.items())), held, untrusted, waiting, given_up,
                         open_threads)
