"""Building one email: headers a mailbox provider accepts, signed tokens, personal links."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from alerts.core.config import Settings
from alerts.mail.marks import PREFERENCES_MARK, UNSUBSCRIBE_MARK
from alerts.mail.mime import Outgoing, build_email
from subscriptions.links import Purpose, sign_reference, verify_reference

NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-tests"
DELIVERY_NONCE, SUBSCRIPTION_NONCE, MESSAGE_NONCE = "d" * 32, "s" * 32, "m" * 32
CALENDAR = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
    b"UID:street-surgery-1@tests\r\nDTSTAMP:20261120T160000Z\r\n"
    b"DTSTART:20261125T100000Z\r\nSUMMARY:Street surgery at the library\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def outgoing(**changes: Any) -> Outgoing:
    base = Outgoing(
        delivery_id=41,
        message_id=7,
        kind="digest",
        subject="This week around Millbrook",
        html=(f"<p>Bike marking on Saturday.</p><p><a href='{UNSUBSCRIBE_MARK}'>Leave</a> "
              f"or <a href=\"{PREFERENCES_MARK}\">change how often</a></p>"),
        text=f"Bike marking on Saturday.\nLeave: {UNSUBSCRIBE_MARK}\nChange: {PREFERENCES_MARK}\n",
        calendar=None,
        ward_code="MB-North",
        ward_name="Millbrook North",
        recipient_email="ash@home.example",
        recipient_name="Ash Patel",
        subscription_id=93,
        created_at=NOW,
        delivery_nonce=DELIVERY_NONCE,
        subscription_nonce=SUBSCRIPTION_NONCE,
        message_nonce=MESSAGE_NONCE,
    )
    return dataclasses.replace(base, **changes)


def parse(data: bytes) -> EmailMessage:
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(message: EmailMessage, subtype: str) -> str:
    for part in message.iter_parts():
        if part.get_content_type() == f"text/{subtype}":
            content = part.get_content()
            assert isinstance(content, str)
            return content
    raise AssertionError(f"no text/{subtype} part")


def token_in(address: str, prefix: str, domain: str) -> str:
    match = re.fullmatch(rf"{re.escape(prefix)}\+([0-9a-z-]+)@{re.escape(domain)}", address)
    assert match, address
    return match.group(1)


def test_every_email_carries_the_headers_a_mailbox_provider_expects(settings: Settings) -> None:
    _, data = build_email(outgoing(), settings, now=NOW)
    message = parse(data)
    assert message["From"] == ('"Millbrook North Safer Neighbourhood Team, your local police '
                               'force" <alerts@example.org>')
    assert message["To"] == "Ash Patel <ash@home.example>"
    assert message["Subject"] == "This week around Millbrook"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert re.fullmatch(r"<[^@<>\s]+@example\.org>", message["Message-ID"])
    assert message["List-Id"] == "Millbrook North <mb-north.reply.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Alerts-Ward"] == "MB-North"
    assert message["Feedback-ID"] == "mb-north:digest:7:example.org"
    assert message["Precedence"] == "bulk"
    https, mailto = (part.strip() for part in message["List-Unsubscribe"].split(","))
    assert re.fullmatch(r"<https://alerts\.example\.org/unsubscribe/[0-9a-z-]+>", https)
    assert re.fullmatch(r"<mailto:unsubscribe\+[0-9a-z-]+@reply\.example\.org>", mailto)


def test_the_body_is_plain_text_then_html_as_alternatives(settings: Settings) -> None:
    message = parse(build_email(outgoing(), settings, now=NOW)[1])
    assert message.get_content_type() == "multipart/alternative"
    parts = [(p.get_content_type(), p.get_content_charset()) for p in message.iter_parts()]
    assert parts == [("text/plain", "utf-8"), ("text/html", "utf-8")]


def test_a_calendar_rides_as_a_third_alternative_to_add_to_a_diary(settings: Settings) -> None:
    message = parse(build_email(outgoing(calendar=CALENDAR), settings, now=NOW)[1])
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html", "text/calendar"]
    invite = parts[2]
    assert invite.get_param("method") == "PUBLISH"
    assert invite.get_content_charset() == "utf-8"
    assert invite.get_content_disposition() == "attachment"
    assert invite.get_filename() == "contact-sessions.ics"
    assert invite.get_payload(decode=True) == CALENDAR


def test_each_recipient_gets_their_own_signed_links_in_both_parts(settings: Settings) -> None:
    message = parse(build_email(outgoing(), settings, now=NOW)[1])
    base = "https://alerts.example.org"
    leave_token = sign_reference(SECRET, Purpose.UNSUBSCRIBE, 93, SUBSCRIPTION_NONCE)
    change_token = sign_reference(SECRET, Purpose.PREFERENCES, 93, SUBSCRIPTION_NONCE)
    leave = f"{base}/unsubscribe/{leave_token}"
    change = f"{base}/preferences/{change_token}"
    text, html = body(message, "plain"), body(message, "html")
    for content in (text, html):
        assert UNSUBSCRIBE_MARK not in content and PREFERENCES_MARK not in content
        assert leave in content and change in content
    assert f"<{leave}>" in message["List-Unsubscribe"]


def test_links_are_escaped_for_html_attributes_but_not_in_plain_text(settings: Settings) -> None:
    odd = dataclasses.replace(settings, web=dataclasses.replace(
        settings.web, base_url="https://alerts.example.org/in?site=a&x='y'"))
    message = parse(build_email(outgoing(), odd, now=NOW)[1])
    assert "in?site=a&amp;x=&#x27;y&#x27;/unsubscribe/" in body(message, "html")
    assert "in?site=a&x='y'/unsubscribe/" in body(message, "plain")


def test_the_html_is_sent_as_rendered_with_no_pixel_and_no_rewritten_link(
    settings: Settings,
) -> None:
    original = outgoing(html=f"<p>See <a href='https://council.example/bins'>bins</a> "
                            f"<a href='{UNSUBSCRIBE_MARK}'>x</a></p>")
    html = body(parse(build_email(original, settings, now=NOW)[1]), "html")
    token = sign_reference(SECRET, Purpose.UNSUBSCRIBE, 93, SUBSCRIPTION_NONCE)
    expected = original.html.replace(UNSUBSCRIBE_MARK,
                                     f"https://alerts.example.org/unsubscribe/{token}")
    assert html.rstrip("\r\n") == expected


def test_tokens_name_their_records_and_forged_ones_do_not_verify(settings: Settings) -> None:
    envelope, data = build_email(outgoing(), settings, now=NOW)
    message = parse(data)
    reply = token_in(str(message["Reply-To"]), "reply", "reply.example.org")
    bounce = token_in(envelope, "bounces", "reply.example.org")
    unsubscribe = token_in(message["List-Unsubscribe"].split("mailto:")[1].rstrip(">"),
                           "unsubscribe", "reply.example.org")
    def deliveries(ident: int) -> str:
        return DELIVERY_NONCE

    def subscriptions(ident: int) -> str:
        return SUBSCRIPTION_NONCE

    assert verify_reference(SECRET, Purpose.REPLY, reply, deliveries) == 41
    assert verify_reference(SECRET, Purpose.BOUNCE, bounce, deliveries) == 41
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, unsubscribe, subscriptions) == 93
    # Another record's id under this tag, a tag for another purpose, another key, another
    # nonce (the delivery written again): all refused.
    ident, tag = reply.split("-")
    assert verify_reference(SECRET, Purpose.REPLY, f"{int(ident) + 1}-{tag}", deliveries) is None
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, reply, subscriptions) is None
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, reply, deliveries) is None
    assert verify_reference("another-key", Purpose.REPLY, reply, deliveries) is None
    assert verify_reference(SECRET, Purpose.REPLY, reply, lambda ident: "e" * 32) is None


def test_the_envelope_sender_is_a_signed_bounce_address_per_delivery(settings: Settings) -> None:
    first, _ = build_email(outgoing(), settings, now=NOW)
    second, _ = build_email(outgoing(delivery_id=42), settings, now=NOW)
    bounce = sign_reference(SECRET, Purpose.BOUNCE, 41, DELIVERY_NONCE)
    assert first == f"bounces+{bounce}@reply.example.org"
    assert second != first


def test_message_ids_differ_between_deliveries(settings: Settings) -> None:
    ids = {parse(build_email(outgoing(delivery_id=n), settings, now=NOW)[1])["Message-ID"]
           for n in range(1, 6)}
    assert len(ids) == 5


def test_a_resend_of_the_same_delivery_keeps_its_message_id(settings: Settings) -> None:
    later = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    first = parse(build_email(outgoing(), settings, now=NOW)[1])["Message-ID"]
    again = parse(build_email(outgoing(), settings, now=later)[1])["Message-ID"]
    assert first == again


def test_alerts_are_not_marked_bulk(settings: Settings) -> None:
    message = parse(build_email(outgoing(kind="alert"), settings, now=NOW)[1])
    assert message["Precedence"] is None
    assert message["Auto-Submitted"] == "auto-generated"


def test_names_and_subjects_outside_ascii_survive_encoding(settings: Settings) -> None:
    message = parse(build_email(
        outgoing(subject="Café drop-in — Thursday", recipient_name="Zoë Ó Briain",
                 ward_name="Brynmawr Uchaf"),
        settings, now=NOW,
    )[1])
    assert message["Subject"] == "Café drop-in — Thursday"
    assert message["To"].addresses[0].display_name == "Zoë Ó Briain"


@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"subject": "Hello\r\nBcc: everyone@example.org"}, "Subject"),
        ({"subject": "Hello\nthere"}, "Subject"),
        ({"recipient_name": "Ash\rPatel"}, "To"),
        ({"ward_name": "Millbrook\nNorth"}, "List-Id"),
    ],
)
def test_a_line_break_in_a_header_value_is_refused(
    settings: Settings, changes: dict[str, str], header: str
) -> None:
    with pytest.raises(ValueError, match=f"the {header} header"):
        build_email(outgoing(**changes), settings, now=NOW)


def test_an_address_outside_ascii_is_written_as_utf8_for_smtputf8(settings: Settings) -> None:
    _, data = build_email(outgoing(recipient_email="zoë@exämple.org", recipient_name="Zoë"),
                          settings, now=NOW)
    assert "To: Zoë <zoë@exämple.org>\r\n".encode() in data
    assert b"Content-Type: multipart/alternative" in data


def test_the_prepared_fast_path_matches_the_email_package_copy(settings: Settings) -> None:
    from alerts.mail.mime import build_email_slowly, personalise_email, prepare_message

    original = outgoing(
        subject="Café surgery — all welcome", recipient_name="Zoë Ó Briain", calendar=CALENDAR,
        text=f"Line one = café\n\n{'x' * 200}\nLeave: {UNSUBSCRIBE_MARK}\n",
        html=f"<p>{'é' * 300}</p><a href='{UNSUBSCRIBE_MARK}'>Leave</a>\n",
    )
    prepared = prepare_message(original, settings)
    for n in range(3):
        one = dataclasses.replace(original, delivery_id=100 + n, subscription_id=200 + n,
                                  recipient_email=f"r{n}@home.example")
        fast_from, fast = personalise_email(prepared, one, settings, now=NOW)
        slow_from, slow = build_email_slowly(one, settings, now=NOW)
        assert fast_from == slow_from
        a, b = parse(fast), parse(slow)
        names = {k.lower() for k in a}
        assert names == {k.lower() for k in b}
        for name in names:
            # Folding may differ; what a mail client reads must not.
            same = " ".join(str(a[name]).split()) == " ".join(str(b[name]).split())
            assert same or name == "content-type", name
        assert body(a, "plain") == body(b, "plain")
        assert body(a, "html") == body(b, "html")
        body_lines = fast.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
        assert max(len(line) for line in body_lines) <= 76, "RFC 2045 line length"
        assert fast.isascii()


@pytest.mark.parametrize("kind", ["digest", "alert"])
def test_the_feedback_id_names_ward_kind_and_message_alike_on_both_paths_never_a_person(
        settings: Settings, kind: str) -> None:
    """Gmail's feedback loop (Feedback-ID: a:b:c:SenderId) reports complaint rates per
    identifier; one header for every copy of a message, so the fast path shares it."""
    from alerts.mail.mime import build_email_slowly, personalise_email, prepare_message

    prepared = prepare_message(outgoing(kind=kind), settings)
    seen = set()
    for n, address in enumerate(["ash@home.example", "zoë@home.example"]):
        one = outgoing(kind=kind, delivery_id=300 + n, subscription_id=400 + n,
                       recipient_email=address)
        _, fast = personalise_email(prepared, one, settings, now=NOW)
        _, slow = build_email_slowly(one, settings, now=NOW)
        seen |= {parse(fast)["Feedback-ID"], parse(slow)["Feedback-ID"]}
        assert fast.count(b"Feedback-ID:") == 1
    assert seen == {f"mb-north:{kind}:7:example.org"}, "the same for every copy and path"


def test_staff_mail_carries_a_feedback_id_of_its_own_kind(settings: Settings) -> None:
    from alerts.mail.staff import staff_email

    forward = staff_email(settings.mail, to="team-mb@police.example", subject="A reply",
                          now=NOW, kind="forward")
    assert forward["Feedback-ID"] == "staff:forward:example.org"


@pytest.mark.parametrize("layout", [
    f"{UNSUBSCRIBE_MARK}",
    f"{UNSUBSCRIBE_MARK} and {PREFERENCES_MARK}",
    f"{'é' * 37}{UNSUBSCRIBE_MARK}{'x' * 90}",
    f"{'a' * 74}é{UNSUBSCRIBE_MARK}",
    f"{'a' * 73}={UNSUBSCRIBE_MARK}=",
    f"line one \n\n{'word ' * 40}\n{PREFERENCES_MARK}\n{UNSUBSCRIBE_MARK}",
    f"trailing space {UNSUBSCRIBE_MARK} \n\tand a tab\t{PREFERENCES_MARK}\n",
])
def test_copies_decode_to_exactly_the_text_the_email_package_would_send(
    settings: Settings, layout: str
) -> None:
    from alerts.mail.mime import build_email_slowly, personalise_email, prepare_message

    original = outgoing(text=layout, html=layout.replace("\n", "<br>\n"))
    fast = parse(personalise_email(prepare_message(original, settings), original, settings,
                                   now=NOW)[1])
    slow = parse(build_email_slowly(original, settings, now=NOW)[1])
    assert body(fast, "plain") == body(slow, "plain")
    assert body(fast, "html") == body(slow, "html")
    raw = personalise_email(prepare_message(original, settings), original, settings, now=NOW)[1]
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")) <= 76
