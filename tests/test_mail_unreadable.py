"""Mail the parser should not read whole: thousands of tiny MIME parts, nesting past the
interpreter's recursion limit.

Each part costs the stdlib parser and our walk about half a millisecond of CPU, so a few
hundred kB of one-line parts held a worker for seconds (harden3's finding, round 6). Such a
message is now refused unread, kept for an admin's replay, with its sender and subject read
from the headers alone; an ordinary multipart, or a body quoting dash lines, is not touched.
"""

from __future__ import annotations

from triage.mail import parse_message
from triage.mail.parsing import MAX_PARTS
from triage.store import inbox, mail_log


def _multipart(parts: int, *, subject: str = "Many parts", mid: str = "many") -> bytes:
    body = "".join(
        f"--B\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; filename=f{i}.bin\r\n\r\npart {i}\r\n"
        for i in range(parts)
    )
    return (
        f"From: Ann <ann@acme.example>\r\nTo: desk@desk.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}@acme.example>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="B"\r\n\r\n{body}--B--\r\n'
    ).encode()


def _nested(depth: int) -> bytes:
    opening = "".join(
        f'--n{i}\r\nContent-Type: multipart/mixed; boundary="n{i + 1}"\r\n\r\n' for i in range(depth)
    )
    closing = "".join(f"--n{i}--\r\n" for i in reversed(range(depth)))
    return (
        "From: Bob <bob@acme.example>\r\nSubject: Nested deep\r\nMessage-ID: <deep@acme.example>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="n0"\r\n\r\n{opening}'
        f"--n{depth}\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n--n{depth}--\r\n{closing}"
    ).encode()


def test_a_message_of_too_many_parts_is_not_parsed_but_its_headers_are_read():
    got = parse_message(_multipart(MAX_PARTS + 500))
    assert got["unreadable"] and got["attachments"] == [] and got["body"] == ""
    assert got["subject"] == "Many parts"
    assert got["from"]["address"] == "ann@acme.example"
    assert got["message_id"] == "<many@acme.example>"
    assert any(f"{MAX_PARTS + 500 + 1} MIME parts" in d for d in got["defects"]), got["defects"]


def test_ordinary_multiparts_and_quoted_dash_lines_are_read_as_before():
    got = parse_message(_multipart(40))
    assert not got["unreadable"] and len(got["attachments"]) == 40
    # a long log pasted in a plain-text mail: dash lines that are no boundary of the message
    lines = "".join(f"--------- step {i}\r\n" for i in range(MAX_PARTS * 2))
    raw = (
        "From: ann@acme.example\r\nSubject: Log\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain\r\n\r\n{lines}"
    ).encode()
    got = parse_message(raw)
    assert not got["unreadable"] and "step 1999" in got["body"]


def test_nesting_past_the_recursion_limit_is_refused_with_its_sender_and_subject():
    got = parse_message(_nested(3000))
    assert got["unreadable"] and got["subject"] == "Nested deep"
    assert got["from"]["address"] == "bob@acme.example"


def test_an_unreadable_message_is_refused_kept_and_replayable_on_both_stores(store):
    raw = _multipart(MAX_PARTS * 2)
    got = inbox.receive_raw(store, raw)
    assert got.outcome == "refused"
    assert got.reason.startswith("unreadable message (unparseable: TooManyParts:"), got.reason
    with store.session() as s:
        (kept,) = mail_log.listing(s)
    assert (kept["sender"], kept["subject"], kept["size"]) == ("ann@acme.example", "Many parts", len(raw))
    assert inbox.receive_raw(store, raw).outcome == "refused"  # a second poll: recorded once
    with store.session() as s:
        assert len(mail_log.listing(s)) == 1
    replayed = inbox.replay(store, kept["id"])  # an admin's choice: a ticket from what was read
    assert replayed.outcome == "created" and replayed.ticket.subject == "Many parts"


def test_a_refusal_whose_headers_hold_a_nul_is_kept_on_both_stores(store):
    """PostgreSQL's text refuses NUL: a refusal naming one failed to be written, so the message
    was neither a ticket nor a refusal (harden4's note, round 7). The raw bytes keep it as sent."""
    message = {
        "raw": b"Subject: a\x00b\r\n\r\nbody",
        "raw_sha256": "nul-in-headers",
        "message_id": "<nul\x00@acme.example>",
        "from": {"address": "ann\x00@acme.example"},
        "subject": "VPN\x00 down",
    }
    with store.session() as s:
        row = mail_log.record(s, message, "unreadable message\x00")
        kept = row.id
    with store.session() as s:
        got = s.get(mail_log.MailRefusal, kept)
        assert (got.subject, got.sender, got.message_id) == (
            "VPN down",
            "ann@acme.example",
            "<nul@acme.example>",
        )
        assert got.reason == "unreadable message" and bytes(got.raw) == message["raw"]
