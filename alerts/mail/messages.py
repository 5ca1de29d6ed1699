"""Messages: a digest or alert rendered once for a ward, and the items it carried; and the
email to staff (a forward, a reminder, a reset), built once and held whole until it is sent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscriptions.base import NEVER_REUSED, Base, id_never_reused, utcnow
from subscriptions.links import nonce_column
from subscriptions.wards import Ward


class MessageKind(StrEnum):
    DIGEST = "digest"
    POST = "post"
    ALERT = "alert"
    CONFIRM = "confirm"  # the double opt-in email: the one message a pending address gets
    # The "my data" link: goes to a resident whatever the state of their subscriptions,
    # since leaving does not end their right to see or erase what is held.
    DATA_REQUEST = "data_request"
    # The one welcome a resident's own confirmation brings: when their first digest comes,
    # their preferences link, how replies work.
    WELCOME = "welcome"
    # Answers to mail a resident sent: the acknowledgement of a reply (once a thread, or at
    # once when the reply reads like a crime report) and the "you have left" note that
    # confirms an emailed unsubscribe. They go whatever the subscription's state.
    REPLY_ACK = "reply_ack"
    LEFT = "left"
    # Written by a person: an officer's answer to a resident's reply (in its thread), and a
    # coordinator's message to their own scheme's members.
    TEAM_ANSWER = "team_answer"
    SCHEME = "scheme"
    # To staff, not residents (see STAFF_KINDS): a resident's reply forwarded to their ward
    # team, the team's reminder of replies still open, a password reset and the "choose a
    # password" email of an account made for someone.
    FORWARD = "forward"
    REMINDER = "reminder"
    RESET = "reset"
    INVITATION = "invitation"


# Kinds written for one resident (not a ward): erased with them.
PERSONAL_KINDS = (MessageKind.CONFIRM, MessageKind.DATA_REQUEST, MessageKind.REPLY_ACK,
                  MessageKind.LEFT, MessageKind.TEAM_ANSWER, MessageKind.WELCOME)
# Kinds that answer mail a resident sent: RFC 3834 marks them auto-replied, not generated.
ANSWER_KINDS = (MessageKind.REPLY_ACK, MessageKind.LEFT)
# Kinds a person wrote: RFC 3834 says no Auto-Submitted mark ("no").
WRITTEN_KINDS = (MessageKind.TEAM_ANSWER, MessageKind.SCHEME)
# Kinds sent to a staff address (a delivery's `recipient`), never to a subscriber: no
# resident rule (subscription state, suppression list) applies to them. Each is built whole
# when queued (`Message.email`); a forward is erased with the reply it carries.
STAFF_KINDS = (MessageKind.FORWARD, MessageKind.REMINDER, MessageKind.RESET,
               MessageKind.INVITATION)


MAX_SUBJECT = 300


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = id_never_reused()
    # None only for staff mail that belongs to no ward (a reset, an invitation).
    ward_id: Mapped[int | None] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"),
                                                index=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    calendar: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The "was this useful?" links of this message are bound to it (see useful).
    nonce: Mapped[str] = nonce_column()
    # Staff mail only: the whole email as it leaves, built when it was queued (so a retry
    # sends the same bytes, Message-ID included, and the sender needs nothing from the
    # layers that wrote it).
    email: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    # An answer to a resident's email (reply_ack, team_answer): the Message-IDs it replies
    # to, space-separated, theirs last, for In-Reply-To and References; None otherwise.
    thread_references: Mapped[str | None] = mapped_column(Text, default=None)
    # A forward: the reply whose words it carries; erasing the reply erases the forward.
    reply_id: Mapped[int | None] = mapped_column(
        ForeignKey("replies.id", ondelete="CASCADE", use_alter=True), default=None,
        index=True)

    ward: Mapped[Ward | None] = relationship()


class MessageItem(Base):
    """Which items a message carried: a ward's next digest holds only items not yet sent."""

    __tablename__ = "message_items"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
