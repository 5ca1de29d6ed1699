"""items changed at

When each item last changed (inserted, edited, withdrawn or put back), so that a ward's
open feeds can tell whether their kept copy is current from a count and maxima over an
index of its items, (source_id, changed_at, withdrawn_at), without reading the rows
(`alerts.usecases.open_feeds.ward_stamp`). Items stored before get the moment of their
withdrawal, else of their collection.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 21:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import subscriptions.base

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('changed_at', subscriptions.base.UTCDateTime(timezone=True),
                                      nullable=True))
    op.execute("UPDATE items SET changed_at = COALESCE(withdrawn_at, collected_at)")
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.alter_column('changed_at', existing_type=subscriptions.base.UTCDateTime(
            timezone=True), nullable=False)
        batch_op.create_index('ix_items_source_id_changed_at',
                              ['source_id', 'changed_at', 'withdrawn_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index('ix_items_source_id_changed_at')
        batch_op.drop_column('changed_at')
