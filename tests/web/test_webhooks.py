"""Provider webhooks, end to end: two residents of one ward are sent a message through the
real sender (to a maildir); each provider's bounce and complaint event, built like the
samples in its documentation, carrying the reference read back from the copy the first
resident was sent, and signed with test keys (an RSA key and a self-signed certificate for
SNS, served on loopback; an ECDSA P-256 key for SendGrid; basic auth for Postmark; an HMAC
key for Mailgun), suppresses that resident and no one else. Unsigned, wrongly signed,
stale and replayed calls are refused and change nothing. On both stores."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import mailbox
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings, WebhooksSettings
from alerts.delivery.fanout import queue_for_subscriber
from alerts.delivery.sender import deliver_due
from alerts.inbound.journal import InboundRecord
from alerts.inbound.providers.ses import allowed_url
from alerts.mail.messages import Message
from alerts.web.app import create_app
from subscriptions.subscribers import Status, Subscription
from subscriptions.suppression import Suppression, SuppressionReason, address_hash
from tests.factories import make_subscriber, make_ward
from tests.servers import FeedServer

TOPIC = "arn:aws:sns:eu-west-2:123456789012:riverside-alerts-feedback"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hook", "a long and secret password"
MAILGUN_KEY = "key-mailgun-signing-key-for-tests"
PROVIDERS = ("ses", "sendgrid", "postmark", "mailgun")
FIRST, SECOND = "first@home.example", "second@home.example"


@dataclass
class Keys:
    """The test's provider keys, and how to sign with them."""

    sns_key: rsa.RSAPrivateKey
    sns_cert_url: str
    sendgrid_key: ec.EllipticCurvePrivateKey


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))


@pytest.fixture
def keys(feeds: FeedServer, tmp_path: Path) -> Keys:
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _self_signed(sns_key).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "sns-root.pem").write_bytes(pem)
    url = feeds.put("/SimpleNotificationService-test.pem", pem,
                    content_type="application/x-pem-file")
    return Keys(sns_key, url, ec.generate_private_key(ec.SECP256R1()))


def hooked(settings: Settings, keys: Keys, tmp_path: Path, **changes: Any) -> Settings:
    """`settings` with every provider's webhook on, keyed with the test keys."""
    public = keys.sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    webhooks = WebhooksSettings(
        sendgrid_public_key=base64.b64encode(public).decode(),
        postmark_username=POSTMARK_USER, postmark_password=POSTMARK_PASSWORD,
        mailgun_signing_key=MAILGUN_KEY, ses_topic_arns=(TOPIC,),
        sns_trust_root=str(tmp_path / "sns-root.pem"), sns_local_hosts=("127.0.0.1",))
    return dataclasses.replace(settings, webhooks=dataclasses.replace(webhooks, **changes))


@dataclass
class Sent:
    """What the first resident's copy carried back to us."""

    ref: str  # X-Alerts-Ref
    echoed: dict[str, str]  # the provider headers
    envelope: str  # Return-Path


@pytest.fixture
def sent(factory: sessionmaker[Session], settings: Settings, keys: Keys,
         tmp_path: Path) -> Sent:
    """A message to two residents of one ward, delivered to the maildir by the sender."""
    with factory.begin() as session:
        ward = make_ward(session, "RIV")
        subscriptions = [make_subscriber(session, ward, email) for email in (FIRST, SECOND)]
        message = Message(ward_id=ward.id, kind="digest", subject="Riverside news",
                          html="<p>news</p>", text="news", calendar=None)
        session.add(message)
        session.flush()
        for subscription in subscriptions:
            queue_for_subscriber(session, message, subscription.subscriber_id)
    assert deliver_due(factory, hooked(settings, keys, tmp_path)).sent == 2
    for raw in mailbox.Maildir(Path(settings.mail.maildir), create=False):
        copy = message_from_bytes(raw.as_bytes(), policy=policy.default)
        if FIRST in str(copy["To"]):
            echoed = {name: str(copy[name]) for name in (
                "X-SES-MESSAGE-TAGS", "X-SMTPAPI", "X-PM-Metadata-alerts-ref",
                "X-Mailgun-Variables")}
            return Sent(str(copy["X-Alerts-Ref"]), echoed, str(copy["Return-Path"]))
    raise AssertionError("the first resident was sent nothing")


# --- Each provider's call, as its documentation shows it, signed with the test keys ---

def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sns_signed(keys: Keys, fields: dict[str, str], *, version: str = "1") -> dict[str, str]:
    order = ("Message", "MessageId", "Subject", "SubscribeURL", "Timestamp", "Token",
             "TopicArn", "Type")
    text = "".join(f"{key}\n{fields[key]}\n" for key in order if key in fields)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = keys.sns_key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {**fields, "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": keys.sns_cert_url}


def ses_notification(sent: Sent, kind: str) -> dict[str, Any]:
    tags = dict(part.split("=", 1) for part in sent.echoed["X-SES-MESSAGE-TAGS"].split(","))
    mail = {"timestamp": now_iso(timedelta(seconds=-5)),
            "source": sent.envelope.strip("<>"),
            "sourceArn": "arn:aws:ses:eu-west-2:123456789012:identity/alerts.example.org",
            "messageId": "0102018c-tests-0000", "destination": [FIRST],
            "headersTruncated": False,
            "headers": [{"name": "X-Alerts-Ref", "value": sent.ref},
                        {"name": "Subject", "value": "Riverside news"}],
            "tags": {key: [value] for key, value in tags.items()}}
    if kind == "bounce":
        return {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": FIRST, "action": "failed",
                                   "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": now_iso(), "feedbackId": "0102018c-feedback-0001",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"}}
    return {"notificationType": "Complaint", "mail": mail, "complaint": {
        "complainedRecipients": [{"emailAddress": FIRST}], "timestamp": now_iso(),
        "feedbackId": "0102018c-feedback-0002", "userAgent": "Yahoo!-Mail-Feedback/2.0",
        "complaintFeedbackType": "abuse"}}


def ses_call(keys: Keys, sent: Sent, kind: str, *, message_id: str | None = None,
             timestamp: str | None = None) -> dict[str, Any]:
    body = sns_signed(keys, {
        "Type": "Notification", "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": TOPIC, "Message": json.dumps(ses_notification(sent, kind)),
        "Timestamp": timestamp or now_iso()})
    return {"content": json.dumps(body).encode(),
            "headers": {"x-amz-sns-message-type": "Notification",
                        "Content-Type": "text/plain; charset=UTF-8"}}


def sendgrid_call(keys: Keys, sent: Sent, kind: str, *,
                  at: datetime | None = None) -> dict[str, Any]:
    args = json.loads(sent.echoed["X-SMTPAPI"])["unique_args"]
    when = int((at or datetime.now(UTC)).timestamp())
    event: dict[str, Any] = {"email": FIRST, "timestamp": when,
                             "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
                             "sg_event_id": f"sg-{uuid.uuid4().hex}",
                             "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001", **args}
    if kind == "bounce":
        event |= {"event": "bounce", "type": "bounce", "status": "5.1.1",
                  "reason": "550 5.1.1 The email account that you tried to reach does not exist",
                  "bounce_classification": "Invalid Address"}
    else:
        event |= {"event": "spamreport"}
    payload = json.dumps([event, {"email": SECOND, "event": "delivered",
                                  "timestamp": when, "sg_event_id": "sg-delivered"}]).encode()
    stamp = str(when)
    signature = keys.sendgrid_key.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return {"content": payload, "headers": {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp}}


def postmark_call(sent: Sent, kind: str, *, record_id: int = 4323372036854775807,
                  at: str | None = None,
                  credentials: tuple[str, str] = (POSTMARK_USER, POSTMARK_PASSWORD),
                  ) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ID": record_id, "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23, "MessageStream": "outbound", "Email": FIRST, "From": "alerts@example.org",
        "BouncedAt": at or now_iso(), "Subject": "Riverside news", "Inactive": True,
        "CanActivate": True, "Metadata": {"alerts-ref": sent.echoed["X-PM-Metadata-alerts-ref"]}}
    if kind == "bounce":
        record |= {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1,
                   "Name": "Hard bounce", "Tag": "digest",
                   "Description": "The server was unable to deliver your message.",
                   "Details": "smtp;550 5.1.1 The email account does not exist."}
    else:
        record |= {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512,
                   "Name": "Spam complaint", "Tag": "digest",
                   "Description": "The subscriber explicitly marked this message as spam."}
    token = base64.b64encode(":".join(credentials).encode()).decode()
    return {"content": json.dumps(record).encode(),
            "headers": {"Content-Type": "application/json", "Authorization": f"Basic {token}"}}


def mailgun_call(sent: Sent, kind: str, *, key: str = MAILGUN_KEY,
                 token: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    timestamp = str(int((at or datetime.now(UTC)).timestamp()))
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    event: dict[str, Any] = {
        "id": "CPgfbmQMTCKtHW6uIWtuVe", "timestamp": float(timestamp), "log-level": "error",
        "recipient": FIRST, "recipient-domain": "home.example",
        "envelope": {"sender": sent.envelope.strip("<>"), "transport": "smtp"},
        "message": {"headers": {"message-id": "20130503182626.18666.16540@alerts.example.org"}},
        "user-variables": json.loads(sent.echoed["X-Mailgun-Variables"])}
    if kind == "bounce":
        event |= {"event": "failed", "severity": "permanent", "reason": "bounce",
                  "delivery-status": {"code": 550, "attempt-no": 1,
                                      "message": "No such user here",
                                      "description": "Not delivered"}}
    else:
        event |= {"event": "complained", "log-level": "warn"}
    body = {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event}
    return {"content": json.dumps(body).encode(),
            "headers": {"Content-Type": "application/json"}}


def genuine(provider: str, keys: Keys, sent: Sent, kind: str) -> dict[str, Any]:
    if provider == "ses":
        return ses_call(keys, sent, kind)
    if provider == "sendgrid":
        return sendgrid_call(keys, sent, kind)
    if provider == "postmark":
        return postmark_call(sent, kind)
    return mailgun_call(sent, kind)


# --- What the database says ---

def suppressed(factory: sessionmaker[Session]) -> dict[str, str]:
    with factory() as session:
        found = {}
        for email in (FIRST, SECOND):
            entry = session.get(Suppression, address_hash(email))
            if entry is not None:
                found[email] = entry.reason
        return found


def subscribed(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Subscription).where(
            Subscription.status != Status.UNSUBSCRIBED)) or 0


def journalled(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(InboundRecord)) or 0


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings, keys: Keys,
           tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(factory, settings=hooked(settings, keys, tmp_path))) as client:
        yield client


# --- The tests ---

def test_the_copy_carries_its_signed_reference_in_each_providers_echo_header(
        sent: Sent) -> None:
    token = sent.ref
    assert sent.envelope.strip("<>").startswith(f"bounces+{token}@")
    assert sent.echoed == {
        "X-SES-MESSAGE-TAGS": f"alerts_ref={token}",
        "X-SMTPAPI": json.dumps({"unique_args": {"alerts_ref": token}}),
        "X-PM-Metadata-alerts-ref": token,
        "X-Mailgun-Variables": json.dumps({"alerts_ref": token})}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_endpoint_is_off_while_its_key_is_unset(provider: str, factory: sessionmaker[Session],
                                                  settings: Settings) -> None:
    with TestClient(create_app(factory, settings=settings)) as client:
        assert client.post(f"/webhooks/{provider}", content=b"{}").status_code == 404


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_bounce_suppresses_exactly_the_deliverys_resident(
        provider: str, client: TestClient, factory: sessionmaker[Session], keys: Keys,
        sent: Sent) -> None:
    answer = client.post(f"/webhooks/{provider}", **genuine(provider, keys, sent, "bounce"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["acted"] == ["suppressed (hard bounce)"]
    assert suppressed(factory) == {FIRST: SuppressionReason.HARD_BOUNCE}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_complaint_suppresses_and_unsubscribes_exactly_the_deliverys_resident(
        provider: str, client: TestClient, factory: sessionmaker[Session], keys: Keys,
        sent: Sent) -> None:
    answer = client.post(f"/webhooks/{provider}", **genuine(provider, keys, sent, "complaint"))
    assert answer.status_code == 200, answer.text
    assert suppressed(factory) == {FIRST: SuppressionReason.COMPLAINT}
    assert subscribed(factory) == 1  # the second resident's subscription stays


def test_a_soft_bounce_is_counted_not_suppressed(
        client: TestClient, factory: sessionmaker[Session], sent: Sent) -> None:
    call = mailgun_call(sent, "bounce")
    call["content"] = call["content"].replace(b'"permanent"', b'"temporary"')
    answer = client.post("/webhooks/mailgun", **call)
    assert answer.status_code == 200
    assert answer.json()["acted"] == ["soft bounce 1 of 3"]
    assert suppressed(factory) == {}


def test_an_event_without_a_genuine_reference_suppresses_no_one(
        client: TestClient, factory: sessionmaker[Session], keys: Keys, sent: Sent) -> None:
    # The reference is random: change its last two characters to two that differ from them.
    altered = sent.ref[:-2] + ("bb" if sent.ref.endswith("aa") else "aa")
    forged = dataclasses.replace(
        sent, envelope=sent.envelope.replace(sent.ref, altered),
        echoed={**sent.echoed, "X-Mailgun-Variables": json.dumps({"alerts_ref": "1-aaaa"})})
    answer = client.post("/webhooks/mailgun", **mailgun_call(forged, "bounce"))
    assert answer.status_code == 200
    assert suppressed(factory) == {}


def _forged(provider: str, keys: Keys, sent: Sent) -> dict[str, Any]:
    """A call signed with a key that is not the configured one."""
    if provider == "ses":
        other = Keys(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                     keys.sns_cert_url, keys.sendgrid_key)
        return ses_call(other, sent, "bounce")
    if provider == "sendgrid":
        other = Keys(keys.sns_key, keys.sns_cert_url, ec.generate_private_key(ec.SECP256R1()))
        return sendgrid_call(other, sent, "bounce")
    if provider == "postmark":
        return postmark_call(sent, "bounce", credentials=(POSTMARK_USER, "guessed"))
    return mailgun_call(sent, "bounce", key="key-not-ours")


def _unsigned(provider: str, keys: Keys, sent: Sent) -> dict[str, Any]:
    call = genuine(provider, keys, sent, "bounce")
    if provider == "ses":
        body = json.loads(call["content"])
        del body["Signature"], body["SigningCertURL"]
        call["content"] = json.dumps(body).encode()
    elif provider == "mailgun":
        body = json.loads(call["content"])
        del body["signature"]
        call["content"] = json.dumps(body).encode()
    else:
        call["headers"] = {"Content-Type": "application/json"}
    return call


def _stale(provider: str, keys: Keys, sent: Sent) -> dict[str, Any]:
    late = timedelta(minutes=-10)  # max_age_seconds is 300
    if provider == "ses":
        return ses_call(keys, sent, "bounce", timestamp=now_iso(late))
    if provider == "sendgrid":
        return sendgrid_call(keys, sent, "bounce", at=datetime.now(UTC) + late)
    if provider == "postmark":
        return postmark_call(sent, "bounce", at=now_iso(late))
    return mailgun_call(sent, "bounce", at=datetime.now(UTC) + late)


def _altered(provider: str, keys: Keys, sent: Sent) -> dict[str, Any]:
    """A genuine call whose body was changed after signing (the reference swapped)."""
    call = genuine(provider, keys, sent, "bounce")
    if provider == "postmark":  # basic auth covers no body: use an unknown password instead
        return postmark_call(sent, "bounce", credentials=("someone", POSTMARK_PASSWORD))
    if provider == "ses":
        body = json.loads(call["content"])
        body["Message"] = body["Message"].replace("General", "NoEmail")
        call["content"] = json.dumps(body).encode()
    elif provider == "sendgrid":
        call["content"] = call["content"].replace(b"5.1.1", b"5.1.2", 1)
    else:  # Mailgun signs the timestamp and token, not the body: the token is changed
        body = json.loads(call["content"])
        body["signature"]["token"] = body["signature"]["token"][::-1]
        call["content"] = json.dumps(body).encode()
    return call


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("call", "status"), [
    (_forged, 403), (_unsigned, 401), (_stale, 403), (_altered, 403)],
    ids=["forged", "unsigned", "stale", "altered"])
def test_a_call_that_is_not_genuine_and_fresh_is_refused_and_changes_nothing(
        provider: str, call: Callable[[str, Keys, Sent], dict[str, Any]], status: int,
        client: TestClient, factory: sessionmaker[Session], keys: Keys, sent: Sent) -> None:
    answer = client.post(f"/webhooks/{provider}", **call(provider, keys, sent))
    assert answer.status_code == status, answer.text
    assert suppressed(factory) == {}
    assert journalled(factory) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_replayed_call_is_refused_and_changes_nothing(
        provider: str, client: TestClient, factory: sessionmaker[Session], keys: Keys,
        sent: Sent) -> None:
    call = genuine(provider, keys, sent, "complaint")
    assert client.post(f"/webhooks/{provider}", **call).status_code == 200
    with factory.begin() as session:  # an operator lifts the suppression
        session.delete(session.get(Suppression, address_hash(FIRST)))
    before = journalled(factory)
    answer = client.post(f"/webhooks/{provider}", **call)
    assert answer.status_code == 403, answer.text
    assert suppressed(factory) == {}
    assert journalled(factory) == before


def test_sns_signature_version_2_is_verified(
        client: TestClient, factory: sessionmaker[Session], keys: Keys, sent: Sent) -> None:
    body = sns_signed(keys, {"Type": "Notification", "MessageId": str(uuid.uuid4()),
                             "TopicArn": TOPIC, "Timestamp": now_iso(),
                             "Message": json.dumps(ses_notification(sent, "bounce"))},
                      version="2")
    assert client.post("/webhooks/ses", content=json.dumps(body).encode()).status_code == 200
    assert suppressed(factory) == {FIRST: SuppressionReason.HARD_BOUNCE}


def test_sns_from_a_topic_not_configured_is_refused(
        client: TestClient, factory: sessionmaker[Session], keys: Keys, sent: Sent) -> None:
    body = sns_signed(keys, {"Type": "Notification", "MessageId": str(uuid.uuid4()),
                             "TopicArn": TOPIC + "-other", "Timestamp": now_iso(),
                             "Message": json.dumps(ses_notification(sent, "bounce"))})
    assert client.post("/webhooks/ses", content=json.dumps(body).encode()).status_code == 403
    assert suppressed(factory) == {}


@pytest.mark.parametrize("changes", [
    {"sns_local_hosts": ()},  # a trust root, but loopback is not a host it allows
    {"sns_trust_root": ""},  # the loopback host is listed, but without a trust root
], ids=["host-not-listed", "no-trust-root"])
def test_an_sns_certificate_from_a_host_that_is_not_sns_is_refused(
        changes: dict[str, Any], factory: sessionmaker[Session], settings: Settings,
        keys: Keys, sent: Sent, feeds: FeedServer, tmp_path: Path) -> None:
    app = create_app(factory, settings=hooked(settings, keys, tmp_path, **changes))
    with TestClient(app) as client:
        answer = client.post("/webhooks/ses", **ses_call(keys, sent, "bounce"))
    assert answer.status_code == 403
    assert "SNS host" in answer.text
    assert not any(path.endswith(".pem") for path, _ in feeds.requests)  # never fetched
    assert suppressed(factory) == {}


def test_a_certificate_not_issued_by_the_trust_root_is_refused(
        client: TestClient, factory: sessionmaker[Session], keys: Keys, sent: Sent,
        feeds: FeedServer) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    feeds.put("/SimpleNotificationService-test.pem",
              _self_signed(impostor).public_bytes(serialization.Encoding.PEM))
    call = ses_call(Keys(impostor, keys.sns_cert_url, keys.sendgrid_key), sent, "bounce")
    assert client.post("/webhooks/ses", **call).status_code == 403
    assert suppressed(factory) == {}


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-abc.pem", True),
    ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
    ("http://sns.eu-west-2.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.eu-west-2.amazonaws.com.attacker.example/cert.pem", False),
    ("https://attacker.example/sns.eu-west-2.amazonaws.com/cert.pem", False),
    ("https://user@sns.eu-west-2.amazonaws.com/cert.pem", False),
    ("http://127.0.0.1:8080/cert.pem", False),
])
def test_sns_addresses_must_be_https_on_an_sns_host_in_production(
        url: str, allowed: bool) -> None:
    production = WebhooksSettings(ses_topic_arns=(TOPIC,), sns_local_hosts=("127.0.0.1",))
    assert allowed_url(url, production) is allowed


def test_a_subscription_confirmation_gets_its_subscribe_url(
        client: TestClient, keys: Keys, feeds: FeedServer) -> None:
    subscribe = feeds.put("/confirm?Action=ConfirmSubscription&Token=2336412f37", "<ok/>")
    body = sns_signed(keys, {
        "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37", "TopicArn": TOPIC, "Timestamp": now_iso(),
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": subscribe})
    answer = client.post("/webhooks/ses", content=json.dumps(body).encode(),
                         headers={"x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert answer.status_code == 200, answer.text
    assert [path for path, _ in feeds.requests if path.startswith("/confirm")] == [
        "/confirm?Action=ConfirmSubscription&Token=2336412f37"]
