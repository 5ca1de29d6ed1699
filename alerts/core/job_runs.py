"""`job_runs`: how each scheduled job's runs went, one row per job id (the id it has in the
scheduler's job table): when it last started, last succeeded and last failed, why it last
failed, and how many times in a row it has failed.

The job runners of `alerts.service.jobs` write it, wherever the scheduler runs a job;
`alerts status`, `/healthz` and `/metrics` read it. A failure is kept as the error's class
name and a short reason the job chose, never an error's own text, so no resident's address
or words are ever stored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Unicode
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.core.db import dialect_insert
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


@dataclass(frozen=True)
class Failure:
    """Why a run failed: the error's class name (or the kind of failure a job reports
    without one) and a short reason the job chose."""

    kind: str
    reason: str

    def text(self) -> str:
        return f"{self.kind}: {self.reason}"[:FAILURE_LENGTH]


def record_start(session: Session, job_id: str, now: datetime) -> None:
    _upsert(session, job_id, {"last_started_at": now})


def record_end(session: Session, job_id: str, now: datetime, failure: Failure | None) -> None:
    """A run's end: a success clears the count of failures in a row, a failure adds one."""
    if failure is None:
        _upsert(session, job_id, {"last_success_at": now, "consecutive_failures": 0})
        return
    _upsert(session, job_id, {"last_failure_at": now, "last_failure": failure.text()},
            {"consecutive_failures": JobRun.consecutive_failures + 1},
            {"consecutive_failures": 1})


def _upsert(session: Session, job_id: str, values: dict[str, Any],
            on_update: dict[str, Any] | None = None,
            on_insert: dict[str, Any] | None = None) -> None:
    """One statement, so that two processes recording the same job never collide."""
    statement = dialect_insert(session, JobRun).values(job_id=job_id, **values,
                                                        **(on_insert or {}))
    session.execute(statement.on_conflict_do_update(
        index_elements=[JobRun.job_id], set_={**values, **(on_update or {})}))
