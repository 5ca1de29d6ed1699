"""Settings: built-in defaults, overlaid by a TOML file, overlaid by ALERTS_<SECTION>_<KEY>.

One typed `Settings` value is built at the edge (the CLI) and passed inward.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.core.errors import AlertsError
from subscriptions.topics import MAX_TOPIC_NAME, normalise_topic

DEFAULT_SECRET_KEY = "change-me"
SMTP_SECURITY = ("starttls", "tls", "none")  # the values of mail.smtp_security


class ConfigError(AlertsError):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///alerts.db"
    busy_timeout_seconds: float = 30.0  # SQLite: how long a write waits for another's lock


@dataclass(frozen=True)
class MailSettings:
    transport: str = "maildir"
    maildir: str = "outbox"
    from_address: str = "alerts@example.org"
    from_name: str = "Neighbourhood Alerts"  # staff mail; residents' is ForceSettings.sender
    reply_domain: str = "reply.example.org"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False  # the older spelling of smtp_security = "starttls"
    # "starttls" (upgrade the connection; refused if the relay cannot), "tls" (implicit TLS,
    # usually port 465) or "none"; "" = "starttls" when smtp_starttls is true, else "none".
    smtp_security: str = ""
    smtp_verify_certificate: bool = True  # false only for a relay with a self-signed cert
    smtp_ca_file: str = ""                # a CA bundle to trust instead of the system's
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: float = 30.0
    concurrency: int = 20
    rate_per_second: float = 0.0
    max_attempts: int = 8
    retry_base_seconds: float = 60.0
    lease_seconds: int = 300
    batch_size: int = 200

    @property
    def security(self) -> str:
        """How the relay is reached: `smtp_security`, or what the older `smtp_starttls` says."""
        return self.smtp_security or ("starttls" if self.smtp_starttls else "none")


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = DEFAULT_SECRET_KEY
    # Reverse proxies (addresses or networks) whose X-Forwarded-For/-Proto are believed;
    # from anyone else those headers are ignored (alerts/web/app.py).
    trusted_proxies: tuple[str, ...] = ()
    # Web processes serving the port (alerts/service/workers.py); 1 = the service's own.
    workers: int = 1


@dataclass(frozen=True)
class SchedulerSettings:
    timezone: str = "Europe/London"
    digest_cron: str = "0 16 * * fri"
    collect_minutes: int = 15
    outbox_poll_seconds: float = 1.0
    reconcile_seconds: float = 60.0
    # A job whose next run is this far in the past means the scheduler has stopped waking:
    # /healthz answers 503 and `alerts status` says "stalled", naming the job.
    stall_grace_seconds: float = 300.0


@dataclass(frozen=True)
class SourcesSettings:
    policeuk_base_url: str = "https://data.police.uk/api"
    fetch_timeout: float = 20.0
    user_agent: str = "neighbourhood-alerts/0.1 (+https://github.com/neighbourhood-alerts)"
    calendar_weeks: int = 6
    max_item_age_days: int = 30
    # Bounds on what one source may bring in one collect (a broken or hostile feed or
    # calendar); what is left out is reported, naming the source.
    max_occurrences_per_event: int = 100  # a recurring calendar event, within calendar_weeks
    max_items_per_collect: int = 500      # items (posts or sessions) kept from one source
    max_feed_entries: int = 200           # an RSS/Atom feed: only its newest entries are read


@dataclass(frozen=True)
class InboundSettings:
    lmtp: str = ""
    imap_host: str = ""
    imap_port: int = 993
    imap_ssl: bool = True
    imap_username: str = ""
    imap_password: str = ""
    imap_mailbox: str = "INBOX"
    imap_done_mailbox: str = "Processed"
    poll_seconds: int = 60
    held_dir: str = "inbound-held"
    soft_bounce_limit: int = 3
    soft_bounce_days: int = 30
    reminder_days: int = 3
    reminder_cron: str = "0 8 * * *"
    lmtp_max_sessions: int = 50  # LMTP connections at once; more are answered 421 (try later)
    # The authserv-id of the receiving MTA's Authentication-Results header (RFC 8601) that is
    # believed; "" = none is, so no reply's sender counts as verified by DMARC.
    trusted_authserv_id: str = ""


@dataclass(frozen=True)
class TopicsSettings:
    """What officers may tag a post with, and residents may choose to follow."""

    names: tuple[str, ...] = ("burglary", "scams", "vehicle crime", "rural",
                              "anti-social behaviour", "events")

    def __post_init__(self) -> None:
        # Kept as items and subscriptions store them ("Vehicle  Crime" → "vehicle crime").
        object.__setattr__(self, "names", tuple(normalise_topic(n) for n in self.names))


@dataclass(frozen=True)
class ForceSettings:
    """Who the footer tells residents to contact; every message repeats it."""

    name: str = "your local police force"
    report_online_url: str = "https://www.police.uk/pu/contact-us/"
    crimestoppers_phone: str = "0800 555 111"
    crimestoppers_url: str = "https://crimestoppers-uk.org/"
    # The front door (`/`), its privacy notice and accessibility statement say these.
    team_name: str = "Safer Neighbourhood Teams"
    # One ward's team, as its emails' From and mastheads name it ({ward}: the ward's name).
    ward_team: str = "{ward} Safer Neighbourhood Team"
    controller: str = "your local police force"  # the data controller
    contact_email: str = "data.protection@example.org"  # privacy and accessibility questions
    retention: str = "while you are subscribed, then deleted within a month"
    lawful_basis: str = "public task (UK GDPR Article 6(1)(e))"
    statement_reviewed: str = "1 December 2026"  # when both statements were last reviewed

    def sender(self, ward_name: str | None = None) -> str:
        """Who a resident's email is from, as its From name and masthead say: "Riverside
        Safer Neighbourhood Team, Vale Police", or the force's teams for no one ward."""
        team = self.team_of(ward_name) if ward_name else self.team_name
        return f"{team}, {self.name}"

    def team_of(self, ward_name: str) -> str:
        """One ward's team by name, as ward_team says: "Riverside Safer Neighbourhood Team"."""
        return self.ward_team.replace("{ward}", ward_name)


@dataclass(frozen=True)
class DkimSettings:
    """DKIM signing of every message as it leaves: on when domain, selector and key are set."""

    domain: str = ""
    selector: str = ""
    private_key_file: str = ""      # RSA, PEM (`alerts dkim keygen` writes one)
    # An optional second signature, Ed25519 (RFC 8463), beside the RSA one.
    ed25519_selector: str = ""
    ed25519_private_key_file: str = ""


@dataclass(frozen=True)
class WebhooksSettings:
    """Bounce and complaint events from the relay's provider; each is off while unset."""

    sendgrid_public_key: str = ""   # the Event Webhook's ECDSA verification key (base64)
    postmark_username: str = ""     # basic auth on /webhooks/postmark
    postmark_password: str = ""
    mailgun_signing_key: str = ""   # HMAC key of Mailgun's webhook signatures
    ses_topic_arns: tuple[str, ...] = ()  # SNS topics whose notifications are believed
    sns_trust_root: str = ""        # a CA file for SNS signing certificates (tests); "" = system
    # Hosts beside sns.<region>.amazonaws.com that SNS addresses may name (http too): tests
    # serving a certificate on loopback. Honoured only together with sns_trust_root.
    sns_local_hosts: tuple[str, ...] = ()
    max_age_seconds: int = 300      # older (or replayed) calls are refused


@dataclass(frozen=True)
class MetricsSettings:
    # GET /metrics (Prometheus text format) answers only `Authorization: Bearer <token>`;
    # while the token is empty the address does not exist (404).
    token: str = ""


@dataclass(frozen=True)
class LogSettings:
    format: str = "text"  # "text", or "json": one JSON object per line


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    web: WebSettings = field(default_factory=WebSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    topics: TopicsSettings = field(default_factory=TopicsSettings)
    force: ForceSettings = field(default_factory=ForceSettings)
    dkim: DkimSettings = field(default_factory=DkimSettings)
    webhooks: WebhooksSettings = field(default_factory=WebhooksSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    demo: bool = False
    source_file: str | None = None

    def require_secret_key(self) -> None:
        """Refuse the well-known default key anywhere but the demo."""
        if not self.demo and self.web.secret_key == DEFAULT_SECRET_KEY:
            where = self.source_file or "the built-in defaults"
            raise ConfigError(
                f"web.secret_key is still the default {DEFAULT_SECRET_KEY!r} ({where}); "
                "set a long random value in the config or ALERTS_WEB_SECRET_KEY"
            )


_SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseSettings,
    "mail": MailSettings,
    "web": WebSettings,
    "scheduler": SchedulerSettings,
    "sources": SourcesSettings,
    "inbound": InboundSettings,
    "topics": TopicsSettings,
    "force": ForceSettings,
    "dkim": DkimSettings,
    "webhooks": WebhooksSettings,
    "metrics": MetricsSettings,
    "log": LogSettings,
}


def _coerce(section: str, key: str, value: Any, default: Any, origin: str) -> Any:
    name = f"{section}.{key}"
    if isinstance(default, tuple):
        # A TOML array, or a comma-separated ALERTS_* variable.
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{name} in {origin} must be a list of strings, not {value!r}")
        return tuple(i.strip() for i in items if i.strip())
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name} in {origin} must be true or false, not {value!r}")
    if isinstance(default, int) and not isinstance(value, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} in {origin} must be a whole number, not {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} in {origin} must be a number, not {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{name} in {origin} must be a string, not {value!r}")
    return value


def _overlay(
    base: Settings, data: Mapping[str, Any], origin: str, *, strict: bool = True
) -> Settings:
    changes: dict[str, Any] = {}
    for section, values in data.items():
        if section == "demo":
            changes["demo"] = _coerce("", "demo", values, False, origin)
            continue
        if section not in _SECTIONS:
            if strict:
                raise ConfigError(f"unknown section [{section}] in {origin}")
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{section}] in {origin} must be a table")
        current = changes.get(section, getattr(base, section))
        known = {f.name for f in dataclasses.fields(current)}
        updates: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"unknown key {section}.{key} in {origin}")
            updates[key] = _coerce(section, key, value, getattr(current, key), origin)
        changes[section] = dataclasses.replace(current, **updates)
    return dataclasses.replace(base, **changes)


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("ALERTS_") or name == "ALERTS_CONFIG":
            continue
        rest = name[len("ALERTS_") :].lower()
        for section, cls in _SECTIONS.items():
            prefix = section + "_"
            if rest.startswith(prefix):
                key = rest[len(prefix) :]
                if key in {f.name for f in dataclasses.fields(cls)}:
                    overrides.setdefault(section, {})[key] = value
                break
    return overrides


def config_path(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """`--config FILE`, else $ALERTS_CONFIG, else ./alerts.toml if present, else none."""
    if explicit:
        return Path(explicit)
    if environ.get("ALERTS_CONFIG"):
        return Path(environ["ALERTS_CONFIG"])
    local = Path("alerts.toml")
    return local if local.exists() else None


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the TOML file (if any), then ALERTS_* variables."""
    env = os.environ if environ is None else environ
    settings = Settings()
    file = config_path(str(path) if path else None, env)
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        settings = _overlay(settings, data, str(file))
        settings = dataclasses.replace(settings, source_file=str(file))
    settings = _overlay(settings, _environment_overrides(env), "the environment")
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if settings.mail.transport not in ("maildir", "smtp"):
        raise ConfigError(
            f"mail.transport must be \"maildir\" or \"smtp\", not {settings.mail.transport!r}"
        )
    if settings.mail.smtp_security not in ("", *SMTP_SECURITY):
        raise ConfigError(
            "mail.smtp_security must be \"starttls\", \"tls\" or \"none\", not "
            f"{settings.mail.smtp_security!r}"
        )
    if settings.database.busy_timeout_seconds < 0:
        raise ConfigError("database.busy_timeout_seconds must be 0 or more")
    if settings.mail.concurrency < 1:
        raise ConfigError("mail.concurrency must be at least 1")
    if settings.web.workers < 1:
        raise ConfigError("web.workers must be at least 1")
    if settings.mail.batch_size < 1:
        raise ConfigError("mail.batch_size must be at least 1")
    scheduler = settings.scheduler
    if scheduler.collect_minutes < 1:
        raise ConfigError("scheduler.collect_minutes must be at least 1")
    if scheduler.outbox_poll_seconds <= 0:
        raise ConfigError("scheduler.outbox_poll_seconds must be more than 0")
    if scheduler.reconcile_seconds <= 0:
        raise ConfigError("scheduler.reconcile_seconds must be more than 0")
    if scheduler.stall_grace_seconds <= 0:
        raise ConfigError("scheduler.stall_grace_seconds must be more than 0")
    for key in ("max_occurrences_per_event", "max_items_per_collect", "max_feed_entries"):
        if getattr(settings.sources, key) < 1:
            raise ConfigError(f"sources.{key} must be at least 1")
    if settings.inbound.lmtp_max_sessions < 1:
        raise ConfigError("inbound.lmtp_max_sessions must be at least 1")
    for topic in settings.topics.names:
        if "," in topic or len(topic) > MAX_TOPIC_NAME:
            raise ConfigError(f"topics.names: {topic!r} must have no comma and at most "
                              f"{MAX_TOPIC_NAME} characters")
    if len(set(settings.topics.names)) != len(settings.topics.names):
        raise ConfigError("topics.names lists the same topic twice")
    if settings.inbound.reminder_days < 1:
        raise ConfigError("inbound.reminder_days must be at least 1")
    for proxy in settings.web.trusted_proxies:
        try:
            ipaddress.ip_network(proxy)
        except ValueError:
            raise ConfigError(f"web.trusted_proxies: {proxy!r} is not an IP address or "
                              "network (e.g. \"127.0.0.1\" or \"10.0.0.0/8\")") from None
    if not settings.web.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"web.base_url must start with http:// or https://, not "
                          f"{settings.web.base_url!r}")
