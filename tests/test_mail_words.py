"""Encoded-words (RFC 2047) as mailers and spammers send them: one bad word must not
garble or hide the good ones beside it (triage/mail/words.py)."""

from __future__ import annotations

import pytest

from triage.mail.parsing import parse_message


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
