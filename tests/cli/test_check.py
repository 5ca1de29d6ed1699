"""`alerts check`: each thing in the config that would stop Gmail, Yahoo and Outlook trusting
the mail is named on a line of its own (exit status 1), and the DNS records to publish are
printed. The commands that send or serve refuse to start, in one line, on the two problems no
force may run with (an http:// base URL, the relay's password in clear), outside the demo."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.mail.messages import Message
from tests.factories import make_subscriber, make_ward, smtp_config
from tests.servers import SinkHandler

# A force that sends from its own domain, signs for it, takes bounces under it, serves over
# HTTPS and logs in to its relay over STARTTLS.
GOOD: dict[str, dict[str, Any]] = {
    "web": {"base_url": "https://alerts.example.org", "secret_key": "a-long-random-secret"},
    "mail": {"transport": "smtp", "from_address": "alerts@alerts.example.org",
             "reply_domain": "reply.example.org", "smtp_host": "relay.example.net",
             "smtp_port": 587, "smtp_security": "starttls", "smtp_username": "force",
             "smtp_password": "pw"},
    "dkim": {"domain": "example.org", "selector": "alerts2026"},
    "force": {"name": "Vale Police"},
}


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A DKIM key file and the base64 public key its record must publish."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "alerts2026.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, base64.b64encode(public).decode()


def write_config(folder: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    config = folder / "alerts.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def config_with(folder: Path, key_file: Path, **changes: Any) -> Path:
    """GOOD with its key file, then `changes` ("section__key": value) over it."""
    sections = {name: dict(values) for name, values in GOOD.items()}
    sections["dkim"]["private_key_file"] = str(key_file)
    for name, value in changes.items():
        section, key = name.split("__")
        sections[section][key] = value
    return write_config(folder, sections)


def alerts(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_a_good_config_has_no_problem_and_prints_the_four_records(
        tmp_path: Path, dkim_key: tuple[Path, str]) -> None:
    key_file, public = dkim_key
    config = config_with(tmp_path, key_file)

    result = alerts(config, "check", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == []
    records = [(r["name"], r["type"], r["value"]) for r in report["records"]]
    assert records == [
        ("alerts2026._domainkey.example.org", "TXT", f"v=DKIM1; k=rsa; p={public}"),
        ("reply.example.org", "TXT", "v=spf1 a:relay.example.net ~all"),
        ("_dmarc.example.org", "TXT",
         "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"),
        ("reply.example.org", "MX", "10 alerts.example.org."),
    ]
    text = alerts(config, "check")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == "nothing in the config stops mail being trusted"
    assert '_dmarc.example.org. TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"' \
        in lines
    assert "reply.example.org. MX 10 alerts.example.org." in lines
    dkim = next(line for line in lines if line.startswith("alerts2026._domainkey.example.org."))
    assert "".join(dkim.split('"')[1::2]) == f"v=DKIM1; k=rsa; p={public}"  # 255-char strings


@pytest.mark.parametrize(("changes", "codes", "named"), [
    ({"web__base_url": "http://alerts.example.org"}, ["base-url-not-https"], "web.base_url"),
    # From a free-mail domain: nothing of the force's can align with it either.
    ({"mail__from_address": "westward.sna@gmail.com"},
     ["from-free-mail", "dkim-not-aligned", "reply-domain-not-aligned"], "gmail.com"),
    ({"mail__from_address": "alerts@gmx.de", "dkim__domain": "gmx.de",
      "mail__reply_domain": "reply.gmx.de"}, ["from-free-mail"], "gmx.de"),
    ({"dkim__selector": ""}, ["dkim-not-set"], "[dkim]"),
    ({"dkim__domain": "mailer.example.net"}, ["dkim-not-aligned"], "dkim.domain"),
    ({"mail__reply_domain": "bounces.example.net"}, ["reply-domain-not-aligned"],
     "mail.reply_domain"),
    ({"web__secret_key": "change-me"}, ["default-secret-key"], "web.secret_key"),
    ({"mail__smtp_security": "none"}, ["smtp-credentials-in-clear"], "mail.smtp_username"),
    ({"dkim__private_key_file": "/nonexistent/alerts2026.pem"}, ["dkim-key-unusable"],
     "dkim.private_key_file"),
], ids=lambda value: value[0] if isinstance(value, list) else None)
def test_each_problem_is_named_on_its_own_line_and_exits_1(
        tmp_path: Path, dkim_key: tuple[Path, str], changes: dict[str, Any], codes: list[str],
        named: str) -> None:
    config = config_with(tmp_path, dkim_key[0], **changes)

    as_json = alerts(config, "check", "--json")
    text = alerts(config, "check")

    assert as_json.exit_code == 1 and text.exit_code == 1
    problems = json.loads(as_json.stdout)["problems"]
    assert [p["code"] for p in problems] == codes
    lines = text.stdout.split("\n\n")[0].splitlines()
    assert lines == [p["message"] for p in problems]
    assert named in lines[0]


@pytest.mark.parametrize("changes", [
    {"mail__smtp_security": "", "mail__smtp_starttls": True},  # the older spelling
    {"mail__smtp_security": "tls", "mail__smtp_port": 465},
    {"mail__smtp_security": "none", "mail__smtp_host": "127.0.0.1"},  # a local MTA relays
    {"mail__smtp_security": "none", "mail__smtp_username": ""},
    {"dkim__domain": "alerts.example.org"},  # a subdomain of the From's organisation
], ids=str)
def test_what_is_not_a_problem(tmp_path: Path, dkim_key: tuple[Path, str],
                               changes: dict[str, Any]) -> None:
    result = alerts(config_with(tmp_path, dkim_key[0], **changes), "check", "--json")
    assert result.exit_code == 0, result.output


# The commands that send or serve, as far as the refusal: the database is never opened.
SENDING = [("run",), ("worker",), ("web",), ("deliver",), ("digest", "send", "--ward", "RIV"),
           ("replies", "remind"), ("inbound", "process")]


@pytest.mark.parametrize("command", SENDING, ids=" ".join)
def test_an_http_base_url_with_the_smtp_transport_refuses_to_start_in_one_line(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    config = write_config(tmp_path, {
        "database": {"url": f"sqlite:///{tmp_path / 'never-opened.db'}"},
        "mail": {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": 9},
        "web": {"base_url": "http://alerts.example.org", "secret_key": "a-long-secret"}})

    result = alerts(config, *command)

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "web.base_url 'http://alerts.example.org' is not HTTPS" in line


@pytest.mark.parametrize("command", SENDING, ids=" ".join)
def test_the_relays_password_in_clear_to_another_host_refuses_to_start_in_one_line(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    config = write_config(tmp_path, {
        "database": {"url": f"sqlite:///{tmp_path / 'never-opened.db'}"},
        "mail": {"transport": "smtp", "smtp_host": "relay.example.net", "smtp_port": 25,
                 "smtp_username": "force", "smtp_password": "pw"},
        "web": {"base_url": "https://alerts.example.org", "secret_key": "a-long-secret"}})

    result = alerts(config, *command)

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "mail.smtp_username is sent to relay.example.net" in line and "not TLS" in line


def queue_one(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        ward = make_ward(session)
        make_subscriber(session, ward, "ann@home.example")
        message = Message(ward_id=ward.id, kind="digest", subject="News", html="<p>x</p>",
                          text="x")
        session.add(message)
        session.flush()
        fan_out(session, message)


def test_alerts_deliver_with_an_http_base_url_sends_nothing(
        tmp_path: Path, factory: sessionmaker[Session],
        smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    queue_one(factory)
    config = smtp_config(tmp_path, settings)
    config.write_text(config.read_text().replace("https://", "http://"))

    result = alerts(config, "deliver")

    assert result.exit_code == 1 and "is not HTTPS" in result.stderr
    assert sink.received == []
    with factory() as session:
        assert session.scalars(select(Delivery.status)).all() == [DeliveryStatus.QUEUED]


@pytest.mark.parametrize("sections", [
    # A config marked `demo = true` (as `alerts demo` writes its own), with a relay.
    {"mail": {"transport": "smtp"}, "web": {"base_url": "http://127.0.0.1:8000"}},
    # Any config with the maildir transport: tests and trials stay on http://.
    {"mail": {"transport": "maildir"}, "web": {"base_url": "http://127.0.0.1:8000",
                                               "secret_key": "a-long-secret"}},
], ids=["demo", "maildir"])
def test_the_demo_and_the_maildir_transport_still_run_on_http(
        tmp_path: Path, factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        sections: dict[str, dict[str, Any]]) -> None:
    sink, settings = smtp
    queue_one(factory)
    demo = "mail" in sections and sections["mail"]["transport"] == "smtp"
    config = write_config(tmp_path, {
        "database": {"url": settings.database.url},
        "mail": {**sections["mail"], "smtp_host": "127.0.0.1",
                 "smtp_port": settings.mail.smtp_port, "maildir": str(tmp_path / "outbox")},
        "web": sections["web"]})
    if demo:
        config.write_text("demo = true\n" + config.read_text())

    result = alerts(config, "deliver")

    assert result.exit_code == 0, result.output
    assert len(sink.received) == (1 if demo else 0)
    with factory() as session:
        assert session.scalars(select(Delivery.status)).all() == [DeliveryStatus.SENT]


def test_alerts_demo_still_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    # Its config names a force: no warning.
    checked = alerts(tmp_path / "demo" / "alerts.toml", "check", "--json")
    assert json.loads(checked.stdout)["warnings"] == []


@pytest.mark.parametrize("name", [None, "", "your local police force"], ids=repr)
def test_a_force_left_unnamed_is_a_warning_naming_the_key(
        tmp_path: Path, dkim_key: tuple[Path, str], name: str | None) -> None:
    sections = {section: dict(values) for section, values in GOOD.items()}
    sections["dkim"]["private_key_file"] = str(dkim_key[0])
    if name is None:
        del sections["force"]
    else:
        sections["force"]["name"] = name
    config = write_config(tmp_path, sections)

    as_json = alerts(config, "check", "--json")
    text = alerts(config, "check")

    # Mail is still trusted (exit status 0), but it would come from nobody in particular.
    assert as_json.exit_code == 0 and text.exit_code == 0, text.output
    [warning] = json.loads(as_json.stdout)["warnings"]
    assert warning["code"] == "force-name-not-set"
    lines = text.stdout.split("\n\n")[0].splitlines()
    assert lines == ["nothing in the config stops mail being trusted", warning["message"]]
    assert lines[1].startswith("warning: force.name is not set")
    assert 'set force.name to the force\'s name' in lines[1]
