"""lease holders

Each lease on a delivery names its holder ("host:pid:identity"), so a sender starting on the
same host can take back at once the rows of a holder that is provably gone, instead of
waiting for the lease to run out. Rows leased before this revision have no holder and keep
waiting for their lease as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place, no table rebuild.
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_holder', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('lease_holder')
