"""The copy process's two pipes are written and read by the sender's event loop itself: a
task's answers (hundreds of KB) read by a thread of the sender's waited for the GIL that the
busy loop held, chunk after chunk, and the copies waited with them."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy

from alerts.core.config import Settings, load_settings
from alerts.mail.copy_process import CopyProcess
from alerts.mail.marks import PREFERENCES_MARK, UNSUBSCRIBE_MARK
from alerts.mail.mime import Outgoing, personalise_email, prepare_message

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def a_settings() -> Settings:
    base = load_settings(environ={})
    return dataclasses.replace(base, web=dataclasses.replace(
        base.web, secret_key="test-secret-key-for-tests", base_url="https://alerts.example.org"))


def a_copy(n: int, *, message_id: int = 7) -> Outgoing:
    """A large digest (about 150 KB a copy): a task's answers are more than a pipe holds."""
    paragraph = "Over the last three weeks we had eleven reports of tools taken from vans. " * 20
    text = "".join(f"Item {i}\n{paragraph}\nUseful? __ALERTS_USEFUL_{i}_yes__\n\n"
                   for i in range(1, 30))
    html = "".join(f"<p>Item {i}</p><p>{paragraph}</p><a href='__ALERTS_USEFUL_{i}_no__'>No</a>"
                   for i in range(1, 30))
    return Outgoing(delivery_id=100 + n, message_id=message_id, kind="digest",
                    subject="This week", html=html + f"<a href='{UNSUBSCRIBE_MARK}'>Leave</a>",
                    text=text + f"Change: {PREFERENCES_MARK}\n", calendar=None,
                    ward_code="RIV", ward_name="Riverside",
                    recipient_email=f"r{n}@home.example", recipient_name=f"Resident {n}",
                    subscription_id=200 + n, created_at=NOW, delivery_nonce=f"{n:032d}",
                    subscription_nonce=f"{n:032x}", message_nonce="m" * 32)


def test_copies_come_back_whole_and_in_order_read_by_the_loop_with_no_thread_started() -> None:
    settings = a_settings()
    copies = [a_copy(n, message_id=7 + n % 2) for n in range(48)]
    process = CopyProcess(settings, None)
    before = set(threading.enumerate())

    async def build_all() -> list[tuple[str, bytes]]:
        return list(await asyncio.gather(*(process.build(copy, NOW) for copy in copies)))

    try:
        built = asyncio.run(build_all())
        started = set(threading.enumerate()) - before
        again = asyncio.run(build_all())  # another pass, another loop: the same process
    finally:
        process.close()
    assert not started, f"the sender's process started {[t.name for t in started]}"
    assert sum(len(data) for _, data in built) > 4 << 20  # several times what a pipe holds
    for copy, result, second in zip(copies, built, again, strict=True):
        expected = personalise_email(prepare_message(copy, settings), copy, settings, now=NOW)
        assert result[0] == expected[0] == second[0]
        assert seen(result[1]) == seen(second[1]) == seen(expected[1])


def seen(data: bytes) -> list[tuple[str, str]]:
    """What a reader gets: the headers and each part decoded, with what differs from one
    build to the next taken out (each vote link's ballot, the MIME boundary)."""
    message = message_from_bytes(data, policy=policy.default)
    parts = [(name, str(value)) for name, value in message.items() if name != "Content-Type"]
    parts += [(part.get_content_type(), re.sub(r"/useful/[^\s'\"<>]+", "/useful/-",
                                               part.get_content()))
              for part in message.walk() if not part.is_multipart()]
    return parts
