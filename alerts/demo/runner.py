"""`alerts demo`: a self-contained tour of collect → digest → deliver → replies in one folder.

The runner writes its own config and sample files, the feeds and the calendar as `file://`
sources that a demo config's fetcher reads through the real conditional-GET path (so that
`alerts run` still collects them after the demo), then drives the same services as the CLI.
Nothing leaves the machine: mail goes to DIR/outbox, a maildir. Residents then
write back to the digests they got (a reply, one that reads like a crime report, an
out-of-office) and one address bounces; the replies reach the ward team's address, in the
same maildir, and the residents their acknowledgements.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import Role, add_user
from alerts.core.config import DkimSettings, Settings, load_settings
from alerts.core.db import make_engine, migrate, session_factory, transaction
from alerts.core.errors import AlertsError
from alerts.delivery.sender import DeliveryReport, deliver_due
from alerts.inbound.intake import Intake, Outcome
from alerts.inbound.journal import Via
from alerts.mail.dkim import load_signer
from alerts.mail.marks import fill_links
from alerts.mail.messages import STAFF_KINDS, Message, MessageKind
from alerts.sources.collect import CollectReport, collect
from alerts.sources.items import ItemKind, store_items
from alerts.sources.officer import officer_item
from alerts.sources.registry import add_source, officer_source
from alerts.usecases.digest_rounds import DigestOutcome, queue_digests
from alerts.usecases.posting import UrgentOutcome, post_urgent
from subscriptions.base import utcnow
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.csv_io import (
    RowError,
    decode,
    import_rows,
    parse_wards_csv,
    read_subscribers,
)
from subscriptions.languages import Language
from subscriptions.schemes import add_scheme
from subscriptions.subscribers import (
    Subscriber,
    Subscription,
    find_subscriber,
    subscribe,
    unsubscribe_everywhere,
)
from subscriptions.topics import join_topics
from subscriptions.wards import Ward, get_ward, import_wards

DATA = Path(__file__).with_name("data")
DOMAIN = "alerts.example.org"  # the demo's From, and so its DKIM signing domain
MARKER = "# written by `alerts demo`"
DEMO_PORT = 8000  # where `alerts --config DIR/alerts.toml run` serves the demo's links
FEEDS = {
    "riverside-news.rss": [("RIV", "rss")],
    "hillcrest-news.atom": [("HIL", "atom")],
    "advice.rss": [("RIV", "rss"), ("HIL", "rss"), ("MKT", "rss")],
    "sessions.ics": [("RIV", "ics")],
}


class DemoError(AlertsError):
    """The demo cannot run in the folder given; the message says why."""


@dataclass
class DemoReport:
    folder: Path
    config: Path
    outbox: Path
    base_url: str  # where `alerts --config CONFIG run` serves every link of the demo's mail
    collected: list[CollectReport] = field(default_factory=list)
    digests: list[DigestOutcome] = field(default_factory=list)
    second_round: list[DigestOutcome] = field(default_factory=list)
    delivery: DeliveryReport | None = None
    urgent: UrgentOutcome | None = None
    skipped_rows: list[RowError] = field(default_factory=list)
    inbound: list[tuple[str, Outcome]] = field(default_factory=list)
    # Demo staff accounts: (role, address, password), to sign in with `alerts web`.
    staff: list[tuple[str, str, str]] = field(default_factory=list)
    forwarded: DeliveryReport | None = None  # the replies forwarded to the ward teams
    answers: DeliveryReport | None = None
    previews: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def prepare_folder(folder: Path) -> None:
    """Use an empty or missing folder, or one an earlier demo wrote (reset it)."""
    config = folder / "alerts.toml"
    if folder.exists() and any(folder.iterdir()):
        if not (config.exists() and config.read_text(encoding="utf-8").startswith(MARKER)):
            raise DemoError(
                f"{folder} is not empty and was not written by `alerts demo`; "
                "choose another --dir"
            )
        for name in ("alerts.db", "alerts.db-wal", "alerts.db-shm"):
            (folder / name).unlink(missing_ok=True)
        for name in ("outbox", "feeds", "previews"):
            shutil.rmtree(folder / name, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def write_config(folder: Path, dkim: DkimSettings | None = None, port: int = DEMO_PORT) -> Path:
    """The demo's config: its links point at `alerts run` on 127.0.0.1:`port`, where the
    service this config starts will listen (over http: mail stays in the maildir)."""
    config = folder / "alerts.toml"
    signing = "" if dkim is None else "\n[dkim]\n" + "".join(
        f'{key} = "{value}"\n' for key, value in vars(dkim).items())
    config.write_text(
        f"""{MARKER}; see config.example.toml for every key.
demo = true

[database]
url = "sqlite:///{(folder / 'alerts.db').as_posix()}"

[mail]
transport = "maildir"
maildir = "{(folder / 'outbox').as_posix()}"
from_address = "alerts@alerts.example.org"
from_name = "Neighbourhood Alerts (demo)"
reply_domain = "reply.alerts.example.org"

[web]
host = "127.0.0.1"
port = {port}
base_url = "http://127.0.0.1:{port}"
secret_key = "{secrets.token_urlsafe(32)}"

[force]
name = "Vale Police"
{signing}""",
        encoding="utf-8",
    )
    return config


def write_feeds(feeds: Path, now: datetime, zone: ZoneInfo, site: str) -> None:
    """Sample feeds and a calendar, dated around `now` so that the demo never goes stale;
    their items link to the wards' archives on `site`, the service's base URL."""
    local = now.astimezone(zone)
    first = (local + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    ics = "%Y%m%dT%H%M%S"
    values = {
        "site": site,
        "day_minus_1": format_datetime(now - timedelta(days=1)),
        "day_minus_2": format_datetime(now - timedelta(days=2)),
        "day_minus_4": format_datetime(now - timedelta(days=4)),
        "iso_day_minus_1": (now - timedelta(days=1)).isoformat(),
        "iso_day_minus_3": (now - timedelta(days=3)).isoformat(),
        "ics_now": now.strftime("%Y%m%dT%H%M%SZ"),
        "ics_first_session": first.strftime(ics),
        "ics_first_session_end": (first + timedelta(hours=2)).strftime(ics),
        "ics_skipped_session": (first + timedelta(weeks=2)).strftime(ics),
        "ics_cancelled": (first + timedelta(days=1, hours=9)).strftime(ics),
        "ics_cancelled_end": (first + timedelta(days=1, hours=10)).strftime(ics),
    }
    for name in FEEDS:
        text = Template((DATA / name).read_text(encoding="utf-8")).substitute(values)
        (feeds / name).write_text(text, encoding="utf-8")


def run_demo(folder: Path, say: Callable[[str], None] = print,
             dkim: DkimSettings | None = None, port: int = DEMO_PORT) -> DemoReport:
    """Run the tour in `folder`; with `dkim`, every message is signed with its keys. Its
    emails link to the service `alerts run` starts on 127.0.0.1:`port` with its config."""
    started = time.perf_counter()
    folder = folder.resolve()
    if dkim is not None:
        load_signer(dkim)  # a key that cannot be used stops the demo before it starts
    prepare_folder(folder)
    config = write_config(folder, dkim, port)
    settings: Settings = load_settings(config, environ={})
    report = DemoReport(folder, config, Path(settings.mail.maildir), settings.web.base_url)
    engine = make_engine(settings.database.url)
    try:
        migrate(engine, settings=settings)
        factory = session_factory(engine)
        now = utcnow()
        zone = ZoneInfo(settings.scheduler.timezone)
        feeds = folder / "feeds"
        feeds.mkdir()
        # Files the service still reads once the demo has ended (file://localhost/...: a
        # URL with no host is taken for a relative one by httpx).
        base = "file://localhost" + feeds.as_uri().removeprefix("file://")
        write_feeds(feeds, now, zone, settings.web.base_url)
        _load_people(factory, folder, base, now, report, settings)
        report.staff = _add_staff(factory)
        say(f"Collecting the sample feeds in {feeds}/ ...")
        report.collected.append(collect(factory, settings))
        report.digests = queue_digests(factory, settings, now=now)
        with transaction(factory) as session:
            report.urgent = post_urgent(
                session, settings, ward_code="HIL",
                title="Road closed on Beacon Rise this evening",
                body="Beacon Rise is closed between Orchard Road and the church while "
                "officers deal with a serious collision. Please use another route and "
                "keep away from the cordon.",
                now=now,
            )
        report.previews = _write_previews(factory, settings, folder)
        report.delivery = deliver_due(factory, settings)
        report.inbound = _residents_write_back(factory, settings, report.outbox)
        report.forwarded = deliver_due(factory, settings, kinds=(MessageKind.FORWARD,))
        # A second round: the feeds answer "not modified" and nothing new is queued.
        report.collected.append(collect(factory, settings))
        report.second_round = queue_digests(factory, settings)
        report.answers = deliver_due(factory, settings)
    finally:
        engine.dispose()
    report.seconds = time.perf_counter() - started
    return report


DEMO_TAGGED_POSTS = [
    ("Calls from fake bank staff",
     "Several people in the square had calls from someone claiming to be their bank and "
     "asking them to move money. Your bank will never ask you to do that: hang up and call "
     "the number on your card from another phone.", "scams"),
    ("Sheds broken into behind Tanner's Row",
     "Two garden sheds were forced open overnight and tools taken. Please lock sheds and "
     "mark your tools with your postcode.", "burglary"),
]


def _load_people(
    factory: sessionmaker[Session], folder: Path, base: str, now: datetime, report: DemoReport,
    settings: Settings,
) -> None:
    with transaction(factory) as session:
        rows, _ = parse_wards_csv((DATA / "wards.csv").read_text(encoding="utf-8"))
        import_wards(session, rows)
        for name, targets in FEEDS.items():
            for ward, kind in targets:
                add_source(session, ward, kind, f"{base}/{name}", local_files=True)
        consent = Consent(at=now, method=ConsentMethod.DEMO, source="demo subscribers.csv",
                          prior_consent_declared=True)
        good, bad = read_subscribers(decode((DATA / "subscribers.csv").read_bytes()))
        _, unknown = import_rows(session, good, consent, confirmed=True)
        report.skipped_rows = sorted([*bad, *unknown], key=lambda e: e.line)
        pending = Consent(at=now, method=ConsentMethod.DEMO, source="demo")
        subscribe(session, "not.confirmed.yet@home.example", "RIV", pending, name="Jo Pending")
        subscribe(session, "moved.away@home.example", "RIV", consent, name="Sam Moved",
                  confirmed=True)
        unsubscribe_everywhere(session, "moved.away@home.example")
        market = get_ward(session, "MKT")
        start = (now + timedelta(days=5)).astimezone(ZoneInfo("Europe/London")).replace(
            hour=11, minute=0, second=0, microsecond=0
        )
        item = officer_item(
            title="Police stall at the Saturday market",
            body="Come and find us by the clock tower. We will be handing out purse bells "
            "and talking about keeping phones safe in crowds.",
            kind=ItemKind.SESSION,
            starts=start,
            ends=start + timedelta(hours=3),
            location="Clock tower, Market Square",
            now=now,
        )
        store_items(session, officer_source(session, market), [item])
        note = officer_item(
            title="New officer for Market Square",
            body="<p>PC Rowan Ellis has joined the team. Say hello at the market stall!</p>",
            kind=ItemKind.POST,
            starts=None,
            ends=None,
            location=None,
            now=now,
        )
        store_items(session, officer_source(session, market), [note])
        tagged = [officer_item(
            title=title, body=body, kind=ItemKind.POST, starts=None, ends=None, location=None,
            now=now, topics=[topic], known_topics=settings.topics.names)
            for title, body, topic in DEMO_TAGGED_POSTS]
        store_items(session, officer_source(session, market), tagged)
        # Two residents' own choices, made as on the preferences page: Bryn follows only
        # scams in Market Square, and Chloe reads her email in Welsh.
        for subscription in session.scalars(select(Subscription).join(Subscriber).where(
                Subscriber.email == "bryn.jones@home.example")):
            subscription.topics = join_topics(["scams"])
        chloe = find_subscriber(session, "chloe.martin@home.example")
        if chloe is not None:
            chloe.language = Language.WELSH


def _write_previews(factory: sessionmaker[Session], settings: Settings, folder: Path) -> list[Path]:
    """Each ward's latest digest as a resident would see it, for a browser."""
    previews = folder / "previews"
    previews.mkdir(exist_ok=True)
    written = []
    with factory() as session:
        for message, code in session.execute(  # residents' mail, not the staff's
                select(Message, Ward.code).join(Ward, Ward.id == Message.ward_id)
                .where(Message.kind.not_in(STAFF_KINDS)).order_by(Message.id)).all():
            suffix = "" if message.kind == MessageKind.DIGEST else f"-{message.kind}"
            if message.language != Language.ENGLISH:
                suffix += f"-{message.language}"
            # A ward's residents who follow other topics get a digest of their own.
            path = previews / f"{code}{suffix}.html"
            for n in range(2, 100):
                if path not in written:
                    break
                path = previews / f"{code}{suffix}-{n}.html"
            base = settings.web.base_url
            path.write_text(fill_links(message.html, f"{base}/unsubscribe",
                                       f"{base}/preferences"), encoding="utf-8")
            written.append(path)
    return written


def _delivered_to(outbox: Path) -> dict[str, EmailMessage]:
    """The first email each resident got, by address."""
    found: dict[str, EmailMessage] = {}
    for path in sorted((outbox / "new").iterdir()):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        address = message["To"].addresses[0].addr_spec
        found.setdefault(address, message)
    return found


def _answer(to: EmailMessage, sender: str, text: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = str(to["Reply-To"])
    message["Subject"] = f"Re: {to['Subject']}"
    message["In-Reply-To"] = str(to["Message-ID"])
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    quoted = "\n".join(f"> {line}" for line in _plain(to).splitlines()[:6])
    message.set_content(f"{text}\n\nOn {to['Date']}, {to['From']} wrote:\n{quoted}\n")
    return message.as_bytes()


def _plain(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if isinstance(part, EmailMessage) else ""


def _bounce(to: EmailMessage) -> bytes:
    """The report a resident's mail system sends back, to the digest's own bounces+TOKEN
    envelope sender (its Return-Path): only that token makes intake believe a bounce."""
    address = to["To"].addresses[0].addr_spec
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.home.example>\r\n"
        f"To: {to['Return-Path']}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="demo"\r\n'
        "\r\n--demo\r\nContent-Type: text/plain\r\n\r\n"
        "The mail system could not deliver your message: the mailbox does not exist.\r\n"
        "\r\n--demo\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.home.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--demo--\r\n"
    ).encode()


def _residents_write_back(factory: sessionmaker[Session], settings: Settings,
                          outbox: Path) -> list[tuple[str, Outcome]]:
    """What comes back after a round of digests, handled as `alerts inbound` would."""
    got = _delivered_to(outbox)
    mail = [
        ("a reply", _answer(got["amira.hassan@home.example"], "Amira Hassan "
         "<amira.hassan@home.example>", "Thank you for the news. Will anyone from the team "
         "be at the school fair next month? The parents would love to meet you.")),
        ("a reply that reads like a crime report", _answer(
         got["tom.okafor@home.example"], "tom.okafor@home.example",
         "There are two men trying car doors on Mill Lane right now.")),
        ("an out-of-office", _answer(got["dev.patel@home.example"],
         "dev.patel@home.example", "I am away until the 30th with no email.",
         Auto_Submitted="auto-replied", X_Autoreply="yes")),
        ("a bounce", _bounce(got["gwen.price@home.example"])),
    ]
    intake = Intake(factory, settings)
    return [(what, intake.process(data, via=Via.FILE)) for what, data in mail]


def _add_staff(factory: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    """An officer for Riverside and the coordinator of its Mill Lane Watch scheme, with
    passwords made up for this run (printed by the demo, never stored in clear)."""
    staff = [(Role.OFFICER, "pc.riverside@police.example", "Riverside officer"),
             (Role.COORDINATOR, "millane.coordinator@home.example", "Mill Lane coordinator")]
    made = []
    with transaction(factory) as session:
        scheme = add_scheme(session, "Mill Lane Watch", "RIV")
        for role, email, name in staff:
            password = secrets.token_urlsafe(12)
            add_user(session, email, role, name=name, password=password,
                     ward_codes=["RIV"] if role == Role.OFFICER else [],
                     scheme_names=[scheme.name] if role == Role.COORDINATOR else [])
            made.append((role.value, email, password))
    return made
