"""0014: the replies' forward queue moves into the outbox, each reply's forward keeping its
attempts, next attempt and last error; one waiting is then sent by the one sender."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerts.core.config import Settings
from alerts.core.db import make_engine, migrate, session_factory
from alerts.delivery.sender import deliver_due
from tests.servers import SinkHandler

NOW = "2026-12-01 10:00:00+00:00"
LATER = "2026-12-01 11:00:00+00:00"


@pytest.mark.empty_database
def test_the_forward_queue_becomes_outbox_rows_and_the_waiting_one_is_then_sent(
        database_url: str, smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    engine = make_engine(database_url)
    try:
        migrate(engine, "0013")
        with engine.begin() as connection:
            def insert(sql: str, **values: object) -> None:
                connection.execute(text(sql), {"now": NOW, "later": LATER, **values})

            insert("INSERT INTO wards (id, code, name, team_email, created_at) "
                   "VALUES (1, 'RIV', 'Riverside', 'team-riv@police.example', :now)")
            insert("INSERT INTO subscribers (id, email, name, created_at, nonce) "
                   "VALUES (1, 'ann@home.example', 'Ann Example', :now, 'n1')")
            digest = connection.execute(text(  # an identity column: the store gives the id
                "INSERT INTO messages (ward_id, kind, subject, html, text, created_at, nonce) "
                "VALUES (1, 'digest', 'Riverside: bikes', '', '', :now, 'm1') RETURNING id"),
                {"now": NOW}).scalar_one()
            insert("INSERT INTO reply_threads (id, ward_id, subscriber_id, message_id, "
                   "created_at) VALUES (1, 1, 1, :digest, :now)", digest=digest)
            # Forwarded; waiting after a 451; given up after a 550; not yet tried (flagged).
            for ident, forwarded, attempts, error, flagged in (
                    (1, NOW, 1, None, False), (2, None, 1, "451 4.3.0 later", False),
                    (3, None, settings.mail.max_attempts, "550 5.1.1 no such user", False),
                    (4, None, 0, None, True)):
                insert("INSERT INTO replies (id, thread_id, ward_id, subscriber_id, message_id, "
                       "received_at, subject, text, quoted, signals, flagged, original, "
                       "forwarded_at, forward_attempts, forward_next_at, forward_error) VALUES "
                       "(:id, 1, 1, 1, :digest, :now, 'Re: bikes', :words, '', '', :flagged, NULL, "
                       ":forwarded, :attempts, :now, :error)", id=ident,
                       words=f"Words of reply {ident}", flagged=flagged, digest=digest,
                       forwarded=forwarded, attempts=attempts, error=error)
        migrate(engine, settings=settings)

        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT m.reply_id, m.kind, m.ward_id, d.recipient, d.subscriber_id, d.status, "
                "d.attempts, d.last_error, d.priority, m.email IS NOT NULL FROM deliveries d "
                "JOIN messages m ON m.id = d.message_id ORDER BY m.reply_id")).all()
            columns = {row[0] for row in connection.execute(text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'replies'" if engine.dialect.name == "postgresql"
                else "SELECT name FROM pragma_table_info('replies')"))}
        team = "team-riv@police.example"
        assert [row[:8] for row in rows] == [
            (1, "forward", 1, team, None, "sent", 1, None),  # kept as history
            (2, "forward", 1, team, None, "queued", 1, "451 4.3.0 later"),
            (3, "forward", 1, team, None, "failed", settings.mail.max_attempts,
             f"gave up after {settings.mail.max_attempts} attempts: 550 5.1.1 no such user"),
            (4, "forward", 1, team, None, "queued", 0, None),
        ]
        assert rows[3][8] > rows[1][8], "a possible crime report goes first"
        assert [row[9] for row in rows] == [False, True, False, True]  # only those to send
        assert not columns & {"forwarded_at", "forward_attempts", "forward_next_at",
                              "forward_error"}

        report = deliver_due(session_factory(engine), settings)
        assert report.sent == 2
        assert sorted(str(r.message["X-Alerts-Reply-Id"]) for r in sink.received) == ["2", "4"]
        assert all(r.rcpt_tos == [team] for r in sink.received)
        assert b"Words of reply 4" in sink.received[0].data + sink.received[1].data
    finally:
        engine.dispose()
