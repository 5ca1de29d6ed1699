"""Inbound mail at volume: 1,000 messages (replies, hard and soft bounces, out-of-office
replies, forged tokens) fed through `alerts inbound process`, timed from the command's
start to its exit, including forwarding every reply to the ward team (maildir transport).

    python bench/inbound_process.py [--messages 1000]

To time an older tree, run from outside both trees with PYTHONPATH at the older one
(`cd /tmp && PYTHONPATH=/old python /new/bench/inbound_process.py`): `python -m` puts the
current directory first, so run from the new tree it would time the new code twice.

Baseline, measured in the same run: Python's email parser reading the same files with no
database (the floor any intake pays). Prints messages a second for both and their ratio,
checks that each message was classified as generated, and prints peak memory.

    python bench/inbound_process.py --phases

The same, then the command run again on a copy of the same database, its CPU time split
into start-up (interpreter, imports, settings: before the first message), intake (every
message classified, acted on and stored: `Intake.process_many`), sending the forwards
(`deliver_due`) and the rest. Inbound's goal, 0.2 of the parser, is a budget for the sum.

    python bench/inbound_process.py --huge

Huge messages instead: some 24 MB each (a reply with a photo, a reply of text, one in
HTML, a bounce returning a big message, a photo under a forged token, which is held),
each handed to `Intake.process` in this process. Baseline, in the same run: a
normal-sized reply. Prints the seconds each took and the ratio to the baseline; run it with
PYTHONPATH pointing at an older tree to see that tree's figures.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path

from sqlalchemy.orm import Session

from alerts.core.db import make_engine, migrate, session_factory
from alerts.delivery.fanout import queue_for_subscriber
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.mail.messages import Message, MessageKind
from subscriptions.base import utcnow
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.links import Purpose, sign_reference
from subscriptions.subscribers import subscribe
from subscriptions.wards import add_ward

SECRET = "bench-inbound-secret"
DOMAIN = "reply.example.org"
RESIDENTS = 500


def seed(url: str, residents: int = RESIDENTS) -> list[tuple[str, int, str]]:
    """A ward, its residents and a sent digest; returns (address, delivery id, the
    delivery's nonce) for each."""
    engine = make_engine(url)
    migrate(engine)
    with session_factory(engine)() as session, session.begin():
        ward = add_ward(session, "RIV", "Riverside", "team-riv@police.example")
        consent = Consent(at=utcnow(), method=ConsentMethod.OFFICER_CLI, source="bench",
                          prior_consent_declared=True)
        message = Message(ward_id=ward.id, kind=MessageKind.DIGEST, subject="Riverside news",
                          html="<p>news</p>", text="news", calendar=None)
        session.add(message)
        session.flush()
        people = []
        for n in range(residents):
            address = f"resident{n}@home.example"
            subscription = subscribe(session, address, "RIV", consent, confirmed=True)
            queue_for_subscriber(session, message, subscription.subscriber_id)
            people.append((address, subscription.subscriber_id))
        ids = _deliveries(session, message.id)
        result = [(address, *ids[subscriber]) for address, subscriber in people]
    engine.dispose()
    return result


def _deliveries(session: Session, message_id: int) -> dict[int, tuple[int, str]]:
    rows = session.query(Delivery).filter(Delivery.message_id == message_id).all()
    for row in rows:
        row.status = DeliveryStatus.SENT
    return {row.subscriber_id: (row.id, row.nonce) for row in rows}


def reply(address: str, delivery: int, nonce: str, n: int) -> bytes:
    token = sign_reference(SECRET, Purpose.REPLY, delivery, nonce)
    return (f"From: Resident {n} <{address}>\r\nTo: reply+{token}@{DOMAIN}\r\n"
            f"Subject: Re: Riverside news\r\nMessage-ID: <r{n}@home.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Thank you for the update number {n}. Will the team be at the fete?\r\n\r\n"
            "On Fri, 20 Nov 2026 at 16:00, Riverside team wrote:\r\n"
            "> Bike marking at the library on Saturday.\r\n> Call 101 to report.\r\n").encode()


def bounce(address: str, delivery: int, nonce: str, n: int, *, hard: bool) -> bytes:
    token = sign_reference(SECRET, Purpose.BOUNCE, delivery, nonce)
    action, status = ("failed", "5.1.1") if hard else ("delayed", "4.2.2")
    return (f"From: MAILER-DAEMON@mx{n}.home.example (Mail Delivery System)\r\n"
            f"To: bounces+{token}@{DOMAIN}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: <b{n}@mx.home.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver.\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
            f"Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox problem\r\n--B--\r\n"
            ).encode()


def out_of_office(address: str, delivery: int, nonce: str, n: int) -> bytes:
    token = sign_reference(SECRET, Purpose.REPLY, delivery, nonce)
    return (f"From: {address}\r\nTo: reply+{token}@{DOMAIN}\r\n"
            f"Subject: Automatic reply: Riverside news\r\nMessage-ID: <o{n}@home.example>\r\n"
            "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n\r\n"
            "I am away until Monday.\r\n").encode()


def forged(address: str, delivery: int, n: int) -> bytes:
    return (f"From: {address}\r\nTo: reply+{delivery}-{'a' * 20}@{DOMAIN}\r\n"
            f"Subject: Re: news\r\nMessage-ID: <f{n}@home.example>\r\n\r\nSTOP\r\n").encode()


MIX = (("reply", 0.60), ("bounce/hard", 0.15), ("bounce/soft", 0.10), ("auto_reply", 0.10),
       ("rejected", 0.05))


def one_message(kind: str, address: str, delivery: int, nonce: str, n: int) -> bytes:
    if kind == "reply":
        return reply(address, delivery, nonce, n)
    if kind.startswith("bounce/"):
        return bounce(address, delivery, nonce, n, hard=kind == "bounce/hard")
    if kind == "auto_reply":
        return out_of_office(address, delivery, nonce, n)
    return forged(address, delivery, n)


def write_messages(folder: Path, people: list[tuple[str, int, str]],
                   count: int) -> list[tuple[Path, str]]:
    rng = random.Random(7)
    files = []
    for n in range(count):
        kind = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
        address, delivery, nonce = people[n % len(people)]
        path = folder / f"{n:05d}.eml"
        path.write_bytes(one_message(kind, address, delivery, nonce, n))
        files.append((path, kind))
    return files


HUGE = 24 * 1024 * 1024


def huge(kind: str, address: str, delivery: int, nonce: str, n: int) -> bytes:
    """A message of some 24 MB; `kind` says which."""
    if kind == "bounce":
        line = b"Bike marking at the library on Saturday, and more news from the team.\r\n"
        returned = (b"--B\r\nContent-Type: message/rfc822\r\n\r\nSubject: Riverside news"
                    b"\r\n\r\n" + line * (HUGE // len(line)) + b"\r\n--B--\r\n")
        report = bounce(address, delivery, nonce, n, hard=True)
        return report.replace(b"--B--\r\n", returned)
    head = reply(address, delivery, nonce, n).split(b"\r\n\r\n", 1)[0]
    if kind == "forged photo":
        head = forged(address, delivery, n).split(b"\r\n\r\n", 1)[0]
    head = head.replace(b"Content-Type: text/plain; charset=utf-8\r\n", b"")
    words = b"Will the team be at the fete? "
    if kind in ("photo", "forged photo"):
        photo = base64.encodebytes(bytes(range(256)) * (HUGE * 3 // 4 // 256))
        return (head + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="P"'
                b"\r\n\r\n--P\r\nContent-Type: text/plain\r\n\r\n" + words + b"Photo attached."
                b"\r\n--P\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n"
                b"\r\n" + photo.replace(b"\n", b"\r\n") + b"--P--\r\n")
    if kind == "text":
        line = b"Someone parks on the pavement by the school every morning, and more.\r\n"
        return (head + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + words
                + b"\r\n" + line * (HUGE // len(line)))
    line = b"<p>Someone parks on the <b>pavement</b> by the school every morning.</p>\r\n"
    return (head + b"\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>" + words
            + b"</p>\r\n" + line * (HUGE // len(line)))


def main_huge() -> None:
    from alerts.core.config import load_settings
    from alerts.inbound.intake import Intake
    from alerts.inbound.journal import Via

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'alerts.db'}"
        people = seed(url, residents=20)
        base = load_settings(environ={})
        settings = dataclasses.replace(
            base, database=dataclasses.replace(base.database, url=url),
            mail=dataclasses.replace(base.mail, maildir=str(folder / "outbox"),
                                     reply_domain=DOMAIN),
            web=dataclasses.replace(base.web, secret_key=SECRET),
            inbound=dataclasses.replace(base.inbound, held_dir=str(folder / "held")))
        engine = make_engine(url)
        intake = Intake(session_factory(engine), settings)

        def timed(raw: bytes) -> tuple[float, float, str]:
            """(wall seconds, CPU seconds, what was done)"""
            started, cpu = time.perf_counter(), time.process_time()
            outcome = intake.process(raw, via=Via.FILE)
            return (time.perf_counter() - started, time.process_time() - cpu,
                    f"{outcome.kind}: {outcome.action}")

        normal = sorted(timed(reply(*people[n % 10], n))[:2] for n in range(11))
        wall, cpu = normal[len(normal) // 2]
        print(f"a normal reply (baseline, median of {len(normal)}): {wall * 1000:.1f} ms, "
              f"{cpu * 1000:.1f} ms of CPU")
        print("24 MB message        size   wall (x baseline)   CPU (x baseline)  outcome")
        for n, kind in enumerate(("photo", "text", "html", "bounce", "forged photo"), 100):
            raw = huge(kind, *people[10 + n % 10], n)
            took, used, what = timed(raw)
            print(f"{kind:<18} {len(raw) / 2**20:5.1f} MB {took:6.2f} s ({took / wall:4.0f})  "
                  f"{used:6.2f} s ({used / cpu:4.0f})  {shorten(what, 40)}")
        engine.dispose()


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# Run as `python -c PHASES config files...`: the command, its CPU time split by phase.
PHASES = """
import json, sys, time
import alerts.cli.inbound as command
from alerts.inbound.intake import Intake
spent = {"intake": 0.0, "forwards": 0.0}
def timed(name, function):
    def run(*args, **kwargs):
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.process_time() - started
    return run
Intake.process_many = timed("intake", Intake.process_many)
command.deliver_due = timed("forwards", command.deliver_due)
first = [None]
batches = command._batches
def noted(*args, **kwargs):
    first[0] = first[0] or time.process_time()
    return batches(*args, **kwargs)
command._batches = noted
from alerts.cli import cli
try:
    cli(["--config", sys.argv[1], "inbound", "process", "--json", *sys.argv[2:]],
        prog_name="alerts")
except SystemExit:
    pass
spent["start"] = first[0]
spent["total"] = time.process_time()
print(json.dumps(spent), file=sys.stderr)
"""


def phases(config: Path, files: list[tuple[Path, str]]) -> dict[str, float]:
    """CPU seconds of one `alerts inbound process` run, by phase (see the module's doc)."""
    result = subprocess.run([sys.executable, "-c", PHASES, str(config),
                             *(str(path) for path, _ in files)],
                            capture_output=True, text=True, check=False)
    spent: dict[str, float] = json.loads(result.stderr.strip().splitlines()[-1])
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--phases", action="store_true",
                        help="then split the command's CPU time by phase (a second run)")
    parser.add_argument("--huge", action="store_true",
                        help="time 24 MB messages against a normal one instead")
    options = parser.parse_args()
    if options.huge:
        main_huge()
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'alerts.db'}"
        config = folder / "alerts.toml"
        config.write_text(f'[database]\nurl = "{url}"\n[mail]\nmaildir = "{folder / "outbox"}"\n'
                          f'reply_domain = "{DOMAIN}"\n[web]\nsecret_key = "{SECRET}"\n'
                          f'[inbound]\nheld_dir = "{folder / "held"}"\n')
        people = seed(url)
        mail_dir = folder / "mail"
        mail_dir.mkdir()
        files = write_messages(mail_dir, people, options.messages)
        if options.phases:  # the second run starts from the same database
            shutil.copy(folder / "alerts.db", folder / "before.db")

        started, cpu = time.perf_counter(), time.process_time()
        parser_ = BytesParser(policy=policy.default)
        for path, _ in files:
            parser_.parsebytes(path.read_bytes())
        floor = time.perf_counter() - started
        floor_cpu = time.process_time() - cpu

        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "alerts.cli", "--config", str(config), "inbound", "process",
             "--json", *(str(path) for path, _ in files)],
            capture_output=True, text=True, check=False)
        took = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kb, took_cpu = children.ru_maxrss, children.ru_utime + children.ru_stime
        if result.returncode != 0:
            sys.exit(f"alerts inbound process failed ({result.returncode}):\n{result.stderr}")
        outcomes = [json.loads(line) for line in result.stdout.splitlines()]
        got: Counter[str] = Counter()
        right = 0
        for (_, expected), outcome in zip(files, outcomes, strict=True):
            label = outcome["kind"] + (f"/{outcome['severity']}" if outcome["severity"] else "")
            got[label] += 1
            right += label == expected
        forwards = len(list((folder / "outbox" / "new").glob("*")))
        n = len(files)
        print(f"messages: {n} ({dict(Counter(kind for _, kind in files))})")
        print(f"classified as generated: {right}/{n}; outcomes {dict(got)}")
        print(f"forwarded to the team (maildir): {forwards}")
        print(f"email parser alone (baseline): {n / floor:,.0f} msg/s ({floor:.2f} s)")
        print(f"alerts inbound process:        {n / took:,.0f} msg/s ({took:.2f} s, including "
              "interpreter start and forwarding)")
        print(f"ratio to the parser alone:     {floor / took:.3f}")
        # CPU seconds move less than wall time on a machine others are using.
        print(f"CPU seconds, parser / command: {floor_cpu:.2f} / {took_cpu:.2f} "
              f"(ratio {floor_cpu / took_cpu:.3f})")
        print(f"peak RSS of the command:       {peak_kb / 1024:.0f} MB")
        print(f"load average (1, 5, 15 min):   {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
        if options.phases:
            shutil.copy(folder / "before.db", folder / "alerts.db")
            shutil.rmtree(folder / "outbox", ignore_errors=True)
            shutil.rmtree(folder / "held", ignore_errors=True)
            spent = phases(config, files)
            rest = spent["total"] - spent["start"] - spent["intake"] - spent["forwards"]
            print(f"CPU by phase, a second run:    start-up {spent['start']:.2f} s, intake "
                  f"{spent['intake']:.2f} s ({spent['intake'] / n * 1000:.2f} ms a message), "
                  f"sending the forwards {spent['forwards']:.2f} s, the rest {rest:.2f} s; "
                  f"total {spent['total']:.2f} s (0.2 of the parser: "
                  f"{floor_cpu / 0.2:.2f} s)")


if __name__ == "__main__":
    main()
