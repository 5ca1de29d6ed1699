"""thread references

The Message-IDs an answer to a resident (an acknowledgement, an officer's answer) replies
to, so that it carries In-Reply-To and References (RFC 5322 3.6.4) and lands in the
resident's conversation. Empty for every message written before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 12:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread_references', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('thread_references')
