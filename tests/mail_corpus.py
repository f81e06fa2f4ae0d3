"""A generated corpus of awkward e-mail, each message with the outcome intake must reach.

Nothing here is real mail: every message is built by :func:`build` from a short
spec, so the corpus is reproducible, licence-free and can grow. It covers what
mail intake meets in the wild: undeclared and wrong charsets, HTML-only bodies,
broken MIME boundaries, bad base64, ``Status:``/``X-Status:`` headers carried by
the messages themselves, empty and header-only messages, replies by
``In-Reply-To`` and ``References``, exact and near duplicates, Message-IDs
reused by another sender or with other content, and machine-sent mail.

Outcomes (as ``triage.store.inbox.Received.outcome``): created, threaded,
duplicate, refused. The corpus is fed in order, so a reply follows its opener.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class Item:
    name: str
    raw: bytes
    expected: str


def _msg(headers: list[tuple[str, str]], body: bytes | str, *, crlf: bool = False) -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in headers).encode("utf-8")
    data = body.encode("utf-8") if isinstance(body, str) else body
    raw = head + b"\n" + data
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def _h(
    n: int,
    sender: str,
    subject: str | None = "Problem",
    mid: str | None = "",
    extra: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    out = [
        ("From", sender),
        ("To", "helpdesk@desk.example"),
        ("Date", f"Tue, 01 Dec 2026 10:{n % 60:02d}:00 +0000"),
    ]
    if subject is not None:
        out.append(("Subject", subject))
    if mid is not None:
        out.append(("Message-ID", mid or f"<corpus-{n}@mail.example>"))
    return out + list(extra or [])


def _multipart(boundary: str, parts: list[str], close: bool = True) -> str:
    body = "".join(f"--{boundary}\n{p}\n" for p in parts)
    return body + (f"--{boundary}--\n" if close else "")


def build() -> list[Item]:
    items: list[Item] = []

    def add(name: str, raw: bytes, expected: str) -> None:
        items.append(Item(name, raw, expected))

    # -- new tickets: plain, charsets, encodings
    add(
        "plain",
        _msg(
            _h(1, "alice@example.com", "VPN drops every few minutes"),
            "The VPN disconnects all the time since the update.\n",
        ),
        "created",
    )
    add(
        "latin1-declared",
        _msg(
            _h(
                2,
                "bob@example.com",
                "Drucker kaputt",
                extra=[("Content-Type", "text/plain; charset=iso-8859-1")],
            ),
            "Der Drucker im 2. Stock druckt nur noch leere Seiten. Grüße".encode("latin-1"),
        ),
        "created",
    )
    add(
        "undeclared-8bit-latin1",
        _msg(
            _h(3, "carol@example.com", "Caf\u00e9 wifi"),
            "Le wifi du caf\u00e9 ne marche pas, d\u00e9sol\u00e9.".encode("latin-1"),
        ),
        "created",
    )
    add(
        "undeclared-8bit-utf8",
        _msg(
            _h(4, "dave@example.com", "Umlaut problem"),
            "Ärger mit Outlook: Nachrichten bleiben hängen.".encode(),
        ),
        "created",
    )
    add(
        "wrong-charset-label",
        _msg(
            _h(
                5, "erin@example.com", "Wrong label", extra=[("Content-Type", "text/plain; charset=us-ascii")]
            ),
            "naïve café résumé".encode(),
        ),
        "created",
    )
    add(
        "unknown-charset",
        _msg(
            _h(
                6,
                "frank@example.com",
                "Unknown charset",
                extra=[("Content-Type", "text/plain; charset=x-made-up-8")],
            ),
            "Text in a charset nobody knows \xe9".encode("latin-1"),
        ),
        "created",
    )
    add(
        "encoded-word-subject",
        _msg(
            _h(7, "grace@example.com", "=?utf-8?B?UGFzc3dvcnQgYWJnZWxhdWZlbiDinJM=?="),
            "My password expired.\n",
        ),
        "created",
    )
    add(
        "encoded-word-bad-charset",
        _msg(_h(8, "heidi@example.com", "=?x-unknown?Q?caf=E9?= broken"), "Subject in an unknown charset.\n"),
        "created",
    )
    add(
        "quoted-printable",
        _msg(
            _h(
                9,
                "ivan@example.com",
                "QP body",
                extra=[
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Transfer-Encoding", "quoted-printable"),
                ],
            ),
            "Soft=\nbreak and =C3=A9 accents, a long line that goes on =\nand on.\n",
        ),
        "created",
    )
    add(
        "base64-body",
        _msg(
            _h(
                10,
                "judy@example.com",
                "Base64 body",
                extra=[
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Transfer-Encoding", "base64"),
                ],
            ),
            base64.encodebytes("Outlook crashes when I open the calendar.".encode()).decode(),
        ),
        "created",
    )
    add(
        "bad-base64",
        _msg(
            _h(
                11,
                "mallory@example.com",
                "Bad base64",
                extra=[("Content-Type", "text/plain"), ("Content-Transfer-Encoding", "base64")],
            ),
            "VGhpcyBpcyBub3QgcGFkZGVk!!!@@@\n",
        ),
        "created",
    )
    add(
        "html-only",
        _msg(
            _h(12, "nina@example.com", "HTML only", extra=[("Content-Type", "text/html; charset=utf-8")]),
            "<html><body><p>Teams <b>freezes</b> in calls.</p><script>x()</script></body></html>",
        ),
        "created",
    )
    add(
        "alternative",
        _msg(
            _h(
                13,
                "oscar@example.com",
                "Alternative",
                extra=[("MIME-Version", "1.0"), ("Content-Type", 'multipart/alternative; boundary="b1"')],
            ),
            _multipart(
                "b1",
                [
                    "Content-Type: text/plain\n\nSharePoint is slow.",
                    "Content-Type: text/html\n\n<p>SharePoint is <i>slow</i>.</p>",
                ],
            ),
        ),
        "created",
    )
    add(
        "attachment-png",
        _msg(
            _h(
                14,
                "peggy@example.com",
                "Screenshot attached",
                extra=[("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="b2"')],
            ),
            _multipart(
                "b2",
                [
                    "Content-Type: text/plain\n\nSee the screenshot.",
                    "Content-Type: image/png; name=shot.png\nContent-Disposition: attachment; "
                    "filename=shot.png\nContent-Transfer-Encoding: base64\n\n"
                    + base64.encodebytes(PNG).decode(),
                ],
            ),
        ),
        "created",
    )
    add(
        "attachment-mislabelled",
        _msg(
            _h(
                15,
                "quinn@example.com",
                "Mislabelled file",
                extra=[("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="b3"')],
            ),
            _multipart(
                "b3",
                [
                    "Content-Type: text/plain\n\nThe invoice is attached.",
                    "Content-Type: image/png; name=invoice.png\nContent-Disposition: attachment; "
                    "filename=invoice.png\n\n<html>not a png</html>",
                ],
            ),
        ),
        "created",
    )
    add(
        "broken-boundary",
        _msg(
            _h(
                16,
                "rupert@example.com",
                "Broken boundary",
                extra=[("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="never-used"')],
            ),
            "--other\nContent-Type: text/plain\n\nThe boundary in the header never appears.\n",
        ),
        "created",
    )
    add(
        "unclosed-boundary",
        _msg(
            _h(
                17,
                "sybil@example.com",
                "Unclosed boundary",
                extra=[("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="b4"')],
            ),
            _multipart("b4", ["Content-Type: text/plain\n\nNo closing boundary follows."], close=False),
        ),
        "created",
    )
    add(
        "multipart-no-boundary",
        _msg(
            _h(
                18,
                "trent@example.com",
                "No boundary parameter",
                extra=[("MIME-Version", "1.0"), ("Content-Type", "multipart/mixed")],
            ),
            "Body of a multipart without a boundary.\n",
        ),
        "created",
    )
    add(
        "nested-rfc822",
        _msg(
            _h(
                19,
                "uma@example.com",
                "Fwd: forwarded problem",
                extra=[("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="b5"')],
            ),
            _multipart(
                "b5",
                [
                    "Content-Type: text/plain\n\nForwarding this.",
                    "Content-Type: message/rfc822\n\nFrom: x@y.example\nSubject: inner\n\nInner body.\n",
                ],
            ),
        ),
        "created",
    )
    add(
        "crlf",
        _msg(
            _h(20, "victor@example.com", "CRLF line ends"), "Windows line ends\nin this message.\n", crlf=True
        ),
        "created",
    )
    add("nul-bytes", _msg(_h(21, "wendy@example.com", "NUL bytes"), b"Before\x00after NUL.\n"), "created")
    add("long-lines", _msg(_h(22, "xavier@example.com", "Long line"), "word " * 4000 + "\n"), "created")
    add(
        "no-message-id",
        _msg(_h(23, "yvonne@example.com", "No Message-ID", mid=None), "This message has no Message-ID.\n"),
        "created",
    )
    add("no-subject", _msg(_h(24, "zoe@example.com", None), "A message with no subject line.\n"), "created")
    add(
        "no-from",
        _msg(
            [
                ("To", "helpdesk@desk.example"),
                ("Subject", "Nobody sent this"),
                ("Message-ID", "<corpus-25@mail.example>"),
            ],
            "No From header at all.\n",
        ),
        "created",
    )
    add(
        "bad-date",
        _msg(
            [
                ("From", "alice@example.com"),
                ("Subject", "Bad date"),
                ("Date", "yesterday-ish"),
                ("Message-ID", "<corpus-26@mail.example>"),
            ],
            "The Date header is junk.\n",
        ),
        "created",
    )
    add(
        "raw-8bit-header",
        b"From: kim@example.com\nSubject: R\xe9seau en panne\n"
        b"Message-ID: <corpus-34@mail.example>\n\nLe r\xe9seau ne marche plus.\n",
        "created",
    )
    add(
        "status-ro",
        _msg(
            _h(27, "bob@example.com", "Carries Status RO", extra=[("Status", "RO"), ("X-Status", "A")]),
            "A message that says it was read.\n",
        ),
        "created",
    )
    add(
        "status-r",
        _msg(
            _h(28, "carol@example.com", "Carries Status R", extra=[("Status", "R")]),
            "Another one flagged read by its sender.\n",
        ),
        "created",
    )
    add(
        "from-line-in-body",
        _msg(
            _h(29, "dave@example.com", "From line in body"),
            "Hello\nFrom the top: this line starts with From.\n",
        ),
        "created",
    )
    add("header-only-with-subject", _msg(_h(30, "erin@example.com", "Subject but no body"), ""), "created")
    add("junk-bytes", b"\x00\x01\x02 this is not an e-mail at all \xff\xfe\n", "created")
    add(
        "cc-watcher",
        _msg(
            _h(32, "frank@example.com", "With a colleague in Cc", extra=[("Cc", "Gina <gina@example.com>")]),
            "Gina is in Cc.\n",
        ),
        "created",
    )
    add(
        "display-name-encoded",
        _msg(
            [
                ("From", "=?utf-8?Q?J=C3=BCrgen?= <juergen@example.com>"),
                ("Subject", "Encoded display name"),
                ("Message-ID", "<corpus-33@mail.example>"),
            ],
            "Display name in an encoded word.\n",
        ),
        "created",
    )

    # -- replies that thread (the sender is the requester or a watcher)
    add(
        "reply-in-reply-to",
        _msg(
            _h(
                40,
                "alice@example.com",
                "Re: VPN drops every few minutes",
                extra=[("In-Reply-To", "<corpus-1@mail.example>")],
            ),
            "It happened again just now.\n",
        ),
        "threaded",
    )
    add(
        "reply-references-only",
        _msg(
            _h(
                41,
                "bob@example.com",
                "AW: Drucker kaputt",
                extra=[("References", "<unknown@else.example> <corpus-2@mail.example>")],
            ),
            "Immer noch kaputt.\n",
        ),
        "threaded",
    )
    add(
        "reply-by-watcher",
        _msg(
            _h(
                42,
                "gina@example.com",
                "Re: With a colleague in Cc",
                extra=[("In-Reply-To", "<corpus-32@mail.example>")],
            ),
            "Same here.\n",
        ),
        "threaded",
    )
    add(
        "reply-html",
        _msg(
            _h(
                43,
                "nina@example.com",
                "Re: HTML only",
                extra=[("In-Reply-To", "<corpus-12@mail.example>"), ("Content-Type", "text/html")],
            ),
            "<p>Still <b>freezing</b>.</p>",
        ),
        "threaded",
    )
    add(
        "reply-status-ro",
        _msg(
            _h(
                44,
                "carol@example.com",
                "Re: Carries Status R",
                extra=[("In-Reply-To", "<corpus-28@mail.example>"), ("Status", "RO")],
            ),
            "Following up.\n",
        ),
        "threaded",
    )
    # replies that must not thread: another sender, or an unknown parent
    add(
        "reply-by-stranger",
        _msg(
            _h(
                45,
                "eve@evil.example",
                "Re: VPN drops every few minutes",
                extra=[("In-Reply-To", "<corpus-1@mail.example>")],
            ),
            "I am not Alice.\n",
        ),
        "created",
    )
    add(
        "reply-unknown-parent",
        _msg(
            _h(
                46,
                "alice@example.com",
                "Re: something else",
                extra=[("In-Reply-To", "<never-seen@else.example>")],
            ),
            "Unknown parent.\n",
        ),
        "created",
    )

    # -- duplicates: the same message again (exact bytes, or other transport headers)
    for n in (1, 2, 13, 14):
        add(f"exact-copy-of-{n}", items[n - 1].raw, "duplicate")
    add(
        "redelivered-other-received",
        b"Received: from relay2.example by mx.desk.example\n" + items[0].raw,
        "duplicate",
    )
    add("copy-of-no-message-id", items[22].raw, "duplicate")
    add("same-content-other-date", items[2].raw.replace(b"10:03:00", b"11:45:00"), "duplicate")
    add("copy-of-reply", items[[i.name for i in items].index("reply-in-reply-to")].raw, "duplicate")

    # -- reused Message-IDs: another sender, or other content → a new ticket with a warning
    add(
        "reused-id-other-sender",
        _msg(
            _h(50, "olga@example.com", "Different sender", mid="<corpus-1@mail.example>"),
            "Olga's own problem.\n",
        ),
        "created",
    )
    add(
        "reused-id-other-content",
        _msg(
            _h(51, "alice@example.com", "VPN drops every few minutes", mid="<corpus-1@mail.example>"),
            "Completely new text.\n",
        ),
        "created",
    )
    add(
        "reused-id-of-reply",
        _msg(
            _h(52, "pavel@example.com", "Another reuse", mid="<corpus-40@mail.example>"),
            "Reusing a reply's ID.\n",
        ),
        "created",
    )

    # -- refusals: machine-sent, empty
    add(
        "auto-submitted",
        _msg(
            _h(60, "alice@example.com", "Automatic reply: VPN", extra=[("Auto-Submitted", "auto-replied")]),
            "I am out of office.\n",
        ),
        "refused",
    )
    add(
        "x-autoreply",
        _msg(_h(61, "bob@example.com", "Away", extra=[("X-Autoreply", "yes")]), "Away until Monday.\n"),
        "refused",
    )
    add(
        "precedence-bulk",
        _msg(_h(62, "news@example.com", "Newsletter", extra=[("Precedence", "bulk")]), "Our newsletter.\n"),
        "refused",
    )
    add(
        "bounce-report",
        _msg(
            _h(
                63,
                "postmaster@desk.example",
                "Undelivered Mail",
                extra=[
                    ("MIME-Version", "1.0"),
                    ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b6"'),
                ],
            ),
            _multipart(
                "b6",
                [
                    "Content-Type: text/plain\n\nDelivery failed.",
                    "Content-Type: message/delivery-status\n\nStatus: 5.1.1\n",
                ],
            ),
        ),
        "refused",
    )
    add(
        "mailer-daemon",
        _msg(_h(64, "MAILER-DAEMON@mx.example", "failure notice"), "Sorry, could not deliver.\n"),
        "refused",
    )
    add(
        "out-of-office-subject",
        _msg(_h(65, "carol@example.com", "Out of Office: back soon"), "Back on Monday.\n"),
        "refused",
    )
    add(
        "empty-headers-only",
        _msg([("From", "dave@example.com"), ("Message-ID", "<corpus-66@mail.example>")], ""),
        "refused",
    )
    add("empty-blank-subject", _msg(_h(67, "erin@example.com", "   "), "   \n\n"), "refused")
    add(
        "empty-multipart",
        _msg(
            _h(
                68,
                "frank@example.com",
                "",
                extra=[("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="b7"')],
            ),
            _multipart("b7", ["Content-Type: text/plain\n\n"]),
        ),
        "refused",
    )
    add("whitespace-only", b"\n\n   \n", "refused")
    add("zero-bytes", b"", "refused")
    return items


def expected_counts(items: list[Item]) -> dict[str, int]:
    counts = {"created": 0, "threaded": 0, "duplicate": 0, "refused": 0}
    for item in items:
        counts[item.expected] += 1
    return counts
