"""What fuzzing with other seeds found in the served API, each pinned by a test.

The schemathesis suite runs one fixed seed in CI; these cases came from random seeds
(``TRIAGE_SCHEMATHESIS_SEED=random``) and are kept here as plain requests.
"""

from __future__ import annotations

import re

import jsonschema
import pytest

from service_fixtures import auth

# Regex shorthands whose meaning differs between the schema's dialect (ECMA-262, what
# schemathesis and other clients read) and Python's re (what the handlers use): \s has other
# members (U+001C-U+001F, U+0085 are space only to Python; U+FEFF only to ECMA), and \w, \d,
# \b are ASCII-only in ECMA but Unicode in Python.
DIALECT_SHORTHAND = re.compile(r"(?<!\\)\\[sSwWdDbB]")


def _patterns(node, where="$"):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield where, value
            else:
                yield from _patterns(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _patterns(value, f"{where}[{i}]")


def test_schema_patterns_mean_the_same_in_ecma_and_python(client):
    spec = client.get("/openapi.json").get_json()
    found = [(where, p) for where, p in _patterns(spec) if DIALECT_SHORTHAND.search(p)]
    assert not found, f"patterns with a dialect-dependent shorthand: {found[:5]}"


@pytest.mark.parametrize("blank", ["\x1d", "\x1e", " \x1c\x1f ", "\x85", "\u3000"])
def test_text_that_python_finds_blank_is_blank_to_the_schema_too(client, blank):
    """Seed 103026645: a watcher "\\x1e" and a subject "\\x1d" passed the schema and were refused."""
    spec = client.get("/openapi.json").get_json()
    schema = {**spec["components"]["schemas"]["Ticket"], "components": spec["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid({"subject": blank}), "the schema accepts a subject the API refuses"
    r = client.post("/v1/tickets", json={"subject": blank}, headers=auth())
    assert r.status_code == 422, r.get_json()
    assert "subject" in r.get_json()["error"]
    r = client.post("/v1/tickets", json={"subject": "printer", "watchers": [blank]}, headers=auth())
    assert r.status_code == 422, r.get_json()
    assert "watchers[0]" in r.get_json()["error"]


def _request_schema(client, path: str) -> jsonschema.Draft202012Validator:
    spec = client.get("/openapi.json").get_json()
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})


LINE_BREAKERS = [
    "ann@acme.example\r\nBcc: eve@evil.example",  # a header injection, were it ever written into a mail
    "ann@acme.example\n",  # Python's "$" matched before a final newline; the schema's does not
    "ann@acme.example\x85",
    "ann@acme.example\u2028Bcc: eve@evil.example",
    "ann\x07@acme.example",
]


@pytest.mark.parametrize("who", LINE_BREAKERS)
def test_a_requester_or_watcher_with_a_line_break_is_refused_by_the_api_and_the_schema(client, who):
    """harden5 probe: a requester "ann@x\\r\\nBcc: eve@y" (and watchers alike) was stored as
    given (201); the outbox then sent that ticket nothing, silently. Now 422 naming the field
    and the form expected; the published schema refuses the same values."""
    schema = _request_schema(client, "/v1/tickets")
    for body, field in (
        ({"subject": "VPN down", "requester": who}, "requester"),
        ({"subject": "VPN down", "watchers": [who]}, "watchers[0]"),
    ):
        assert not schema.is_valid(body), f"the schema accepts a {field} the API refuses"
        r = client.post("/v1/tickets", json=body, headers=auth())
        assert r.status_code == 422, r.get_json()
        error = r.get_json()["error"]
        assert f"{field}: not in the expected form" in error and "one line" in error, error


def test_a_plain_requester_and_watcher_still_open_a_ticket(client):
    schema = _request_schema(client, "/v1/tickets")
    body = {"subject": "VPN down", "requester": "Ann Lee <ann@acme.example>", "watchers": ["emp-4711"]}
    assert schema.is_valid(body)
    r = client.post("/v1/tickets", json=body, headers=auth())
    assert r.status_code == 201, r.get_json()


def test_a_webhook_url_with_a_final_newline_is_refused_as_the_schema_says(client):
    """Python's "$" also matches before a final "\\n": "https://hooks.example/x\\n" passed the
    URL pattern in the handler while the schema (ECMA-262) refused it."""
    schema = _request_schema(client, "/v1/admin/webhooks")
    body = {"url": "https://hooks.example/x\n", "events": ["ticket.created"]}
    assert not schema.is_valid(body)
    r = client.post("/v1/admin/webhooks", json=body, headers=auth("admin"))
    assert r.status_code == 422, r.get_json()
    assert "url: not in the expected form" in r.get_json()["error"]


@pytest.mark.parametrize("tail", ["\n", "\n\n", "\r\n\r\n"])
def test_a_short_last_row_before_blank_lines_is_counted_not_a_crash(tmp_path, tail):
    """Hypothesis seed 40217713 (test_fuzz_inputs' CSV property): a short row followed by a
    blank line raised IndexError in training/short_rows.py (the last *line*'s fields, empty,
    were read as the last record's)."""
    from training.csv_dialect import csv_dialect
    from training.short_rows import short_rows

    path = tmp_path / "export.csv"
    path.write_text("subject,team\nPrinter jammed,Hardware\nVPN down" + tail, encoding="utf-8")
    found = short_rows(path, csv_dialect(path))
    assert (found.records, found.rows) == (2, (2,))


# HTML that never finishes a construct: CPython 3.11's html.parser rescans from each
# unfinished "<" to the end of the input, so its cost grew with the square of the length
# ("<a " x 20,000, 60 kB: 19 s of CPU; found by harden5's probes of the HTML-body path)
UNFINISHED = ["<a ", "<a x='", '<a x="y ', "<a/", "x<", "</a ", "<!--", "<!-- x>", "<![CDATA[ ", "<? "]


@pytest.mark.parametrize("unit", UNFINISHED)
def test_unfinished_html_is_read_without_rescanning_to_the_end(unit, monkeypatch):
    """Counted, not timed: each time the parser meets a construct it cannot finish it scans to
    the end of the input. Before: one such scan per repetition; now none. The text is what
    the parser itself makes of the same markup."""
    from html.parser import HTMLParser

    from triage import htmltext

    unfinished = []
    for name in ("parse_starttag", "parse_endtag", "parse_comment", "parse_html_declaration", "parse_pi"):
        original = getattr(HTMLParser, name)

        def counted(self, i, _original=original, **kw):
            k = _original(self, i, **kw)
            if k < 0:
                unfinished.append(i)
            return k

        monkeypatch.setattr(HTMLParser, name, counted)
    html = "<p>Printer jammed</p>" + unit * 300
    text = htmltext.html_to_text(html)
    assert len(unfinished) <= 1, f"{len(unfinished)} scans to the end of the input"
    monkeypatch.setattr(htmltext, "defuse", lambda h: h)
    assert text == htmltext.html_to_text(html)  # the same text as the parser's own reading


def test_a_ticket_body_of_unfinished_html_is_stored(client):
    body = "<p>Printer</p><p>jammed</p>" + "<a " * 16_000  # under the 50,000-character limit
    r = client.post("/v1/tickets", json={"subject": "Printer", "body": body}, headers=auth())
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["ticket"]["body"].startswith("Printer\n\njammed")
