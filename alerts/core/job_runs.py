"""`job_runs`: how each scheduled job's runs went, one row per job id (the id it has in the
scheduler's job table): when it last started, last succeeded and last failed, why it last
failed, and how many times in a row it has failed.

The job runners of `alerts.service.jobs` write it, wherever the scheduler runs a job;
`alerts status`, `/healthz` and `/metrics` read it. A failure is kept as the error's class
name and a short reason the job chose, never an error's own text, so no resident's address
or words are ever stored here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Unicode
from sqlalchemy.orm import Mapped, mapped_column

from subscriptions.base import Base

# Long enough for a class name and a short reason.
FAILURE_LENGTH = 200


class JobRun(Base):
    """One scheduled job's last runs."""

    __tablename__ = "job_runs"

    # As the scheduler's job table names the job (`collect:12`, `digest:RIV:weekly`).
    job_id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    # "ClassName: short reason" of the last failure.
    last_failure: Mapped[str | None] = mapped_column(String(FAILURE_LENGTH))
    consecutive_failures: Mapped[int] = mapped_column(default=0, server_default="0")
