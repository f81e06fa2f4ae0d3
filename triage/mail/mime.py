"""A notice's MIME bytes written directly: one-line headers, a text part and an HTML part.

What ``email.message.EmailMessage`` would write for the same mail (``multipart/alternative``,
``text/plain`` then ``text/html``, UTF-8), without its header registry: setting a header
there parses it into an object and flattening folds it again, about 2.5 ms a notice, more
than the rest of the outbox's work per mail. The caller gives header values that are
already one line (``triage.mail.outbound`` builds them); here they are only encoded and
folded. :func:`write` returns None for what it does not handle (a non-ASCII value in any
header but ``Subject``), and the caller then composes with ``email`` as before.

Bodies are 7bit when they are ASCII in lines of at most 78 characters, else
quoted-printable (``binascii``, in C): plain ASCII on the wire for any relay.
"""

from __future__ import annotations

import base64
import binascii
import secrets

MAX_LINE = 78  # as email.policy.default
ENCODED_CHUNK = 45  # UTF-8 bytes per encoded word: 60 base64 characters, 72 with its frame


def write(headers: list[tuple[str, str]], text: str, html: str) -> bytes | None:
    """The whole message (``\\n`` line ends), or None when a header needs ``email``'s care."""
    lines = []
    for name, value in headers:
        line = _header(name, value)
        if line is None:
            return None
        lines.append(line)
    parts = [_part("plain", text), _part("html", html)]
    boundary = _boundary(parts)
    lines.append("MIME-Version: 1.0")
    lines.append(f'Content-Type: multipart/alternative;\n boundary="{boundary}"')
    out = ["\n".join(lines).encode("ascii"), b"\n\n"]
    for part in parts:
        out += [b"--", boundary.encode("ascii"), b"\n", part, b"\n"]
    out += [b"--", boundary.encode("ascii"), b"--\n"]
    return b"".join(out)


def _part(subtype: str, content: str) -> bytes:
    cte, body = _body(content)
    head = f'Content-Type: text/{subtype}; charset="utf-8"\nContent-Transfer-Encoding: {cte}\n\n'
    return head.encode("ascii") + body


def _body(content: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body): lines split as ``email`` splits them, ``\\n`` ends."""
    lines = content.encode("utf-8").splitlines()
    joined = b"\n".join(lines) + b"\n"
    if joined.isascii() and max((len(x) for x in lines), default=0) <= MAX_LINE:
        return "7bit", joined
    return "quoted-printable", binascii.b2a_qp(joined, istext=True)


def _boundary(parts: list[bytes]) -> str:
    """A boundary found in no part (a random one: a clash is checked, never expected)."""
    while True:
        boundary = "=_triage_" + secrets.token_hex(12)
        if not any(boundary.encode("ascii") in part for part in parts):
            return boundary


def _header(name: str, value: str) -> str | None:
    if value.isascii():
        return _fold(f"{name}: {value}")
    if name != "Subject":
        return None
    return f"{name}: " + "\n ".join(_encoded_words(value))


def _fold(line: str) -> str:
    """A header line folded at spaces to at most 78 characters where a space allows it
    (a longer word stays whole: the limit that must hold is 998, and values are shorter)."""
    if len(line) <= MAX_LINE:
        return line
    out, current = [], ""
    for word in line.split(" "):
        if current and len(current) + 1 + len(word) > MAX_LINE:
            out.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\n".join(out)


def _encoded_words(value: str) -> list[str]:
    """RFC 2047 ``=?utf-8?b?...?=`` words of whole characters, each at most 75 characters."""
    words, chunk = [], b""
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > ENCODED_CHUNK:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words]
