"""Property-based fuzzing of the two doors raw outside data comes in by: mail and exports.

Mail: any message, however broken (lying charsets, bad base64, NUL and control characters
in headers, unclosed multiparts), is accounted for once by intake on both stores — a
ticket, a thread, a duplicate or a refusal with a reason — and never by the fallback that
records a crash ("handling failed"), which would mean the parser or the store broke.

Exports: any bytes under a ``.csv`` name, and any JSON Lines, either load through the
mapping or stop with an :class:`InputError` (the CLI prints it as one line naming the file):
no other exception reaches the person training.

``--hypothesis-seed`` and ``HYPOTHESIS_PROFILE``-free settings: the example counts below are
for CI; run with ``--hypothesis-seed=N`` (and a larger ``TRIAGE_FUZZ_EXAMPLES``) to explore.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.errors import InputError
from triage.store import inbox
from triage.store.inbox import OUTCOMES

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
EXAMPLES = int(os.environ.get("TRIAGE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis", "gb2312", "x-unknown", "utf-7", ""]
# text with what breaks stores and parsers: NUL, other controls, lone surrogates, RTL marks
NASTY = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\r", "\n", "\x1b", "\u202e", "\ufeff", "\u2028", "=", "?"]),
    ),
    max_size=80,
)


def _encode(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset or "ascii", errors="replace")
    except LookupError:
        return text.encode("utf-8", errors="surrogatepass")


@st.composite
def header_value(draw) -> bytes:
    text = draw(NASTY)
    charset = draw(st.sampled_from(CHARSETS))
    kind = draw(st.sampled_from(["raw", "b", "q", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60)).replace(b"\r", b"").replace(b"\n", b"")
    if kind == "raw":
        return _encode(text, "utf-8").replace(b"\r", b"").replace(b"\n", b" ")
    payload = _encode(text, charset)
    if kind == "b":
        word = base64.b64encode(payload)[: draw(st.integers(0, 200))]  # maybe cut short
    else:
        word = b"".join(b"=%02X" % c if c > 126 or c in b"?= _\r\n\t" else bytes([c]) for c in payload)
    return b"=?" + charset.encode() + b"?" + kind.upper().encode() + b"?" + word + b"?="


@st.composite
def body_part(draw) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "image/png"]))
    cte = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode"]))
    raw = draw(st.one_of(NASTY.map(lambda t: _encode(t, charset)), st.binary(max_size=200)))
    if cte == "base64" and draw(st.booleans()):
        raw = base64.b64encode(raw)
    disposition = draw(st.sampled_from([b"", b'Content-Disposition: attachment; filename="a\x00.txt"\r\n']))
    head = b"Content-Type: " + ctype.encode() + (b"; charset=" + charset.encode() if charset else b"")
    return head + b"\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n" + disposition + b"\r\n" + raw


@st.composite
def message(draw) -> bytes:
    headers = [
        b"From: "
        + draw(header_value())
        + b" <"
        + draw(st.sampled_from([b"a@example.org", b"", b"<>", b"x"]))
        + b">",
        b"Subject: " + draw(header_value()),
        b"Message-ID: <" + draw(st.binary(max_size=20)).replace(b"\r", b"").replace(b"\n", b"") + b"@fuzz>",
    ]
    if draw(st.booleans()):
        headers.append(b"In-Reply-To: " + draw(header_value()))
    parts = draw(st.lists(body_part(), min_size=1, max_size=3))
    if len(parts) == 1 and draw(st.booleans()):
        return b"\r\n".join(headers) + b"\r\n" + parts[0]
    boundary = draw(st.sampled_from([b"b1", b"", b"=_x", b"b1 b2"]))
    closed = draw(st.booleans())
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + (
        b"--" + boundary + b"--\r\n" if closed else b""
    )
    headers.append(b'Content-Type: multipart/mixed; boundary="' + boundary + b'"')
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


@FUZZ
@given(raw=message())
def test_any_message_is_accounted_for_by_intake_without_a_crash(store, raw):
    received = inbox.receive_raw(store, raw, now=NOW)
    assert received.outcome in OUTCOMES
    assert not (received.reason or "").startswith("handling failed"), received.reason
    if received.outcome in ("created", "threaded", "duplicate"):
        assert received.ticket is not None


# ---------------------------------------------------------------------------- exports
MAPPING = "text: {subject: s, body: b}\nlabels: {team: t}\n"
CELL = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@st.composite
def csv_bytes(draw) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))  # anything at all
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = draw(st.permutations(["s", "b", "t", "id"])) + draw(st.lists(CELL, max_size=2))
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=6), max_size=8))

    def line(cells):
        quote = draw(st.booleans())
        return delimiter.join('"' + c.replace('"', '""') + '"' if quote else c for c in cells)

    text = "\n".join([line(header)] + [line(r) for r in rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


def _loads_or_names_the_file(data, mapping_path) -> None:
    """Both export readers (whole-file and streamed) load ``data`` or raise an InputError naming it."""
    from training.mapping import load_export, load_mapping
    from training.stream import census

    mapping = load_mapping(mapping_path)
    for read in (lambda: load_export(data, mapping), lambda: census(data, mapping, "team")):
        try:
            read()
        except InputError as exc:
            assert str(data) in str(exc)


@FUZZ
@given(content=csv_bytes())
def test_any_csv_export_loads_or_stops_with_an_input_error(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("csv")
    data, mapping_path = folder / "export.csv", folder / "mapping.yaml"
    data.write_bytes(content)
    mapping_path.write_text(MAPPING, encoding="utf-8")
    _loads_or_names_the_file(data, mapping_path)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(["s", "b", "t", "x"]), st.one_of(CELL, st.integers(), st.none())),
            st.just("not json"),
            st.just("[1, 2]"),
            st.just('{"s": {"nested": 1}, "b": [1], "t": true}'),
        ),
        max_size=6,
    )
)
def test_any_jsonl_export_loads_or_stops_with_an_input_error(tmp_path_factory, lines):
    import json

    folder = tmp_path_factory.mktemp("jsonl")
    data, mapping_path = folder / "export.jsonl", folder / "mapping.yaml"
    data.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines), encoding="utf-8")
    mapping_path.write_text(MAPPING, encoding="utf-8")
    _loads_or_names_the_file(data, mapping_path)


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
