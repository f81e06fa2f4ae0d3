"""RFC 2047 encoded-words (``=?utf-8?q?caf=C3=A9?=``) decoded one word at a time.

The stdlib's two decoders fail whole headers on one bad word: ``decode_header`` raises
on a broken base64 word, so every good word beside it stayed encoded in the subject;
the modern header parser drops an undecodable word without a trace and decodes a run of
same-charset words as one byte string, so one word of Latin-1 bytes labelled UTF-8
turned its good neighbours into mojibake (``cafÃ©``). Mailers and spammers send both.

Here each word is decoded by itself, with :func:`triage.charsets.decode_bytes`'
fallbacks; a run of same-charset words is joined first only when the joined bytes decode
as labelled (some mailers split one UTF-8 character across two words). A word that is
not base64 even when repaired (padding added) is kept as written, with a warning: the
reader sees that something was there rather than a silent gap.
"""

from __future__ import annotations

import binascii
import re

from triage.charsets import clean_header_text, decode_bytes

# charset (with an optional RFC 2231 language: utf-8*en), encoding, payload
WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def has_words(raw: str) -> bool:
    return WORD.search(raw) is not None


def decode_words(raw: str, warnings: list[str], name: str = "") -> str:
    """``raw`` (a header's value as sent) with every encoded-word decoded; blanks between
    two encoded-words dropped (RFC 2047 6.2), other text kept as it is."""
    raw = raw.replace("\r", "").replace("\n", "")
    pieces: list[tuple[str, bytes | str]] = []  # (charset, payload bytes) or ("", text)
    pos = 0
    for m in WORD.finditer(raw):
        between = raw[pos : m.start()]
        payload = _payload(m.group(2).lower(), m.group(3))
        if between and not (between.isspace() and payload is not None and pieces and pieces[-1][0]):
            pieces.append(("", between))
        if payload is None:
            warnings.append(
                f"header {name}: encoded-word {m.group(0)[:60]!r} is not valid base64; kept as written"
            )
            pieces.append(("", m.group(0)))
        else:
            pieces.append((m.group(1).split("*", 1)[0].lower(), payload))
        pos = m.end()
    pieces.append(("", raw[pos:]))
    # a word may encode a NUL (=00): PostgreSQL refuses it in text, and no header means one
    return clean_header_text("".join(_runs(pieces, warnings, name)))


def _payload(encoding: str, text: str) -> bytes | None:
    if encoding == "q":
        return binascii.a2b_qp(text.encode("ascii", "surrogateescape"), header=True)
    data = text.encode("ascii", "surrogateescape")
    try:  # a missing "=" padding is the commonest damage: added back
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _runs(pieces: list[tuple[str, bytes | str]], warnings: list[str], name: str) -> list[str]:
    """Each piece as text: plain text cleaned, a run of same-charset words decoded."""
    out: list[str] = []
    i = 0
    while i < len(pieces):
        charset, value = pieces[i]
        if not charset:
            out.append(clean_header_text(str(value)))
            i += 1
            continue
        j = i
        while j < len(pieces) and pieces[j][0] == charset:
            j += 1
        out.append(_decode_run(charset, [bytes(p) for _, p in pieces[i:j]], warnings, name))
        i = j
    return out


def _decode_run(charset: str, words: list[bytes], warnings: list[str], name: str) -> str:
    text, _, warning = decode_bytes(b"".join(words), charset)
    if warning is None or len(words) == 1:
        if warning:
            warnings.append(f"header {name}: {warning}")
        return text
    decoded = []
    for word in words:  # the run does not decode as labelled: each word by itself
        text, _, warning = decode_bytes(word, charset)
        if warning:
            warnings.append(f"header {name}: {warning}")
        decoded.append(text)
    return "".join(decoded)
