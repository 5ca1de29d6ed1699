"""Consent: how a subscription came to be, recorded so that it can be shown later.

Each subscription keeps when consent was given, how (the method), where (the page, file
or command) and which wording the resident saw. The wording is versioned here so that an
export can say exactly what a resident agreed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ConsentMethod(StrEnum):
    WEB_FORM = "web"
    CSV_IMPORT = "import"
    OFFICER_CLI = "cli"
    DEMO = "demo"
    # A scheme's coordinator added the resident (one by one on the scheme's page, or from
    # their file), declaring that the resident asked to join.
    COORDINATOR = "coordinator"


WORDING = {
    "2026-11": (
        "I would like to receive emails from my Safer Neighbourhood Team about my ward: "
        "team news, contact sessions, crime-prevention advice and urgent alerts. I can "
        "change how often or leave at any time from a link in every email."
    ),
    # What a coordinator declares, on the scheme's page or for every row of their file,
    # when they add residents to a Neighbourhood Watch scheme's list.
    "2026-11-coordinator": (
        "The resident asked to join this Neighbourhood Watch scheme and to receive emails "
        "from its coordinator and from their Safer Neighbourhood Team about their ward: team "
        "news, contact sessions, crime-prevention advice and urgent alerts. They know they "
        "can change how often or leave at any time from a link in every email."
    ),
}
CURRENT_WORDING = "2026-11"
COORDINATOR_WORDING = "2026-11-coordinator"


@dataclass(frozen=True)
class Consent:
    at: datetime
    method: ConsentMethod
    source: str
    wording_version: str = CURRENT_WORDING
    prior_consent_declared: bool = False
