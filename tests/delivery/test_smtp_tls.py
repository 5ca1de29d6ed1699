"""TLS to the relay (`mail.smtp_security`): "tls" speaks TLS from the first byte, "starttls"
upgrades the connection or sends nothing, and the relay's certificate is checked against
`mail.smtp_ca_file` (or the system's CAs) unless `mail.smtp_verify_certificate` is false.

The relay is aiosmtpd on loopback with a certificate for 127.0.0.1 issued by a throw-away
CA made here; the CA file is the only thing that makes the client trust it."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.delivery.sender import DeliveryReport, deliver_due
from alerts.mail.messages import Message
from subscriptions.base import utcnow
from tests.factories import make_subscriber, make_ward
from tests.servers import smtp_sink

RESIDENT = "ann@home.example"


@dataclass(frozen=True)
class Certificates:
    ca_file: Path        # the CA that issued the relay's certificate
    other_ca_file: Path  # a CA that did not
    server: ssl.SSLContext


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(_name(common_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca = _ca("Test relay CA")
    _, other = _ca("Some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    leaf = (x509.CertificateBuilder().subject_name(_name("relay.test"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "other-ca.pem").write_bytes(_pem(other))
    (folder / "relay.pem").write_bytes(_pem(leaf))
    (folder / "relay.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "relay.pem", folder / "relay.key")
    return Certificates(folder / "ca.pem", folder / "other-ca.pem", server)


@pytest.fixture
def queued(factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """One digest queued for RESIDENT."""
    with factory.begin() as session:
        ward = make_ward(session)
        make_subscriber(session, ward, RESIDENT)
        message = Message(ward_id=ward.id, kind="digest", subject="News", html="<p>x</p>",
                          text="x")
        session.add(message)
        session.flush()
        fan_out(session, message)
    yield factory


def send(factory: sessionmaker[Session], settings: Settings, port: int, *, retry: bool = False,
         **mail: Any) -> tuple[DeliveryReport, Delivery]:
    """A delivery pass to the relay on `port` with the `mail` settings (`retry`: a day later,
    when a row put back is due again); the row after it."""
    relay = dataclasses.replace(settings, mail=dataclasses.replace(
        settings.mail, transport="smtp", smtp_host="127.0.0.1", smtp_port=port,
        smtp_timeout=5.0, **mail))
    later = utcnow() + datetime.timedelta(days=1 if retry else 0)
    report = deliver_due(factory, relay, now=lambda: later)
    with factory() as session:
        return report, session.scalars(select(Delivery)).one()


def test_tls_delivers_over_implicit_tls_trusting_the_ca_file(
        queued: sessionmaker[Session], settings: Settings,
        certificates: Certificates) -> None:
    with smtp_sink(implicit_tls=certificates.server) as (sink, port):
        report, row = send(queued, settings, port, smtp_security="tls",
                           smtp_ca_file=str(certificates.ca_file))
    assert report.sent == 1 and row.status == DeliveryStatus.SENT
    [received] = sink.received
    assert received.rcpt_tos == [RESIDENT] and received.tls


@pytest.mark.parametrize("mail", [
    {"smtp_security": "starttls"},
    {"smtp_starttls": True},  # the older spelling still means the same
], ids=["smtp_security", "smtp_starttls"])
def test_starttls_upgrades_the_connection_before_the_message(
        queued: sessionmaker[Session], settings: Settings, certificates: Certificates,
        mail: dict[str, Any]) -> None:
    with smtp_sink(starttls=certificates.server) as (sink, port):
        report, row = send(queued, settings, port, smtp_ca_file=str(certificates.ca_file),
                           **mail)
    assert report.sent == 1 and row.status == DeliveryStatus.SENT
    [received] = sink.received
    assert received.tls


def test_starttls_asked_of_a_relay_that_does_not_offer_it_sends_nothing_in_clear(
        queued: sessionmaker[Session], settings: Settings) -> None:
    with smtp_sink() as (sink, port):
        report, row = send(queued, settings, port, smtp_security="starttls")
    assert sink.received == [] and report.sent == 0
    assert row.status == DeliveryStatus.QUEUED  # tried again later, not failed
    assert row.last_error is not None and "does not offer STARTTLS" in row.last_error


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_from_another_ca_is_refused_unless_verification_is_off(
        queued: sessionmaker[Session], settings: Settings, certificates: Certificates,
        security: str) -> None:
    implicit = security == "tls"
    with smtp_sink(implicit_tls=certificates.server if implicit else None,
                   starttls=None if implicit else certificates.server) as (sink, port):
        report, row = send(queued, settings, port, smtp_security=security,
                           smtp_ca_file=str(certificates.other_ca_file))
        assert sink.received == [] and report.sent == 0
        assert row.status == DeliveryStatus.QUEUED
        assert row.last_error is not None and "certificate" in row.last_error.lower()

        report, row = send(queued, settings, port, smtp_security=security,
                           smtp_ca_file=str(certificates.other_ca_file),
                           smtp_verify_certificate=False, retry=True)
        assert report.sent == 1 and row.status == DeliveryStatus.SENT
        assert [r.tls for r in sink.received] == [True]


def test_the_system_cas_do_not_trust_a_private_relay(
        queued: sessionmaker[Session], settings: Settings, certificates: Certificates) -> None:
    with smtp_sink(implicit_tls=certificates.server) as (sink, port):
        _, row = send(queued, settings, port, smtp_security="tls")
    assert sink.received == [] and row.status == DeliveryStatus.QUEUED


def test_none_never_upgrades_even_when_the_relay_offers_it(
        queued: sessionmaker[Session], settings: Settings, certificates: Certificates) -> None:
    with smtp_sink(starttls=certificates.server) as (sink, port):
        report, _ = send(queued, settings, port, smtp_security="none")
    assert report.sent == 1 and [r.tls for r in sink.received] == [False]
