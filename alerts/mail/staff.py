"""Email to staff rather than residents (a ward team's address, an officer's account): the
headers every such message carries, and the envelope sender its bounces come back to.

These go straight to the transport, not through the outbox, which holds one row per message
and subscriber; each caller keeps its own retry (the replies table is the forward queue).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from alerts.core.config import MailSettings
from alerts.mail.addresses import staff_bounce_address
from alerts.mail.mime import SMTP, feedback_id


def staff_email(mail: MailSettings, *, to: str, subject: str, now: datetime,
                kind: str) -> EmailMessage:
    """A message from the service to `to`, marked automatic (RFC 3834) so that no
    responder answers it; `kind` names it in its Message-ID and its Feedback-ID."""
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((mail.from_name, mail.from_address))
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(f"alerts.{kind}", mail.from_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message["Feedback-ID"] = feedback_id(mail.from_address, "staff", kind)
    return message


def staff_envelope(mail: MailSettings) -> str:
    """The envelope sender: a bounce comes back to intake, matches no subscriber and is
    only recorded."""
    return staff_bounce_address(mail)
