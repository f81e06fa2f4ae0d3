"""Mail that machines send as they really send it: out-of-office replies in more languages,
read receipts, bounces and delay warnings without a report part. Each is refused as an
auto-reply (no ticket, nothing sent back: no loop); a person's similar words stay a ticket."""

from __future__ import annotations

import pytest

from triage.mail.parsing import parse_message

ANN = "Ann <ann@acme.example>"


def _mail(subject: str, sender: str = ANN, *extra: tuple[str, str]) -> bytes:
    headers = [
        ("From", sender),
        ("To", "desk@desk.example"),
        ("Subject", subject),
        ("Message-ID", "<m@x>"),
        *extra,
    ]
    return ("".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\nI am away until Monday.\r\n").encode("utf-8")


@pytest.mark.parametrize(
    "raw",
    [
        _mail("Read: VPN down"),  # Outlook's plain-text read receipt
        _mail("Not read: VPN down"),
        _mail("Gelesen: VPN down"),
        _mail("=?utf-8?b?6Ieq5Yqo5Zue5aSNOiBWUE4=?="),  # 自动回复: VPN
        _mail("=?utf-8?q?=E8=87=AA=E5=8A=A8=E5=9B=9E=E5=A4=8D=EF=BC=9A_VPN?="),  # full-width colon
        _mail("=?utf-8?b?6Ieq5YuV5b+c562UOiBWUE4=?="),  # 自動応答: VPN
        _mail(
            "=?utf-8?b?0JDQstGC0L7QvNCw0YLQuNGH0LXRgdC60LjQuSDQvtGC0LLQtdGCOiBWUE4=?="
        ),  # Автоматический ответ
        _mail("Undelivered Mail Returned to Sender", "MAILER-DAEMON (Mail Delivery System)"),  # Postfix, bare
        _mail("Undelivered Mail Returned to Sender"),  # the subject alone
        _mail("Delivery Status Notification (Delay)"),  # Gmail's delay warning
        _mail("Failure Notice"),  # qmail / Yahoo
        _mail("DELIVERY FAILURE: User ann not listed"),  # Lotus Notes
        _mail("Delivery delayed: VPN down"),  # Exchange
        _mail("Re: VPN", ANN, ("X-Precedence", "auto_reply")),
        _mail("Re: VPN", ANN, ("Precedence", "auto-reply")),
    ],
)
def test_machine_mail_is_an_auto_reply(raw):
    intake = parse_message(raw)
    assert intake["auto_reply"], intake["subject"]


@pytest.mark.parametrize(
    "raw",
    [
        _mail("Read the VPN guide, still fails"),
        _mail("Failure notice on server db01"),
        _mail("Delivery of my laptop failed"),
        _mail("Need help", "Postmaster Team <it-postmaster@acme.example>"),  # a person's mailbox
        _mail("Re: VPN", ANN, ("Precedence", "list")),  # a Google Group alias in front of the desk
    ],
)
def test_a_persons_mail_with_similar_words_is_a_ticket(raw):
    intake = parse_message(raw)
    assert not intake["auto_reply"], intake["auto_reply_reason"]
