"""Mail shapes from the world outside the desk, found by hunting (round 8, harden5).

Each message is built here in the shape real senders give it (nothing copied): a customer
whose own help desk tags the subject too, newsletters and bulk mail, Outlook's winmail.dat.
Parsed by ``triage.mail`` and stored through ``triage.store.inbox`` on both stores.
"""

from __future__ import annotations

from datetime import datetime, timezone

from triage.mail import find_reference, parse_message
from triage.store import inbox, tickets

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=timezone.utc)


def _eml(
    subject: str, *, mid: str, sender: str = "ann@acme.example", headers: str = "", body: str = "Hi"
) -> bytes:
    return (
        f"From: Ann <{sender}>\r\nTo: desk@desk.example\r\nSubject: {subject}\r\n"
        f"Message-ID: {mid}\r\n{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


# ------------------------------------------------------------- foreign ticket tags
def test_another_desks_tag_before_ours_does_not_hide_ours():
    """Before: the first "[#X-n]" won, ``ticket_id_of`` refused its prefix and the reply
    opened a new ticket instead of following up TCK-12."""
    m = parse_message(_eml("Re: [#INC-88] [#TCK-12] VPN down", mid="<r1@acme.example>"))
    assert find_reference(m) == "TCK-12"
    assert find_reference(parse_message(_eml("Re: [#INC-88] VPN down", mid="<r2@acme.example>"))) is None


def test_a_reply_carrying_the_customers_own_desk_tag_threads_into_our_ticket(store):
    with store.session() as s:
        opened = inbox.receive(s, parse_message(_eml("VPN down", mid="<o1@acme.example>")), now=NOW)
        ref = inbox.reference(opened.ticket.id)
        # the customer's desk put its own tag in front when it forwarded our notice on
        reply = parse_message(_eml(f"RE: [#SR-4711] Re: [#{ref}] VPN down", mid="<o2@acme.example>"))
        got = inbox.receive(s, reply, now=NOW)
        assert (got.kind, got.ticket.id) == ("followup", opened.ticket.id)
        assert len(tickets.query(s)) == 1
