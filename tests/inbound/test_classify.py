"""What an inbound message is: the classifier's specification, one mail system at a time.

The samples in tests/inbound/samples/ are written for this project, in its own words and with
example.org/example.net addresses, but each keeps the exact structure of the real mail it stands
for (headers, MIME layout, status lines, wording). Each was checked against real files of the
same system in tests/inbound/corpus/:

- postfix_user_unknown.eml: Postfix's multipart/report (Notification, Delivery report with
  X-Postfix-Queue-ID, Undelivered Message Headers) as in sisimai/lhost-postfix-30.eml and
  flufl_bounce/dsn_16.txt.
- postfix_delayed_warning.eml: Postfix's "Delayed Mail (still being retried)" warning
  (Action: delayed, Will-Retry-Until) as in flufl_bounce/dsn_08.txt and dsn_17.txt.
- exim_failed.eml: Exim's plain-text "This message was created automatically by mail delivery
  software" with X-Failed-Recipients, as in sisimai/email-exim-02.eml and flufl_bounce/exim_01.txt.
- sendmail_user_unknown.eml: Sendmail's report ("permanent fatal errors", "Transcript of session
  follows", DSN part) as in sisimai/email-sendmail-01.eml and flufl_bounce/dsn_11.txt.
- qmail_no_mailbox.eml: "Hi. This is the qmail-send program" as in sisimai/email-qmail-01.eml and
  bounce_email/malformed_bounce_01.eml.
- exchange_ndr_recipient_not_found.eml: the Exchange 2010+/Office 365 NDR (multipart/report with
  multipart/alternative, "Delivery has failed to these recipients or groups", "Diagnostic
  information for administrators", 550 5.1.10 RESOLVER.ADR.RecipientNotFound) as in
  sisimai/email-exchange2007-04.eml; exchange_mailbox_full.eml the same layout with 5.2.2.
- gmail_address_not_found.eml: Gmail's "Delivery Status Notification (Failure)" from
  mailer-daemon@googlemail.com, "** Address not found **" in multipart/related, as in
  sisimai/email-gsuite-01.eml and email-google-02.eml.
- yahoo_user_unknown.eml: Yahoo's "Failure Notice" as in flufl_bounce/yahoo_13.txt.
- exchange_automatic_reply.eml: an Outlook/Exchange Online out-of-office reply with its header
  set (X-MS-Exchange-Inbox-Rules-Loop, auto-submitted: auto-generated,
  x-ms-exchange-generated-message-source: Mailbox Rules Agent, X-Auto-Response-Suppress) and the
  null Return-Path of sisimai/rfc3834-01.eml.
- gmail_vacation.eml: Gmail's vacation responder as in bounce_email/tt_1234211024.eml.
- sieve_vacation.eml: Dovecot Pigeonhole's vacation action ("Auto: " subject, Auto-Submitted:
  auto-replied (vacation), Precedence: bulk); zimbra_vacation.eml as in sisimai/rfc3834-06.eml.
- welsh_out_of_office.eml: an older Exchange out-of-office reply that carries no automatic header
  at all, only the localised subject, as bounce_email/tt_1234210666.eml does in Latvian.
- human_reply_mentioning_out_of_office.eml and outlook_reply_with_auto_response_suppress.eml:
  people's replies (Thunderbird; Outlook with X-Auto-Response-Suppress), as
  flufl_bounce/groupwise_03.txt is.
- unsubscribe_address.eml, stop_reply.eml, unsubscribe_with_quoted_digest.eml: commands; the
  caller passes the new text above the quote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from alerts.core.config import MailSettings
from alerts.inbound.classify import (
    STOP_WORDS,
    Kind,
    Severity,
    auto_reply_reason,
    classify,
    refuse_to_answer,
)
from alerts.inbound.mail import InboundMail, parse_mail

SAMPLES = Path(__file__).parent / "samples"
OURS = MailSettings(reply_domain="reply.example.org")
OWN = frozenset({"alerts@example.org"})


def sample(name: str) -> InboundMail:
    return parse_mail((SAMPLES / name).read_bytes())


def message(text: str, **envelope: str) -> InboundMail:
    sender = envelope.get("sender")
    return parse_mail(text.lstrip().replace("\n", "\r\n").encode(), envelope_sender=sender)


@dataclass(frozen=True)
class Expect:
    file: str
    kind: Kind
    severity: Severity | None = None
    recipients: tuple[str, ...] = ()
    status: str | None = None
    new_text: str = ""


CASES = {
    "postfix_dsn_is_a_hard_bounce_for_the_unknown_user": Expect(
        "postfix_user_unknown.eml", Kind.BOUNCE, Severity.HARD, ("resident.one@example.net",),
        "5.1.1"),
    "postfix_delay_warning_is_a_soft_bounce": Expect(
        "postfix_delayed_warning.eml", Kind.BOUNCE, Severity.SOFT, ("resident.two@example.net",),
        "4.4.1"),
    "exim_failure_is_a_hard_bounce_read_from_its_own_format": Expect(
        "exim_failed.eml", Kind.BOUNCE, Severity.HARD, ("resident.three@example.net",), "5.1.1"),
    "sendmail_dsn_is_a_hard_bounce_for_the_unknown_user": Expect(
        "sendmail_user_unknown.eml", Kind.BOUNCE, Severity.HARD, ("resident.four@example.net",),
        "5.1.1"),
    "qmail_no_mailbox_is_a_hard_bounce": Expect(
        "qmail_no_mailbox.eml", Kind.BOUNCE, Severity.HARD, ("resident.five@example.net",),
        "5.1.1"),
    "exchange_ndr_is_a_hard_bounce_for_the_missing_mailbox": Expect(
        "exchange_ndr_recipient_not_found.eml", Kind.BOUNCE, Severity.HARD,
        ("resident.six@example.net",), "5.1.10"),
    "gmail_address_not_found_is_a_hard_bounce": Expect(
        "gmail_address_not_found.eml", Kind.BOUNCE, Severity.HARD,
        ("resident.seven@example.net",), "5.1.1"),
    "yahoo_failure_notice_is_a_hard_bounce": Expect(
        "yahoo_user_unknown.eml", Kind.BOUNCE, Severity.HARD, ("resident.eight@example.net",),
        "5.1.1"),
    "a_full_mailbox_is_a_soft_bounce_that_says_nothing_against_the_address": Expect(
        "exchange_mailbox_full.eml", Kind.BOUNCE, Severity.SOFT,
        ("coordinator@council.example.net",), "5.2.2"),
    "outlook_automatic_reply_is_an_auto_reply": Expect(
        "exchange_automatic_reply.eml", Kind.AUTO_REPLY),
    "gmail_vacation_responder_is_an_auto_reply": Expect("gmail_vacation.eml", Kind.AUTO_REPLY),
    "sieve_vacation_is_an_auto_reply": Expect("sieve_vacation.eml", Kind.AUTO_REPLY),
    "zimbra_vacation_is_an_auto_reply": Expect("zimbra_vacation.eml", Kind.AUTO_REPLY),
    "welsh_out_of_office_with_only_its_subject_is_an_auto_reply": Expect(
        "welsh_out_of_office.eml", Kind.AUTO_REPLY),
    "a_person_who_writes_out_of_office_in_a_reply_is_still_replying": Expect(
        "human_reply_mentioning_out_of_office.eml", Kind.REPLY,
        new_text="Thanks for this. I was out of office last week so only just seen it - is the "
                 "Thursday session at the library still on?"),
    "outlook_reply_with_x_auto_response_suppress_is_a_reply": Expect(
        "outlook_reply_with_auto_response_suppress.eml", Kind.REPLY,
        new_text="Could someone look at the street light outside 14 Mill Lane?"),
    "mail_to_the_unsubscribe_address_is_a_command": Expect(
        "unsubscribe_address.eml", Kind.COMMAND,
        new_text="This message was sent by the unsubscribe button in my mail app."),
    "a_reply_that_says_only_stop_is_a_command": Expect(
        "stop_reply.eml", Kind.COMMAND, new_text="STOP"),
    "unsubscribe_above_a_quoted_digest_is_a_command": Expect(
        "unsubscribe_with_quoted_digest.eml", Kind.COMMAND, new_text="unsubscribe"),
}


@pytest.mark.parametrize("expect", CASES.values(), ids=CASES.keys())
def test_each_mail_systems_format_is_classified(expect: Expect) -> None:
    got = classify(sample(expect.file), new_text=expect.new_text, ours=OURS)
    assert got.kind is expect.kind, got.reason
    assert got.severity is expect.severity
    assert got.failed_recipients == expect.recipients
    assert got.status == expect.status


def test_the_samples_folder_holds_exactly_the_specified_cases() -> None:
    assert {path.name for path in SAMPLES.glob("*.eml")} == {e.file for e in CASES.values()}


@pytest.mark.parametrize("name", sorted(e.file for e in CASES.values()))
def test_reason_and_status_never_carry_an_address_or_the_messages_words(name: str) -> None:
    got = classify(sample(name), new_text="", ours=OURS)
    for text in (got.reason, got.status or ""):
        assert "@" not in text
        for word in ("riverside", "mill lane", "resident", "coordinator", "priya", "tom"):
            assert word not in text.lower()


def test_the_bounce_reason_names_the_status_and_the_mail_system() -> None:
    got = classify(sample("postfix_user_unknown.eml"), new_text="", ours=OURS)
    assert got.reason == "DSN 5.1.1 (Postfix)"
    got = classify(sample("qmail_no_mailbox.eml"), new_text="", ours=OURS)
    assert got.reason == "qmail permanent failure (5.1.1)"


def test_a_bounce_is_a_bounce_although_the_mta_marks_it_auto_submitted() -> None:
    mail = sample("postfix_user_unknown.eml")
    assert mail.message["Auto-Submitted"] == "auto-replied"
    assert classify(mail, new_text="", ours=OURS).kind is Kind.BOUNCE


# --- bounces no detector can name ---------------------------------------------------------

def test_an_evident_bounce_naming_no_address_is_still_a_soft_bounce() -> None:
    mail = message("""
From: Mail Delivery System <MAILER-DAEMON@gateway.example.net>
To: bounces+1700000201-mfrggzdfmztwq2lk@reply.example.org
Subject: Undeliverable mail
Content-Type: text/plain

Your message could not be delivered. Reason: the destination was unreachable.
""", sender="")
    got = classify(mail, new_text="", ours=OURS)
    assert (got.kind, got.severity, got.failed_recipients) == (Kind.BOUNCE, Severity.SOFT, ())


def test_non_delivery_wording_sent_to_our_bounce_address_is_a_bounce_with_its_status() -> None:
    mail = message("""
From: Gateway <gateway@example.net>
To: bounces+1700000202-mfrggzdfmztwq2lk@reply.example.org
Subject: Delivery failure
Content-Type: text/plain

The message could not be delivered.
Remote server said: 550 5.1.1 mailbox does not exist
""")
    got = classify(mail, new_text="", ours=OURS)
    assert (got.kind, got.severity, got.status) == (Kind.BOUNCE, Severity.HARD, "5.1.1")


def test_a_report_part_makes_a_bounce_even_in_a_multipart_mixed_message() -> None:
    mail = message("""
From: postmaster@example.net
To: bounces+1700000203-mfrggzdfmztwq2lk@reply.example.org
Subject: Notice
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

See the attached report.
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; Someone@Example.NET
Action: failed
Status: 5.2.1
--b--
""")
    got = classify(mail, new_text="", ours=OURS)
    assert (got.kind, got.severity, got.failed_recipients) == (
        Kind.BOUNCE, Severity.HARD, ("someone@example.net",))


@pytest.mark.parametrize(("status", "diagnostic", "severity"), [
    ("5.1.1", "550 5.1.1 user unknown", Severity.HARD),
    ("5.0.0", "550 unknown user <someone@example.net>", Severity.HARD),
    ("5.2.2", "552 5.2.2 mailbox full", Severity.SOFT),
    ("5.7.1", "550 5.7.1 message rejected as spam", Severity.SOFT),
    ("5.3.4", "552 5.3.4 message too big for system", Severity.SOFT),
    ("4.4.7", "421 4.4.7 delivery time expired", Severity.SOFT),
])
def test_severity_follows_the_status_and_diagnostic(status: str, diagnostic: str,
                                                     severity: Severity) -> None:
    mail = message(f"""
From: MAILER-DAEMON@mx.example.net
To: bounces+1700000204-mfrggzdfmztwq2lk@reply.example.org
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; someone@example.net
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic}
--b--
""", sender="")
    got = classify(mail, new_text="", ours=OURS)
    assert (got.kind, got.severity, got.status) == (Kind.BOUNCE, severity, status)


def test_a_success_report_is_automatic_mail_not_a_bounce() -> None:
    mail = message("""
From: MAILER-DAEMON@mx.example.net
To: bounces+1700000205-mfrggzdfmztwq2lk@reply.example.org
Subject: Successful Mail Delivery Report
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message was delivered.
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; someone@example.net
Action: delivered
Status: 2.0.0
--b--
""", sender="")
    assert classify(mail, new_text="", ours=OURS).kind is Kind.AUTO_REPLY


@pytest.mark.parametrize("raw", [
    b"From: a@example.net\r\nSubject: x\r\nContent-Type: text/plain; charset=no-such-charset\r\n"
    b"\r\n\xff\xfe odd bytes\r\n",
    b"From: MAILER-DAEMON@example.net\r\nSubject: Undeliverable\r\nContent-Type: multipart/"
    b"report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/"
    b"delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
    b"From: x@example.net\r\nSubject: Re: hi\r\nContent-Type: multipart/mixed\r\n\r\nno boundary",
])
def test_odd_mail_is_classified_without_raising(raw: bytes) -> None:
    got = classify(parse_mail(raw), new_text="", ours=OURS)
    assert got.kind in (Kind.BOUNCE, Kind.AUTO_REPLY, Kind.REPLY)


# --- auto-replies ---------------------------------------------------------------------------

REPLY_HEAD = """
From: Resident <resident@example.net>
To: reply+1700000301-mfrggzdfmztwq2lk@reply.example.org
Subject: {subject}
{headers}
Content-Type: text/plain

Back on Monday.
"""


def reply_with(subject: str = "Re: This week in Riverside ward", headers: str = "",
               **envelope: str) -> InboundMail:
    return message(REPLY_HEAD.format(subject=subject, headers=headers.strip() or "X-Note: none"),
                   **envelope)


@pytest.mark.parametrize("headers", [
    "Auto-Submitted: auto-replied",
    "Auto-Submitted: auto-generated",
    "Auto-Submitted: auto-notified",
    "X-Autoreply: yes",
    "X-Autorespond: Out of office",
    "X-Autogenerated: Reply",
    "X-Vacation: yes",
    "X-Mailer: vacation 1.2.7",
    "X-MS-Exchange-Inbox-Rules-Loop: resident@example.net",
    "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent",
    "Precedence: auto_reply",
    "Precedence: bulk",
    "Precedence: junk",
    "Precedence: list",
])
def test_automatic_headers_make_an_auto_reply(headers: str) -> None:
    got = classify(reply_with(headers=headers), new_text="Back on Monday.",
                   ours=OURS)
    assert got.kind is Kind.AUTO_REPLY
    assert "@" not in got.reason


@pytest.mark.parametrize("headers", [
    "Auto-Submitted: no",
    "X-Auto-Response-Suppress: All",
    "X-Auto-Response-Suppress: DR, OOF, AutoReply",
    "X-Autoreply: no",
    "Importance: high",
])
def test_marks_that_are_not_automatic_leave_a_reply(headers: str) -> None:
    got = classify(reply_with(headers=headers), new_text="Back on Monday.",
                   ours=OURS)
    assert got.kind is Kind.REPLY


def test_a_null_return_path_on_mail_that_is_not_a_bounce_is_an_auto_reply() -> None:
    got = classify(reply_with(sender=""), new_text="Back on Monday.", ours=OURS)
    assert (got.kind, got.reason) == (Kind.AUTO_REPLY, "null envelope sender")


@pytest.mark.parametrize("subject", [
    "Out of Office: This week in Riverside ward",
    "Automatic reply: This week in Riverside ward",
    "Auto: This week in Riverside ward",
    "AUTO: Jane Smith is out of the office (returning 24/03/2025)",
    "Autosvar: This week in Riverside ward",
    "Abwesenheitsnotiz: This week in Riverside ward",
    "Réponse automatique : This week in Riverside ward",
    "Respuesta automática: This week in Riverside ward",
    "Ateb awtomatig: This week in Riverside ward",
    "[Automatyczna odpowiedź] This week in Riverside ward",
])
def test_an_out_of_office_subject_alone_marks_an_auto_reply_as_a_last_resort(
        subject: str) -> None:
    got = classify(reply_with(subject=subject), new_text="Back on Monday.",
                   ours=OURS)
    assert (got.kind, got.reason) == (Kind.AUTO_REPLY, "out-of-office subject")


@pytest.mark.parametrize("subject", [
    "Re: Automatic reply: This week in Riverside ward",
    "Re: my out of office",
    "Question about the auto theft advice",
])
def test_a_subject_that_only_mentions_an_out_of_office_stays_a_reply(subject: str) -> None:
    got = classify(reply_with(subject=subject), new_text="Back on Monday.",
                   ours=OURS)
    assert got.kind is Kind.REPLY


def test_a_vacation_reply_sent_to_our_bounce_address_is_an_auto_reply_not_a_bounce() -> None:
    mail = message("""
From: Resident <resident@example.net>
To: bounces+1700000302-mfrggzdfmztwq2lk@reply.example.org
Subject: Out of office
Auto-Submitted: auto-replied
Content-Type: text/plain

I am away until Monday.
""", sender="")
    assert classify(mail, new_text="", ours=OURS).kind is Kind.AUTO_REPLY


@pytest.mark.parametrize(("report", "reason"), [
    ("feedback-report", "abuse feedback report (RFC 5965)"),
    ("disposition-notification", "read receipt (RFC 8098)"),
])
def test_abuse_reports_and_read_receipts_are_automatic_mail(report: str, reason: str) -> None:
    mail = message(f"""
From: Reader <reader@example.net>
To: reply+1700000303-mfrggzdfmztwq2lk@reply.example.org
Subject: Report
Content-Type: multipart/report; report-type={report}; boundary="b"

--b
Content-Type: text/plain

A report.
--b
Content-Type: message/{report}

Version: 1
--b--
""")
    got = classify(mail, new_text="", ours=OURS)
    assert (got.kind, got.reason) == (Kind.AUTO_REPLY, reason)


def test_auto_reply_reason_is_none_for_a_persons_mail() -> None:
    assert auto_reply_reason(sample("human_reply_mentioning_out_of_office.eml")) is None


# --- commands -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    *sorted(STOP_WORDS),
    "STOP", "Stop.", "  unsubscribe!  ", "UNSUBSCRIBE ME", "Unsubscribe me.",
    "Dad-danysgrifio", "Stopio!",
])
def test_a_new_text_that_is_only_a_stop_word_is_a_command(text: str) -> None:
    got = classify(reply_with(), new_text=text, ours=OURS)
    assert got.kind is Kind.COMMAND


@pytest.mark.parametrize("text", [
    "Please stop sending me the weekly digest but keep the urgent alerts",
    "unsubscribe\n\nDave",
    "stop the burglaries on Mill Lane!",
    "don't unsubscribe me",
    "",
])
def test_anything_more_than_a_stop_word_is_a_reply(text: str) -> None:
    got = classify(reply_with(), new_text=text, ours=OURS)
    assert got.kind is Kind.REPLY


def test_a_subject_of_exactly_unsubscribe_with_no_text_is_a_command() -> None:
    assert classify(reply_with(subject="Unsubscribe"), new_text="",
                    ours=OURS).kind is Kind.COMMAND
    assert classify(reply_with(subject="Unsubscribe"), new_text="Why did you stop the digest?",
                    ours=OURS).kind is Kind.REPLY
    assert classify(reply_with(subject="Re: unsubscribe"), new_text="",
                    ours=OURS).kind is Kind.REPLY


@pytest.mark.parametrize(("address", "kind"), [
    ("unsubscribe+1700000401-mfrggzdfmztwq2lk@reply.example.org", Kind.COMMAND),
    ("UNSUBSCRIBE+1700000401-MFRGGZDFMZTWQ2LK@Reply.Example.Org", Kind.COMMAND),
    ("unsubscribe+not-a-token@reply.example.org", Kind.REPLY),
    ("unsubscribe+1700000401-mfrggzdfmztwq2lk@elsewhere.example.net", Kind.REPLY),
    ("reply+1700000401-mfrggzdfmztwq2lk@reply.example.org", Kind.REPLY),
])
def test_the_unsubscribe_address_must_have_the_token_shape_at_the_reply_domain(
        address: str, kind: Kind) -> None:
    mail = message(f"""
From: Resident <resident@example.net>
To: {address}
Subject: Hello
Content-Type: text/plain

Hello
""")
    assert classify(mail, new_text="Hello", ours=OURS).kind is kind


# --- refuse_to_answer -----------------------------------------------------------------------

def refusal(mail: InboundMail) -> str | None:
    return refuse_to_answer(mail, own_addresses=OWN, ours=OURS)


@pytest.mark.parametrize("name", [
    "exchange_automatic_reply.eml", "gmail_vacation.eml", "sieve_vacation.eml",
    "zimbra_vacation.eml", "welsh_out_of_office.eml", "postfix_user_unknown.eml",
    "exim_failed.eml", "qmail_no_mailbox.eml", "exchange_ndr_recipient_not_found.eml",
])
def test_machines_are_never_answered(name: str) -> None:
    reason = refusal(sample(name))
    assert reason is not None
    assert "@" not in reason


@pytest.mark.parametrize("name", [
    "human_reply_mentioning_out_of_office.eml", "outlook_reply_with_auto_response_suppress.eml",
    "stop_reply.eml",
])
def test_people_may_be_answered(name: str) -> None:
    assert refusal(sample(name)) is None


@pytest.mark.parametrize(("sender", "reason"), [
    ("Riverside SNT <alerts@example.org>", "sent from this service's own address"),
    ("<reply+1700000501-mfrggzdfmztwq2lk@reply.example.org>",
     "sent from this service's own address"),
    ("Mail Delivery System <MAILER-DAEMON@mx.example.net>",
     "sent by a mail system (mailer-daemon or postmaster)"),
    ("<postmaster@example.net>", "sent by a mail system (mailer-daemon or postmaster)"),
])
def test_our_own_addresses_and_mail_systems_are_never_answered(sender: str,
                                                                reason: str) -> None:
    mail = message(f"""
From: {sender}
To: reply+1700000501-mfrggzdfmztwq2lk@reply.example.org
Subject: Hello
Content-Type: text/plain

Hello
""")
    assert refusal(mail) == reason


def test_the_null_sender_is_never_answered() -> None:
    assert refusal(reply_with(sender="")) == "null sender"


@pytest.mark.parametrize(("headers", "reason"), [
    ("List-Id: Street chat <street.lists.example.net>", "mailing-list mail"),
    ("List-Unsubscribe: <mailto:leave@lists.example.net>", "mailing-list mail"),
    ("Precedence: bulk", "Precedence: bulk"),
    ("Precedence: list", "Precedence: list"),
    ("Precedence: junk", "Precedence: junk"),
    ("Auto-Submitted: auto-replied", "automatic reply (Auto-Submitted: auto-replied)"),
])
def test_lists_and_automatic_mail_are_never_answered(headers: str, reason: str) -> None:
    assert refusal(reply_with(headers=headers)) == reason
