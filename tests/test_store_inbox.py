"""E-mail into the store: new tickets, threaded replies, duplicates and auto-replies.

The messages are real RFC 822 bytes parsed by ``triage.mail`` (its own tests
cover multipart, HTML-only, charsets and attachments); here we check what the
store does with the result.
"""

from __future__ import annotations

from datetime import datetime, timezone

from triage.mail import parse_message
from triage.store import inbox, routing, tickets

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def eml(subject, *, mid, sender="ann@example.org", extra="", body="Hello"):
    return parse_message(
        (
            f"From: Ann <{sender}>\r\nTo: desk@example.org\r\n"
            f"Cc: Lead <lead@example.org>\r\nSubject: {subject}\r\n"
            f"Message-ID: {mid}\r\n{extra}"
            "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"
        ).encode()
        + body.encode("latin-1")
    )


def test_a_new_message_opens_a_ticket_once(store):
    message = eml("Drucker kaputt", mid="<a1@example.org>", body="Grüße")
    with store.session() as s:
        first = inbox.receive(s, message, now=NOW)
        t = first.ticket
        assert (first.kind, first.created, t.channel, t.requester) == (
            "ticket",
            True,
            "email",
            "ann@example.org",
        )
        assert t.body == "Grüße" and tickets.watchers(s, t.id) == ["lead@example.org"]
    with store.session() as s:  # the poller retries after a crash: same Message-ID
        again = inbox.receive(s, message, now=NOW)
        assert not again.created and again.ticket.id == t.id
        assert len(tickets.query(s)) == 1


def test_replies_thread_by_header_or_subject_tag(store):
    with store.session() as s:
        t = inbox.receive(s, eml("VPN", mid="<a1@x>"), now=NOW).ticket
        by_header = inbox.receive(s, eml("Re: VPN", mid="<a2@x>", extra="In-Reply-To: <a1@x>\r\n"), now=NOW)
        by_tag = inbox.receive(
            s, eml(f"Re: [#{inbox.reference(t.id)}] VPN", mid="<a3@x>", sender="lead@example.org"), now=NOW
        )
        chained = inbox.receive(
            s, eml("Re: Re: VPN", mid="<a4@x>", extra="References: <a1@x> <a3@x>\r\n"), now=NOW
        )
        assert [r.kind for r in (by_header, by_tag, chained)] == ["followup"] * 3
        assert [c.message_id for c in tickets.comments(s, t.id)] == ["<a2@x>", "<a3@x>", "<a4@x>"]
        assert len(tickets.query(s)) == 1


def test_a_stranger_using_a_reference_opens_a_new_ticket(store):
    with store.session() as s:
        t = inbox.receive(s, eml("VPN", mid="<a1@x>"), now=NOW).ticket
        r = inbox.receive(
            s, eml(f"[#{inbox.reference(t.id)}] hi", mid="<e1@x>", sender="eve@evil.example"), now=NOW
        )
        assert r.kind == "ticket" and r.created and r.ticket.id != t.id


def test_a_customer_reply_puts_a_pending_ticket_back_to_work(store):
    with store.session() as s:
        t = inbox.receive(s, eml("VPN", mid="<a1@x>"), now=NOW).ticket
        routing.upsert_agent(s, "bob", teams=["Net"])
        tickets.set_fields(
            s, t, {"category": "Net", "priority": 3, "affected_service": "vpn", "team": "Net"}, actor="bob"
        )
        routing.assign(s, t.id, actor="bob", agent_id="bob")
        tickets.transition(s, t, "pending", actor="bob")
        inbox.receive(s, eml("Re: VPN", mid="<a2@x>", extra="In-Reply-To: <a1@x>\r\n"), now=NOW)
        assert t.status == "in_progress"


def test_auto_replies_open_no_ticket_and_are_kept_as_refusals(store):
    from triage.store import mail_log

    with store.session() as s:
        r = inbox.receive(
            s, eml("Out of office", mid="<o@x>", extra="Auto-Submitted: auto-replied\r\n"), now=NOW
        )
        assert r.outcome == "refused" and r.ticket is None and tickets.query(s) == []
        assert [x["reason"] for x in mail_log.listing(s)] == [r.reason]
