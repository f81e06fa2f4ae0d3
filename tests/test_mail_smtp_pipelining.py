"""SMTP with PIPELINING (RFC 2920): a notice's MAIL, RCPT and DATA go in one write when the
relay offers it, with the same answers and errors as smtplib's one-command-at-a-time
conversation (a real aiosmtpd relay that says it pipelines)."""

from __future__ import annotations

import email
import email.policy
import smtplib

import pytest
from relay_support import running_relay

from triage.mail.outbound import Outgoing, SmtpTransport


class Relay:
    """Accepts mail, refuses the recipients in ``refuse``; offers PIPELINING when ``pipelining``."""

    def __init__(self, pipelining: bool = True, refuse: tuple[str, ...] = ()):
        self.pipelining, self.refuse = pipelining, set(refuse)
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


BODY = b"Subject: hi\nMessage-ID: <1@d.example>\n\nline one\n.starts with a dot\n.\nlast\n"


def _mail(to: list[str], n: int = 1) -> Outgoing:
    return Outgoing("desk@desk.example", to, f"<{n}@d.example>", BODY)


@pytest.fixture
def no_sendmail(monkeypatch):
    """smtplib's sendmail fails the test: the pipelined conversation must be the one used."""

    def refuse(*args, **kwargs):
        raise AssertionError("sendmail used although the relay offers PIPELINING")

    monkeypatch.setattr(smtplib.SMTP, "sendmail", refuse)


def test_a_pipelining_relay_gets_the_mail_as_sendmail_would_send_it(no_sendmail):
    relay = Relay()
    with running_relay(relay) as port:
        transport = SmtpTransport("127.0.0.1", port, "none")
        transport.send(_mail(["a@example.com", "b@example.com"]))
        transport.send(_mail(["c@example.com"], 2))  # the same connection, the next mail
        transport.close()
    assert [rcpts for rcpts, _ in relay.messages] == [["a@example.com", "b@example.com"], ["c@example.com"]]
    raw = relay.messages[0][1]
    assert raw.replace(b"\r\n", b"\n") == BODY  # lines that start with a dot arrive unchanged
    assert email.message_from_bytes(raw, policy=email.policy.default).get_content().splitlines() == [
        "line one",
        ".starts with a dot",
        ".",
        "last",
    ]


def test_a_refused_recipient_is_named_and_the_others_get_the_mail(no_sendmail):
    relay = Relay(refuse=("gone@example.com",))
    with running_relay(relay) as port:
        transport = SmtpTransport("127.0.0.1", port, "none")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            transport.send(_mail(["a@example.com", "gone@example.com"]))
        assert list(refused.value.recipients) == ["gone@example.com"]
        assert refused.value.recipients["gone@example.com"][0] == 550
        transport.close()
    assert [rcpts for rcpts, _ in relay.messages] == [["a@example.com"]]


def test_a_mail_nobody_may_receive_is_not_sent_and_the_next_one_is(no_sendmail):
    relay = Relay(refuse=("gone@example.com",))
    with running_relay(relay) as port:
        transport = SmtpTransport("127.0.0.1", port, "none")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            transport.send(_mail(["gone@example.com"]))
        transport.send(_mail(["a@example.com"], 2))
        transport.close()
    assert [rcpts for rcpts, _ in relay.messages] == [["a@example.com"]]


def test_a_relay_without_pipelining_gets_one_command_at_a_time():
    relay = Relay(pipelining=False)
    with running_relay(relay) as port:
        transport = SmtpTransport("127.0.0.1", port, "none")
        transport.send(_mail(["a@example.com"]))
        transport.close()
    assert relay.messages[0][1].replace(b"\r\n", b"\n") == BODY
