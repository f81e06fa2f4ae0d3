"""HTML bodies become text on every path (API, portal, comments), as mail's do."""

from __future__ import annotations

import pytest

from service_fixtures import auth
from triage.htmltext import as_text, looks_like_html

HTML = (
    "<html><head><style>p{color:red}</style></head><body><p>Hello,</p>"
    "<p>My <b>printer</b> shows &quot;offline&quot;.<br>Thanks</p>"
    "<script>alert(1)</script></body></html>"
)


@pytest.mark.parametrize(
    "text, markup",
    [
        (HTML, True),
        ("<p>first</p><p>second</p>", True),
        ("The page shows <br> literally after the upgrade", False),
        ("if a < b and c > d then nothing", False),
        ("plain text", False),
    ],
)
def test_markup_is_told_from_prose(text, markup):
    assert looks_like_html(text) is markup


def test_conversion_is_the_mail_one():
    text = as_text(HTML)
    assert "printer" in text and '"offline"' in text
    assert "<" not in text and "alert" not in text and "color" not in text


def test_api_intake_and_comments_store_text(client):
    r = client.post(
        "/v1/tickets",
        json={"subject": "Printer", "body": HTML, "requester": "ann@acme.example"},
        headers=auth(),
    )
    assert r.status_code == 201
    body = r.get_json()["ticket"]["body"]
    assert "printer" in body and "<p>" not in body and "alert" not in body
    tid = r.get_json()["ticket"]["id"]
    c = client.post(
        f"/v1/tickets/{tid}/comments",
        json={"body": "<div>Still <i>offline</i></div><div>today</div>"},
        headers=auth("agent"),
    )
    assert c.status_code == 201 and c.get_json()["comment"]["body"] == "Still offline\ntoday"


def test_classify_sees_the_same_text_as_intake(client):
    html = client.post("/v1/classify", json={"subject": "Printer", "body": HTML}, headers=auth()).get_json()[
        "result"
    ]
    text = client.post(
        "/v1/classify", json={"subject": "Printer", "body": as_text(HTML)}, headers=auth()
    ).get_json()["result"]
    assert html["fields"] == text["fields"] and html["rules"] == text["rules"]
