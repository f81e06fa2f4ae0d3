"""Encoded-words (RFC 2047) as mailers and spammers send them: one bad word must not
garble or hide the good ones beside it (triage/mail/words.py)."""

from __future__ import annotations

import base64
import os
import quopri

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.mail.parsing import parse_message
from triage.mail.words import decode_words

EXAMPLES = int(os.environ.get("TRIAGE_FUZZ_EXAMPLES", "60"))


def _mail(subject: str, sender: str = "j@example.org") -> bytes:
    return f"Subject: {subject}\r\nFrom: {sender}\r\nMessage-ID: <w@x>\r\n\r\nbody\r\n".encode("ascii")


@pytest.mark.parametrize(
    "subject, expected, warned",
    [
        # a broken base64 word between good ones, beside a Latin-1 word labelled UTF-8:
        # the stdlib's decode_header raised and the whole subject stayed encoded
        (
            "=?utf-8?q?caf=E9?= =?utf-8?b?bad*base64?= =?utf-8?q?_ok?=",
            "café =?utf-8?b?bad*base64?= ok",
            "not valid base64",
        ),
        # a run of same-charset words holding one Latin-1 word: decoded as one byte
        # string, the good UTF-8 word became mojibake ("cafÃ©")
        ("=?utf-8?b?Y2Fmw6k=?= =?utf-8?q?caf=E9?=", "cafécafé", "used cp1252"),
        # an undecodable word: the stdlib dropped it without a trace
        ("=?utf-8?b?Y2Fmw6k=?= =?utf-8?b?!!!?= end", "café =?utf-8?b?!!!?= end", "not valid base64"),
        # missing padding is repaired; one character split over two words is joined
        ("=?utf-8?b?Y2Fmw6k?= =?utf-8?b?4pw=?= =?utf-8?b?kw==?= done", "café✓ done", None),
        # RFC 2047's own examples
        ("Re: =?ISO-8859-1?Q?Andr=E9?= Pirard", "Re: André Pirard", None),
        ("=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a b", None),
        ("=?utf-8*en?q?hello?=", "hello", None),
        # a NUL inside a word (found by the fuzzer on PostgreSQL: "text fields cannot contain NUL")
        ("=?utf-8?q?a=00b?= =?utf-8?b?AA==?=", "ab", None),
    ],
)
def test_each_encoded_word_is_decoded_by_itself(subject, expected, warned):
    intake = parse_message(_mail(subject))
    assert intake["subject"] == expected
    if warned:
        assert any(warned in w for w in intake["warnings"]), intake["warnings"]
    else:
        assert intake["warnings"] == []


def test_a_sender_name_with_a_bad_word_keeps_its_good_words_and_its_address():
    intake = parse_message(_mail("hi", "=?utf-8?q?Jos=E9?= =?utf-8?b?###?= <J@Example.org>"))
    assert intake["from"] == {"name": "José =?utf-8?b?###?=", "address": "j@example.org"}
    assert any("From" in w and "not valid base64" in w for w in intake["warnings"]), intake["warnings"]


def test_a_plain_sender_name_is_read_by_the_stdlib_as_before():
    intake = parse_message(
        _mail("hi", '"Doe, Jane" <jane@example.org>, =?utf-8?q?Jos=C3=A9?= <j@example.org>')
    )
    assert intake["from"] == {"name": "Doe, Jane", "address": "jane@example.org"}
    assert intake["warnings"] == []


def _word(text: str, charset: str, b: bool) -> str:
    data = text.encode(charset)
    if b:
        return f"=?{charset}?b?{base64.b64encode(data).decode()}?="
    encoded = quopri.encodestring(data, header=True).decode().replace("=\n", "").replace("?", "=3F")
    return f"=?{charset}?q?{encoded}?="


def _reads_as_utf8(data: bytes) -> bool:
    """Latin-1 bytes that are also UTF-8 beyond ASCII ("Â¡" is C2 A1, "¡" in UTF-8): a label
    of a Western single-byte charset is read as UTF-8 then (triage.charsets.decode_bytes)."""
    try:
        return not data.isascii() and bool(data.decode("utf-8"))
    except UnicodeDecodeError:
        return False


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.text(
                st.characters(codec="latin-1", exclude_categories=("Cc", "Cs", "Zs")), min_size=1, max_size=12
            ),
            st.sampled_from(["utf-8", "iso-8859-1"]),
            st.booleans(),
            st.sampled_from(["good", "good", "good", "broken", "lying"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_run_of_encoded_words_keeps_every_good_word(words):
    """Good words decode to their text whatever broken (bad base64) or lying (Latin-1 bytes
    labelled UTF-8) words stand beside them; nothing raises."""
    raw, expected = [], []
    for text, charset, b, kind in words:
        if kind == "broken":
            raw.append("=?utf-8?b?#" + "A" * len(text) + "?=")
        elif kind == "lying":
            raw.append(_word(text, "iso-8859-1", b).replace("iso-8859-1", "utf-8", 1))
        else:
            raw.append(_word(text, charset, b))
            if not _reads_as_utf8(text.encode(charset)):  # else decode_bytes' rule: UTF-8 first
                expected.append(text)
    warnings: list[str] = []
    out = decode_words(" ".join(raw), warnings, "Subject")
    for text in expected:
        assert text in out, (raw, out)
    assert ("broken" in [w[3] for w in words]) <= any("not valid base64" in w for w in warnings)


@pytest.mark.parametrize(
    "subject, sender",
    [("=?utf-8?q?=00?=", "a@example.org"), ("=?utf-8?q?VPN=00_down?=", "=?utf-8?b?AA==?= <b@example.org>")],
)
def test_a_nul_in_an_encoded_word_opens_a_ticket_on_both_stores(store, subject, sender):
    """Found by scripts/fuzz.sh on PostgreSQL: the subject's NUL made the ticket InputError
    "must not contain NUL", and then the refusal's own INSERT failed ("PostgreSQL text
    fields cannot contain NUL"): the message was neither a ticket nor a refusal."""
    from triage.store import inbox

    raw = f"From: {sender}\r\nSubject: {subject}\r\nMessage-ID: <nul-{len(subject)}@x>\r\n\r\nhello\r\n"
    got = inbox.receive_raw(store, raw.encode("ascii"))
    assert got.outcome == "created", got.reason
