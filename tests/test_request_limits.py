"""Every endpoint that takes a body, fed what attackers and broken clients send.

The rules are read from the real app's URL map, so an endpoint added later is held to the
same: a body past ``TRIAGE_MAX_BODY_BYTES`` is a 413 whose message names the limit (and the
setting), JSON nested thousands deep is a 4xx (Python's parser raises RecursionError), and
neither ever reaches the 500 handler. Endpoints that answer before reading a body (404 for
an object that does not exist, 415 for a form-only endpoint) may say so instead.
"""

from __future__ import annotations

import re

import pytest

from service.app import create_app

LIMIT = 10_000
FILES = 1_000  # a page form carrying files may be this plus 1 MiB
BODY_FREE = {404, 415}  # answered before the body is read


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "admin-k:admin",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp / 'l.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_MAIL_DIR": str(tmp / "out"),
            "TRIAGE_MAX_BODY_BYTES": LIMIT,
            "TRIAGE_ATTACHMENT_TICKET_MAX_BYTES": FILES,
        }
    )


def _writes(app) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            out.append((method, re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)))
    return out


def _send(app, method: str, path: str, data: bytes):
    return app.test_client().open(
        path,
        method=method,
        data=data,
        headers={"Authorization": "Bearer admin-k", "Content-Type": "application/json"},
    )


def test_an_oversized_body_gets_a_413_naming_the_limit_everywhere(app):
    body = b'{"subject": "' + b"x" * (FILES + 1_100_000) + b'"}'
    writes = _writes(app)
    assert len(writes) > 25  # the map was read
    for method, path in writes:
        got = _send(app, method, path, body)
        if got.status_code in BODY_FREE:
            continue
        # before: werkzeug's "The data value transmitted exceeds the capacity limit."
        assert got.status_code == 413, (method, path, got.status_code)
        said = [
            f"request body too large: at most {LIMIT} bytes (TRIAGE_MAX_BODY_BYTES), got {len(body)} bytes",
            f"request body too large: at most {FILES + 1_048_576} bytes "
            f"(TRIAGE_ATTACHMENT_TICKET_MAX_BYTES plus 1 MiB for the form), got {len(body)} bytes",
        ]
        text = got.json["error"] if got.is_json else got.text  # a page's error page for people
        assert any(s in text for s in said), (method, path, text[:300])


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 9_000,
        b'{"a":' * 1_200 + b"1" + b"}" * 1_200,
        b'{"subject": ' + b"[" * 4_000 + b"]" * 4_000 + b"}",
    ],
    ids=["arrays", "objects", "closed"],
)
def test_json_nested_past_the_parser_is_a_4xx_everywhere(app, body):
    assert len(body) <= LIMIT
    for method, path in _writes(app):
        got = _send(app, method, path, body)
        assert 400 <= got.status_code < 500, (method, path, got.status_code, got.text[:200])
