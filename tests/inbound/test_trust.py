"""Reading the receiving MTA's DMARC verdict from Authentication-Results (RFC 8601): only
under the trusted authserv-id, in the shapes real MTAs write."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from alerts.inbound.trust import dmarc_result, sender_verified


def mail(*results: str, sender: str = "Ann <Ann@Home.example>") -> EmailMessage:
    head = "".join(f"Authentication-Results: {value}\n" for value in results)
    raw = f"{head}From: {sender}\nTo: reply+x@reply.example\nSubject: Re\n\nHello\n"
    message = BytesParser(policy=policy.default).parsebytes(raw.encode())
    assert isinstance(message, EmailMessage)
    return message


GMAIL = ("mx.google.com;\n       dkim=pass header.i=@home.example header.s=s1 header.b=abc;\n"
         "       spf=pass (google.com: domain of ann@home.example designates 192.0.2.1 as "
         "permitted sender) smtp.mailfrom=ann@home.example;\n"
         "       dmarc=fail (p=REJECT sp=REJECT dis=REJECT) header.from=home.example")
OUTLOOK = ("spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=home.example; "
           "dkim=pass (signature was verified) header.d=home.example;dmarc=pass action=none "
           "header.from=home.example;compauth=pass reason=100")


def test_the_trusted_mtas_dmarc_result_is_read_whatever_the_case_or_folding() -> None:
    assert dmarc_result(mail(GMAIL), "MX.Google.com") == "fail"
    assert dmarc_result(mail("mx.police.example 1; dmarc=pass header.from=home.example"),
                        "mx.police.example") == "pass"
    assert dmarc_result(mail("mx.police.example; DMARC=None header.from=home.example"),
                        "mx.police.example") == "none"


def test_no_trusted_id_another_id_or_no_dmarc_method_gives_no_result() -> None:
    assert dmarc_result(mail(GMAIL), "") is None
    assert dmarc_result(mail(GMAIL), "mx.police.example") is None
    assert dmarc_result(mail("mx.police.example; spf=pass smtp.mailfrom=home.example"),
                        "mx.police.example") is None
    assert dmarc_result(mail("mx.police.example; none"), "mx.police.example") is None
    # Outlook.com's header names no authserv-id of the form RFC 8601 wants first.
    assert dmarc_result(mail(OUTLOOK), "mx.police.example") is None


def test_an_unreadable_header_is_no_verdict_and_a_fail_in_any_trusted_header_wins() -> None:
    assert dmarc_result(mail("mx.police.example; dmarc=", "mx.police.example; dmarc=pass"),
                        "mx.police.example") == "pass"
    assert dmarc_result(mail("mx.police.example; dmarc=pass", "mx.police.example; dmarc=fail"),
                        "mx.police.example") == "fail"


def test_the_sender_is_verified_only_as_the_subscriber_without_a_trusted_fail() -> None:
    trusted = "mx.police.example"
    assert sender_verified(mail(), subscriber_email="ann@home.example", authserv_id=trusted)
    assert sender_verified(mail("mx.police.example; dmarc=none"),
                           subscriber_email="ann@home.example", authserv_id=trusted)
    assert not sender_verified(mail("mx.police.example; dmarc=fail"),
                               subscriber_email="ann@home.example", authserv_id=trusted)
    assert not sender_verified(mail(sender="bob@home.example"),
                               subscriber_email="ann@home.example", authserv_id=trusted)
    assert not sender_verified(mail(sender="ann@home.example, bob@home.example"),
                               subscriber_email="ann@home.example", authserv_id=trusted)
