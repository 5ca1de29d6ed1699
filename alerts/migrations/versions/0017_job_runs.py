"""job runs

How each scheduled job's runs went, one row per job id: when it last started, succeeded
and failed, the last failure (the error's class name and a short reason) and how many
times in a row it has failed. Read by `alerts status`, /healthz and /metrics.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 20:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscriptions.base

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('job_runs',
    sa.Column('job_id', sa.Unicode(length=191), nullable=False),
    sa.Column('last_started_at', subscriptions.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', subscriptions.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', subscriptions.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_failure', sa.String(length=200), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_job_runs'))
    )


def downgrade() -> None:
    op.drop_table('job_runs')
