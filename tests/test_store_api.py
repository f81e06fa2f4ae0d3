"""The ticketing API through Flask's test client, on both databases."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from test_store_feedback import FakeTriager, pred
from service.app import create_app
from triage.rules import RuleSet
from triage.store import routing

KEYS = "ik:intake,bk:agent,ck:agent,ak:admin"
SURE = FakeTriager(
    {
        "category": pred("Network", 0.99, "apply"),
        "priority": pred("3", 0.95, "apply"),
        "team": pred("Net", 0.93, "apply"),
    }
)


def H(key, **extra):
    return {"Authorization": f"Bearer {key}", **extra}


@pytest.fixture
def client(store):
    app = create_app({"TESTING": True, "TRIAGE_LOAD": "off", "TRIAGE_API_KEYS": KEYS, "TRIAGE_SIGHUP": False})
    app.extensions["triage.store"] = store
    app.extensions["triage.state"].current = SimpleNamespace(triager=SURE, rules=RuleSet.load())
    with store.session() as s:
        routing.upsert_agent(s, "env1", teams=["Net"], capacity=5)  # bk's key name is env1
        routing.upsert_agent(s, "env2", teams=["HR"], capacity=5)  # ck
    return app.test_client()


def open_ticket(client, requester="ann@x", key="ik", **extra):
    body = {
        "subject": "VPN <b>down</b>",
        "body": "since 9 & counting",
        "affected_service": "vpn",
        "channel": "chat",
        **extra,
    }
    return client.post("/v1/tickets", json=body, headers=H(key, **{"X-Requester": requester}))


def test_intake_classifies_routes_and_stores_text_as_given(client):
    r = open_ticket(client)
    assert r.status_code == 201, r.json
    t = r.json["ticket"]
    assert (t["subject"], t["requester"], t["channel"]) == ("VPN <b>down</b>", "ann@x", "chat")
    assert (t["category"], t["team"], t["status"], t["assignee"]) == ("Network", "Net", "assigned", "env1")
    assert r.json["team_source"] == "model" and r.headers["Content-Type"] == "application/json"


def test_idempotency_key_header_replays_the_first_ticket(client):
    h = H("ik", **{"Idempotency-Key": "abc-1"})
    first = client.post("/v1/tickets", json={"subject": "a"}, headers=h)
    again = client.post("/v1/tickets", json={"subject": "a"}, headers=h)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json["ticket"]["id"] == again.json["ticket"]["id"]
    assert len(client.get("/v1/tickets", headers=H("ak")).json["tickets"]) == 1
    other = client.post(
        "/v1/tickets",
        json={"subject": "a"},
        headers=H("ik", **{"Idempotency-Key": "abc-1", "X-Requester": "eve@x"}),
    )
    assert other.status_code == 201 and other.json["ticket"]["id"] != first.json["ticket"]["id"]


def test_bad_intake_gets_one_error_shape(client):
    r = client.post("/v1/tickets", json={"prioirty": 1, "subject": 5}, headers=H("ik"))
    assert r.status_code == 422 and r.json["ok"] is False
    assert {e["field"] for e in r.json["errors"]} >= {"prioirty", "subject"}
    assert client.post("/v1/tickets", json={"subject": "x"}).status_code == 401


def test_requesters_see_only_their_tickets(client):
    mine = open_ticket(client, "ann@x").json["ticket"]["id"]
    theirs = open_ticket(client, "eve@x").json["ticket"]["id"]
    ann = H("ik", **{"X-Requester": "ann@x"})
    assert client.get(f"/v1/tickets/{mine}", headers=ann).status_code == 200
    hidden = client.get(f"/v1/tickets/{theirs}", headers=ann)
    missing = client.get("/v1/tickets/99999", headers=ann)
    assert hidden.status_code == missing.status_code == 404
    assert [t["id"] for t in client.get("/v1/tickets", headers=ann).json["tickets"]] == [mine]
    assert client.get(f"/v1/tickets/{mine}", headers=H("ik")).status_code == 403  # who?
    assert client.get(f"/v1/tickets/{mine}/history", headers=ann).status_code == 403


def test_agents_see_their_team_queue(client):
    tid = open_ticket(client).json["ticket"]["id"]
    assert client.get(f"/v1/tickets/{tid}", headers=H("bk")).status_code == 200
    assert client.get(f"/v1/tickets/{tid}", headers=H("ck")).status_code == 404
    assert [t["id"] for t in client.get("/v1/tickets?queue=Net", headers=H("bk")).json["tickets"]] == [tid]
    assert client.get("/v1/tickets?queue=Net", headers=H("ck")).status_code == 404
    assert client.get("/v1/tickets?limit=0", headers=H("ak")).status_code == 422


def test_lifecycle_patch_comments_history_and_feedback(client):
    tid = open_ticket(client).json["ticket"]["id"]
    bob = H("bk")
    r = client.post(f"/v1/tickets/{tid}/transition", json={"to": "closed"}, headers=bob)
    assert r.status_code == 409 and "allowed" in r.json["error"]
    assert (
        client.post(f"/v1/tickets/{tid}/transition", json={"to": "in_progress"}, headers=bob).json["ticket"][
            "status"
        ]
        == "in_progress"
    )
    r = client.patch(f"/v1/tickets/{tid}", json={"category": "Access", "priority": 1}, headers=bob)
    assert r.status_code == 200 and r.json["changed"] == ["category", "priority"]
    assert client.patch(f"/v1/tickets/{tid}", json={"status": "x"}, headers=bob).status_code == 422
    c = client.post(f"/v1/tickets/{tid}/comments", json={"body": "on it"}, headers=bob)
    assert c.status_code == 201 and c.json["ticket"]["first_response_at"]
    client.post(f"/v1/tickets/{tid}/comments", json={"body": "note", "public": False}, headers=bob)
    ann = H("ik", **{"X-Requester": "ann@x"})
    assert [x["body"] for x in client.get(f"/v1/tickets/{tid}", headers=ann).json["comments"]] == ["on it"]
    events = client.get(f"/v1/tickets/{tid}/history", headers=bob).json["events"]
    assert ("category", "Network", "Access", "env1") in [
        (e["field"], e["old"], e["new"], e["actor"]) for e in events
    ]
    detail = client.get(f"/v1/tickets/{tid}", headers=bob).json
    assert detail["predictions"]["category"]["label"] == "Network"


def test_merge_unmerge_link_and_breach_report(client):
    a = open_ticket(client).json["ticket"]["id"]
    b = open_ticket(client).json["ticket"]["id"]
    bob = H("bk")
    r = client.post(f"/v1/tickets/{b}/merge", json={"into": a}, headers=bob)
    assert r.status_code == 200 and r.json["ticket"]["resolution"] == "duplicate"
    assert client.post(f"/v1/tickets/{b}/merge", json={"into": a}, headers=bob).status_code == 409
    assert client.post(f"/v1/tickets/{b}/unmerge", headers=bob).json["ticket"]["status"] == "assigned"
    assert client.post(f"/v1/tickets/{b}/link", json={"parent": a}, headers=bob).status_code == 200
    assert client.post(f"/v1/tickets/{b}/link", json={"parent": "x"}, headers=bob).status_code == 422
    report = client.get("/v1/reports/breaches", headers=bob)
    assert report.status_code == 200 and report.json["count"] == 0
    assert client.get("/v1/reports/breaches", headers=H("ik")).status_code == 403


def test_raw_email_upload_opens_and_threads(client):
    raw = (
        b"From: ann@x\r\nTo: desk@x\r\nSubject: printer\r\nMessage-ID: <m1@x>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nit jams"
    )
    r = client.post("/v1/tickets", data=raw, content_type="message/rfc822", headers=H("ik"))
    assert r.status_code == 201 and r.json["kind"] == "ticket"
    reply = raw.replace(b"<m1@x>", b"<m2@x>").replace(
        b"Subject: printer", b"In-Reply-To: <m1@x>\r\nSubject: Re: printer"
    )
    r2 = client.post("/v1/tickets", data=reply, content_type="message/rfc822", headers=H("ik"))
    assert r2.json["kind"] == "followup" and r2.json["ticket"]["id"] == r.json["ticket"]["id"]


def test_responses_match_the_documented_schemas(client):
    import jsonschema

    spec = client.get("/openapi.json").json
    tid = open_ticket(client).json["ticket"]["id"]
    cases = [
        ("/v1/tickets", "post", open_ticket(client)),
        ("/v1/tickets", "get", client.get("/v1/tickets", headers=H("ak"))),
        ("/v1/tickets/{ticket_id}", "get", client.get(f"/v1/tickets/{tid}", headers=H("ak"))),
        ("/v1/tickets/{ticket_id}/history", "get", client.get(f"/v1/tickets/{tid}/history", headers=H("ak"))),
        (
            "/v1/tickets/{ticket_id}/transition",
            "post",
            client.post(f"/v1/tickets/{tid}/transition", json={"to": "new"}, headers=H("ak")),
        ),
        ("/v1/reports/breaches", "get", client.get("/v1/reports/breaches", headers=H("ak"))),
    ]
    for path, method, response in cases:
        documented = spec["paths"][path][method]["responses"][str(response.status_code)]
        schema = {**documented["content"]["application/json"]["schema"], "components": spec["components"]}
        jsonschema.validate(response.json, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.timeout(60)
def test_the_service_sweeps_escalations_in_the_background(store):
    import time
    from datetime import datetime, timedelta, timezone

    from triage.store.intake import intake
    from triage.store.tables import Escalation

    app = create_app(
        {
            "TESTING": True,
            "TRIAGE_LOAD": "off",
            "TRIAGE_API_KEYS": KEYS,
            "TRIAGE_SIGHUP": False,
            "TRIAGE_ESCALATION_INTERVAL": 0.5,
        }
    )
    app.extensions["triage.store"] = store  # before the first pass (it waits one interval)
    try:
        with store.session() as s:
            intake(
                s,
                {"subject": "old", "priority": 1, "customer_tier": "vip"},
                actor="x",
                ruleset=RuleSet.load(),
                now=datetime.now(timezone.utc) - timedelta(days=3),
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with store.session() as s:
                if s.query(Escalation).count() == 6:  # 3 levels x 2 clocks
                    break
            time.sleep(0.2)
        with store.session() as s:
            assert s.query(Escalation).count() == 6
    finally:
        app.extensions["triage.escalation_stop"].set()


def test_concurrent_intakes_over_http_share_the_group_committer_and_are_all_stored(client, store):
    import threading

    from triage.store import clocks, tickets

    groups, answers, lock = store.committer.groups, [], threading.Lock()

    def post(i: int) -> None:
        r = client.post(
            "/v1/tickets",
            json={"subject": f"VPN down {i}", "body": "since 9", "affected_service": "vpn"},
            headers=H("ik", **{"X-Requester": f"user{i}@example.com", "Idempotency-Key": f"h{i}"}),
        )
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [201] * 8
    assert 1 <= store.committer.groups - groups <= 8  # the view writes through the committer
    with store.session(readonly=True) as s:
        for r in answers:  # each answered ticket is stored, with its clocks and its notice
            assert tickets.get(s, r.json["ticket"]["id"]).subject == r.json["ticket"]["subject"]
            assert {c["kind"] for c in clocks.clocks_of(s, r.json["ticket"]["id"])} == {
                "first_response",
                "resolution",
            }
