"""staff mail in the outbox

Every email leaves through the outbox, staff mail too: a forward of a resident's reply to
the ward team, the team's reminder, a password reset, an invitation. A message may belong to
no ward (a reset), holds the whole email built when it was queued (`email`) and, for a
forward, the reply it carries (`reply_id`, erased with the reply); a delivery goes to a
subscriber or to a staff address (`recipient`), exactly one of the two.

The replies table was the forwards' queue: each reply becomes its forward's message and
outbox row here. One not yet forwarded is queued with its attempts, next attempt and last
error, its email built with the settings `alerts init` runs with (the defaults without
them); one given up (`mail.max_attempts` reached) is failed; one forwarded is sent, at the
time it was, with no email kept. Then the replies' forward columns go: everything they said
is in the outbox now.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from alerts.core.config import Settings
from alerts.inbound.forward import build_forward, forward_subject
from alerts.inbound.replies import Reply
from alerts.mail.messages import Message
from subscriptions.base import UTCDateTime
from subscriptions.links import new_nonce
from subscriptions.subscribers import Subscriber
from subscriptions.wards import Ward

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As alerts.inbound.answers: a possible crime report goes first, other forwards ahead of
# digests.
FLAGGED_PRIORITY = 20
FORWARD_PRIORITY = 5

_replies = sa.table(
    'replies', sa.column('id', sa.Integer), sa.column('thread_id', sa.Integer),
    sa.column('ward_id', sa.Integer), sa.column('subscriber_id', sa.Integer),
    sa.column('received_at', UTCDateTime()), sa.column('subject', sa.String),
    sa.column('text', sa.Text), sa.column('quoted', sa.Text), sa.column('signals', sa.String),
    sa.column('flagged', sa.Boolean), sa.column('original', sa.LargeBinary),
    sa.column('forwarded_at', UTCDateTime()), sa.column('forward_attempts', sa.Integer),
    sa.column('forward_next_at', UTCDateTime()), sa.column('forward_error', sa.Text))
_threads = sa.table('reply_threads', sa.column('id', sa.Integer),
                    sa.column('message_id', sa.Integer))
_wards = sa.table('wards', sa.column('id', sa.Integer), sa.column('code', sa.String),
                  sa.column('name', sa.String), sa.column('team_email', sa.String))
_subscribers = sa.table('subscribers', sa.column('id', sa.Integer), sa.column('email', sa.String),
                        sa.column('name', sa.String))
_messages = sa.table(
    'messages', sa.column('id', sa.Integer), sa.column('ward_id', sa.Integer),
    sa.column('kind', sa.String), sa.column('subject', sa.String), sa.column('html', sa.Text),
    sa.column('text', sa.Text), sa.column('language', sa.String),
    sa.column('created_at', UTCDateTime()), sa.column('nonce', sa.String),
    sa.column('email', sa.LargeBinary), sa.column('reply_id', sa.Integer))
_deliveries = sa.table(
    'deliveries', sa.column('message_id', sa.Integer), sa.column('recipient', sa.String),
    sa.column('status', sa.String), sa.column('priority', sa.Integer),
    sa.column('attempts', sa.Integer), sa.column('next_attempt_at', UTCDateTime()),
    sa.column('last_error', sa.Text), sa.column('sent_at', UTCDateTime()),
    sa.column('created_at', UTCDateTime()), sa.column('nonce', sa.String))


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    rebuilt: dict[str, Any] = {'table_kwargs': {'sqlite_autoincrement': True}} if sqlite else {}
    with op.batch_alter_table('messages', schema=None, **rebuilt) as batch_op:
        batch_op.add_column(sa.Column('email', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('reply_id', sa.Integer(), nullable=True))
        batch_op.alter_column('ward_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_messages_reply_id'), ['reply_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_messages_reply_id_replies'), 'replies',
                                    ['reply_id'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('deliveries', schema=None, **rebuilt) as batch_op:
        batch_op.add_column(sa.Column('recipient', sa.String(length=320), nullable=True))
        batch_op.alter_column('subscriber_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_check_constraint(batch_op.f('ck_deliveries_one_recipient'),
                                         '(subscriber_id IS NULL) <> (recipient IS NULL)')
    _move_the_forward_queue()
    with op.batch_alter_table('replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_replies_forwarded_at'))
        batch_op.drop_column('forward_error')
        batch_op.drop_column('forward_next_at')
        batch_op.drop_column('forward_attempts')
        batch_op.drop_column('forwarded_at')


def _move_the_forward_queue() -> None:
    bind = op.get_bind()
    given = context.config.attributes.get('settings')
    settings = given if isinstance(given, Settings) else Settings()
    answered = _messages.alias('answered')
    rows = bind.execute(
        sa.select(_replies, _wards.c.code, _wards.c.name.label('ward_name'),
                  _wards.c.team_email, _subscribers.c.email.label('resident_email'),
                  _subscribers.c.name.label('resident_name'),
                  answered.c.subject.label('answered_subject'),
                  answered.c.kind.label('answered_kind'),
                  answered.c.created_at.label('answered_at'))
        .join(_wards, _wards.c.id == _replies.c.ward_id)
        .join(_subscribers, _subscribers.c.id == _replies.c.subscriber_id)
        .join(_threads, _threads.c.id == _replies.c.thread_id)
        .outerjoin(answered, answered.c.id == _threads.c.message_id)
        .order_by(_replies.c.id)
    ).mappings().all()
    max_attempts = settings.mail.max_attempts
    for row in rows:
        received = row['received_at']
        reply = Reply(id=row['id'], subject=row['subject'], text=row['text'],
                      quoted=row['quoted'], signals=row['signals'], flagged=row['flagged'],
                      received_at=received)
        ward = Ward(code=row['code'], name=row['ward_name'], team_email=row['team_email'])
        forwarded, attempts = row['forwarded_at'], row['forward_attempts']
        pending = forwarded is None and attempts < max_attempts
        email = None
        if pending:  # built as intake now builds it when the reply comes in
            resident = Subscriber(email=row['resident_email'], name=row['resident_name'])
            original = None if row['answered_subject'] is None else Message(
                subject=row['answered_subject'], kind=row['answered_kind'],
                created_at=row['answered_at'])
            email = build_forward(reply, ward=ward, resident=resident, answered=original,
                                  original=row['original'], settings=settings,
                                  now=received).as_bytes()
        message_id = bind.execute(sa.insert(_messages).values(
            ward_id=row['ward_id'], kind='forward',
            subject=forward_subject(reply, ward), html='', text='',
            language='en', created_at=received, nonce=new_nonce(), email=email,
            reply_id=row['id']).returning(_messages.c.id)).scalar_one()
        status = 'sent' if forwarded is not None else 'queued' if pending else 'failed'
        error = row['forward_error']
        if status == 'failed':
            error = f"gave up after {attempts} attempts: {error or 'refused'}"
        bind.execute(sa.insert(_deliveries).values(
            message_id=message_id, recipient=row['team_email'], status=status,
            priority=FLAGGED_PRIORITY if row['flagged'] else FORWARD_PRIORITY,
            attempts=attempts, next_attempt_at=row['forward_next_at'],
            last_error=None if status == 'sent' else error,
            sent_at=forwarded,
            created_at=received, nonce=new_nonce()))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    rebuilt: dict[str, Any] = {'table_kwargs': {'sqlite_autoincrement': True}} if sqlite else {}
    with op.batch_alter_table('replies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('forwarded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('forward_attempts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('forward_next_at', sa.DateTime(timezone=True),
                                      nullable=False, server_default=sa.func.now()))
        batch_op.add_column(sa.Column('forward_error', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_replies_forwarded_at'), ['forwarded_at'],
                              unique=False)
    # Staff mail cannot be put back where it came from: it is dropped (forwards not yet sent
    # are lost; the replies they carry are kept).
    op.execute("DELETE FROM deliveries WHERE recipient IS NOT NULL")
    op.execute("DELETE FROM messages WHERE kind IN "
               "('forward', 'reminder', 'reset', 'invitation')")
    with op.batch_alter_table('deliveries', schema=None, **rebuilt) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_deliveries_one_recipient'), type_='check')
        batch_op.alter_column('subscriber_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('recipient')
    with op.batch_alter_table('messages', schema=None, **rebuilt) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_messages_reply_id_replies'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_messages_reply_id'))
        batch_op.alter_column('ward_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('reply_id')
        batch_op.drop_column('email')
