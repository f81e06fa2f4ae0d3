"""Attachments over the API and the pages: round trip, limits, type checks, who may read them."""

from __future__ import annotations

import io

import pytest

from mail_corpus import PNG
from service.app import create_app

KEYS = "intake-k:intake,agent-k:agent"


@pytest.fixture
def app(tmp_path):
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": KEYS,
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'files.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_ATTACHMENTS_DIR": str(tmp_path / "files"),
            "TRIAGE_ATTACHMENT_MAX_BYTES": 2048,
            "TRIAGE_ATTACHMENT_TICKET_MAX_BYTES": 4096,
        }
    )


def headers(role="agent", requester=None):
    out = {"Authorization": f"Bearer {role}-k"}
    if requester:
        out["X-Requester"] = requester
    return out


def ticket(client, requester="ann@example.com") -> int:
    made = client.post(
        "/v1/tickets", headers=headers("intake"), json={"subject": "s", "body": "b", "requester": requester}
    )
    return made.json["ticket"]["id"]


def upload(client, ticket_id, name, data, ctype, **kw):
    return client.post(
        f"/v1/tickets/{ticket_id}/attachments",
        headers=kw.pop("h", headers()),
        data={"file": (io.BytesIO(data), name, ctype), **kw},
        content_type="multipart/form-data",
    )


def test_upload_round_trip(app):
    client = app.test_client()
    tid = ticket(client)
    made = upload(client, tid, "shot.png", PNG, "image/png")
    assert made.status_code == 201
    [item] = made.json["attachments"]
    assert (item["filename"], item["content_type"], item["size"], item["previewable"]) == (
        "shot.png",
        "image/png",
        len(PNG),
        True,
    )
    got = client.get(f"/v1/attachments/{item['id']}", headers=headers())
    assert got.status_code == 200 and got.data == PNG
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got.headers["Content-Security-Policy"]
    listed = client.get(f"/v1/tickets/{tid}/attachments", headers=headers("intake", "ann@example.com"))
    assert [a["id"] for a in listed.json["attachments"]] == [item["id"]]


def test_an_oversize_file_is_refused(app):
    client = app.test_client()
    tid = ticket(client)
    refused = upload(client, tid, "big.txt", b"x" * 3000, "text/plain")
    assert refused.status_code == 413 and refused.json["ok"] is False
    assert "per file" in refused.json["error"]
    for _ in range(2):
        assert upload(client, tid, "part.txt", b"y" * 2000, "text/plain").status_code == 201
    assert upload(client, tid, "more.txt", b"z" * 200, "text/plain").status_code == 413  # per ticket


def test_a_type_mismatch_is_refused(app):
    client = app.test_client()
    tid = ticket(client)
    fake = upload(client, tid, "cat.png", b"<html><script>alert(1)</script></html>", "image/png")
    assert fake.status_code == 415 and "declared image/png" in fake.json["error"]
    renamed = upload(client, tid, "report.pdf", PNG, "application/pdf")
    assert renamed.status_code == 415
    lying_name = upload(client, tid, "photo.jpg", b"plain text", "text/plain")
    assert lying_name.status_code == 415


def test_other_requesters_cannot_read_a_file(app):
    client = app.test_client()
    tid = ticket(client)
    item = upload(client, tid, "a.txt", b"hello", "text/plain").json["attachments"][0]
    other = client.get(f"/v1/tickets/{tid}/attachments", headers=headers("intake", "eve@example.com"))
    assert other.status_code == 404
    staff_only = upload(client, tid, "note.txt", b"internal", "text/plain", public="0")
    hidden = staff_only.json["attachments"][0]["id"]
    mine = client.get(f"/v1/tickets/{tid}/attachments", headers=headers("intake", "ann@example.com"))
    assert [a["id"] for a in mine.json["attachments"]] == [item["id"]]
    assert (
        client.get(f"/v1/attachments/{hidden}", headers=headers("intake", "ann@example.com")).status_code
        == 404
    )


def test_upload_needs_multipart(app):
    client = app.test_client()
    tid = ticket(client)
    wrong = client.post(f"/v1/tickets/{tid}/attachments", headers=headers(), json={"file": "x"})
    assert wrong.status_code == 415 and wrong.json["ok"] is False


def test_files_are_listed_on_the_agent_and_portal_ticket_pages(app):
    from signin_support import TOKEN, customer_client

    client = app.test_client()
    tid = ticket(client)
    item = upload(client, tid, "shot.png", PNG, "image/png").json["attachments"][0]
    staff = app.test_client()
    token = TOKEN.search(staff.get("/signin").text).group(1)
    staff.post("/signin", data={"csrf_token": token, "kind": "staff", "key": "agent-k"})
    page = staff.get(f"/agent/tickets/{tid}").text
    assert "shot.png" in page and f"/files/{item['id']}?preview=1" in page
    customer, _ = customer_client(app, "ann@example.com")
    assert "shot.png" in customer.get(f"/portal/tickets/{tid}").text
    got = customer.get(f"/files/{item['id']}")
    assert got.status_code == 200 and got.data == PNG
    stranger, _ = customer_client(app, "eve@example.com")
    assert stranger.get(f"/files/{item['id']}").status_code == 404


def test_uploads_may_be_larger_than_the_json_body_limit(tmp_path):
    app = create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": KEYS,
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'big.db'}",
            "TRIAGE_SECRET_KEY": "t",
            "TRIAGE_ATTACHMENTS_DIR": str(tmp_path / "f"),
            "TRIAGE_MAX_BODY_BYTES": 100_000,
        }
    )
    client = app.test_client()
    tid = ticket(client)
    data = b"%PDF-1.4\n" + b"0" * 300_000  # 3x the JSON limit (under the test client's spooling)
    made = upload(client, tid, "manual.pdf", data, "application/pdf")
    assert made.status_code == 201 and made.json["attachments"][0]["size"] == len(data)
    too_big = client.post(
        "/v1/tickets", headers=headers("intake"), json={"subject": "s", "body": "x" * 200_000}
    )
    assert too_big.status_code == 413  # the JSON API keeps its own limit


def test_the_file_endpoints_are_in_the_openapi_document(app):
    paths = app.test_client().get("/openapi.json").json["paths"]
    assert {
        "/v1/tickets/{ticket_id}/attachments",
        "/v1/attachments/{attachment_id}",
        "/v1/reports/satisfaction",
    } <= set(paths)
    assert (
        "multipart/form-data"
        in paths["/v1/tickets/{ticket_id}/attachments"]["post"]["requestBody"]["content"]
    )


def test_a_raw_mail_posted_to_the_api_keeps_its_files_and_its_refusals(app):
    from mail_corpus import build

    client = app.test_client()
    item = next(i for i in build() if i.name == "attachment-png")
    made = client.post(
        "/v1/tickets", headers={**headers("intake"), "Content-Type": "message/rfc822"}, data=item.raw
    )
    assert made.status_code == 201 and made.json["outcome"] == "created"
    tid = made.json["ticket"]["id"]
    [png] = client.get(f"/v1/tickets/{tid}/attachments", headers=headers()).json["attachments"]
    assert png["filename"] == "shot.png"
    again = client.post(
        "/v1/tickets", headers={**headers("intake"), "Content-Type": "message/rfc822"}, data=item.raw
    )
    assert again.status_code == 200 and again.json["outcome"] == "duplicate"
    auto = b"From: a@example.com\nSubject: Out of office: gone\nMessage-ID: <o@x>\n\nAway\n"
    refused = client.post(
        "/v1/tickets", headers={**headers("intake"), "Content-Type": "message/rfc822"}, data=auto
    )
    assert refused.json["outcome"] == "refused" and refused.json["refusal_id"]
    from service.store import get_store
    from triage.store import mail_log

    with app.app_context(), get_store().session() as s:
        row = s.get(mail_log.MailRefusal, refused.json["refusal_id"])
        assert bytes(row.raw) == auto


@pytest.mark.parametrize(
    "name, kept",
    [
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # shows as "invoiceexe.pdf" with the override
        ("\u2067report\u2069\u200f.pdf.exe", "report.pdf.exe"),
        ("../../windows/evil\x85.exe", "evil.exe"),  # a directory, and a C1 control
        ("تقرير.txt", "تقرير.txt"),  # a right-to-left script needs no control character
    ],
)
def test_an_uploaded_name_loses_its_bidirectional_controls(app, name, kept):
    """harden5: the right-to-left override dresses an executable as a document for the agent
    who reads the list; a file name never needs it. Mail and winmail.dat names share the rule."""
    client = app.test_client()
    made = upload(client, ticket(client), name, b"plain text", "text/plain")
    assert made.status_code == 201, made.json
    assert made.json["attachments"][0]["filename"] == kept
