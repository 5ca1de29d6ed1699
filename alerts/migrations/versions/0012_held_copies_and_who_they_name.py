"""held copies and who they name

Each copy of an email kept in review/ or dead-letter/ is linked to the subscribers whose
addresses it holds, so that erasing a resident deletes their copies. Copies held before
this revision are linked here the way intake links new ones (alerts.inbound.journal).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 01:37:49.776277
"""

import re
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def upgrade() -> None:
    op.create_table('inbound_held_owners',
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_messages.id'], name=op.f('fk_inbound_held_owners_inbound_id_inbound_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_inbound_held_owners_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('inbound_id', 'subscriber_id', name=op.f('pk_inbound_held_owners'))
    )
    with op.batch_alter_table('inbound_held_owners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_held_owners_subscriber_id'), ['subscriber_id'], unique=False)
    _link_copies_already_held()


def _link_copies_already_held() -> None:
    bind = op.get_bind()
    subscribers = sa.text("SELECT id FROM subscribers WHERE email IN :addresses").bindparams(
        sa.bindparam("addresses", expanding=True))
    link = sa.text("INSERT INTO inbound_held_owners (inbound_id, subscriber_id) "
                   "VALUES (:inbound_id, :subscriber_id)")
    held = bind.execute(sa.text(
        "SELECT id, held_as FROM inbound_messages WHERE held_as IS NOT NULL")).all()
    for inbound_id, path in held:
        try:
            text = Path(path).read_bytes().decode("utf-8", "replace").lower()
        except OSError:
            continue  # already deleted by hand
        addresses = sorted({match.group() for match in _ADDRESS.finditer(text)})
        for start in range(0, len(addresses), 500):
            for (subscriber_id,) in bind.execute(
                    subscribers, {"addresses": addresses[start:start + 500]}):
                bind.execute(link, {"inbound_id": inbound_id, "subscriber_id": subscriber_id})


def downgrade() -> None:
    with op.batch_alter_table('inbound_held_owners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_held_owners_subscriber_id'))

    op.drop_table('inbound_held_owners')
