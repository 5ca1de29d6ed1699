"""What an inbound email was, as the journal records it and `classify` decides it: its
`Kind`, and a bounce's `Severity`. Apart from the classifier so that reading the journal
(`alerts status`, the counts) does not load the classifier's parsers and tables."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"  # an abuse report (RFC 5965 ARF) or a provider's complaint event
    AUTO_REPLY = "auto_reply"
    COMMAND = "command"
    REPLY = "reply"
    REJECTED = "rejected"  # set by intake (forged token, unreadable), never by classify
    # Set by intake: a bounce without a genuine bounces+ token, held and believed by no one.
    UNTRUSTED_BOUNCE = "untrusted_bounce"


class Severity(StrEnum):
    HARD = "hard"
    SOFT = "soft"
