"""Every table of the product, imported in one place so that the metadata is complete.

Alembic's autogenerate and the test fixtures read `metadata` from here.
"""

from __future__ import annotations

from alerts.accounts.audit import AuditEntry
from alerts.accounts.signin import SignInFailure
from alerts.accounts.users import User, UserScheme, UserWard
from alerts.core.job_runs import JobRun
from alerts.delivery.outbox import Delivery
from alerts.digests.ledger import SubscriptionProgress
from alerts.inbound.journal import InboundRecord
from alerts.inbound.providers.events import SeenEvent
from alerts.inbound.replies import Reply, ReplyThread, ThreadAnswer
from alerts.mail.messages import Message, MessageItem
from alerts.sources.items import Item
from alerts.sources.registry import Source
from alerts.usecases.votes import UsefulVote
from subscriptions.base import Base
from subscriptions.postcodes import Postcode
from subscriptions.schemes import Scheme
from subscriptions.subscribers import Subscriber, Subscription
from subscriptions.suppression import Suppression
from subscriptions.wards import Ward

metadata = Base.metadata

__all__ = [
    "AuditEntry",
    "Delivery",
    "InboundRecord",
    "Item",
    "JobRun",
    "Message",
    "MessageItem",
    "Postcode",
    "Reply",
    "ReplyThread",
    "Scheme",
    "SeenEvent",
    "SignInFailure",
    "Source",
    "Subscriber",
    "Subscription",
    "SubscriptionProgress",
    "Suppression",
    "ThreadAnswer",
    "UsefulVote",
    "User",
    "UserScheme",
    "UserWard",
    "Ward",
    "metadata",
]
