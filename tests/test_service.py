"""The service through Flask's test client: classify, bad input, auth, reload, health, metrics."""

from __future__ import annotations

import threading
import time

import pytest

from service_fixtures import TICKET, app_config, auth

ERROR_KEYS = {"ok", "error", "errors", "status"}


def assert_error(response, status: int) -> dict:
    body = response.get_json()
    assert response.status_code == status, (response.status_code, body)
    assert set(body) >= ERROR_KEYS and body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    return body


# ------------------------------------------------------------------ classify
def test_classify_one_ticket(client):
    r = client.post("/v1/classify", json=TICKET, headers=auth())
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    result = body["result"]
    assert body["ok"] is True and body["bundle_id"]
    assert result["id"] == "T-1"
    assert {"type", "team"} <= set(result["fields"])
    for head in result["fields"].values():
        assert 0.0 <= head["probability"] <= 1.0
        assert head["decision"] in {"apply", "suggest", "abstain"}
        assert isinstance(head["alternatives"], list) and isinstance(head["explanation"], list)
    assert result["sla"]["policy"] and result["sla"]["first_response_due"]
    assert isinstance(result["rules"]["fired"], list)
    assert any(s["article_id"] == "kb-vpn" for s in result["kb"]), result["kb"]


def test_classify_batch_keeps_order(client):
    tickets = [dict(TICKET, id=f"T-{i}") for i in range(3)] + [{"subject": "printer jammed"}]
    r = client.post("/v1/classify", json={"tickets": tickets}, headers=auth("agent"))
    assert r.status_code == 200
    assert [x["id"] for x in r.get_json()["results"]] == ["T-0", "T-1", "T-2", None]


def test_vip_rule_fires_and_given_fields_override(client):
    r = client.post("/v1/classify", headers=auth(), json=dict(TICKET, vip=True, fields={"priority": "P4"}))
    result = r.get_json()["result"]
    assert "vip-customer" in result["rules"]["fired"]
    assert result["sla"]["priority"] <= 2


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"subject": 5}, "subject"),
        ({"subject": "x", "prioirty": "P1"}, "prioirty"),
        ({"subject": "", "body": "  "}, "subject"),
        ({"subject": "x", "channel": "pigeon"}, "channel"),
        ({"subject": "x", "created_at": "yesterday"}, "created_at"),
        ({"subject": "x", "vip": "yes"}, "vip"),
        ({"subject": "x", "fields": {"priority": ["P1"]}}, "fields"),
        ({"subject": "x", "body": "y" * 50_001}, "body"),
        ({"subject": "x\ud800"}, "subject"),
        ({"tickets": []}, "tickets"),
        ({"tickets": [{"subject": "ok"}, {"body": 1}]}, "tickets[1].body"),
        ({"tickets": [{"subject": "ok"}], "extra": 1}, "extra"),
        ([1, 2], "$"),
    ],
)
def test_bad_tickets_are_422_naming_the_field(client, payload, field):
    body = assert_error(client.post("/v1/classify", json=payload, headers=auth()), 422)
    assert any(e["field"] == field for e in body["errors"]), body
    assert "expected" in body["errors"][0] and "got" in body["errors"][0]


def test_bad_priority_given_is_4xx(client):
    r = client.post("/v1/classify", json=dict(TICKET, fields={"priority": "P9"}), headers=auth())
    assert_error(r, 422)


@pytest.mark.parametrize(
    "data, content_type, status",
    [
        (b'{"subject": "x"', "application/json", 400),
        (b'{"subject": "caf\xe9"}', "application/json", 400),
        (b"", "application/json", 400),
        (b'{"subject": NaN}', "application/json", 400),
        (b"subject=x", "application/x-www-form-urlencoded", 415),
        (b'{"subject": "x"}', "text/plain", 415),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    ],
)
def test_malformed_bodies(client, data, content_type, status):
    r = client.post("/v1/classify", data=data, content_type=content_type, headers=auth())
    assert_error(r, status)


def test_oversized_body_is_413_and_a_batch_past_max_items_422(app, client):
    big = b'{"subject": "' + b"x" * app.config["MAX_CONTENT_LENGTH"] + b'"}'
    assert_error(client.post("/v1/classify", data=big, content_type="application/json", headers=auth()), 413)
    many = {"tickets": [{"subject": "x"}] * (app.config["TRIAGE_MAX_BATCH"] + 1)}
    assert_error(client.post("/v1/classify", json=many, headers=auth()), 422)  # maxItems


def test_404_405_and_unexpected_errors_share_the_shape(app, client):
    assert_error(client.get("/v1/nope", headers=auth()), 404)
    r = client.get("/v1/classify", headers=auth())
    assert_error(r, 405)
    assert "POST" in r.headers["Allow"]

    def boom(*_, **__):
        raise RuntimeError("bug")

    app.extensions["triage.state"].current.triager.classify = boom
    body = assert_error(client.post("/v1/classify", json=TICKET, headers=auth()), 500)
    assert "bug" not in body["error"]


# ---------------------------------------------------------------------- auth
def test_missing_and_wrong_key_401_wrong_role_403(client):
    assert_error(client.post("/v1/classify", json=TICKET), 401)
    r = client.post("/v1/classify", json=TICKET, headers={"X-API-Key": "nope"})
    assert_error(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.post("/v1/admin/reload", headers=auth("intake")), 403)
    assert_error(client.get("/v1/admin/bundle", headers=auth("agent")), 403)
    assert client.get("/v1/admin/bundle", headers={"X-API-Key": "admin-key"}).status_code == 200


def test_keys_file_holds_only_digests(service_env, tmp_path):
    import json

    from service import create_app
    from service.auth import digest

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"name": "ops", "role": "admin", "sha256": digest("s3cret")}]))
    app = create_app(
        app_config(service_env, TRIAGE_API_KEYS="", TRIAGE_API_KEYS_FILE=str(keys), TRIAGE_LOAD="off")
    )
    c = app.test_client()
    assert c.get("/v1/admin/bundle", headers={"X-API-Key": "s3cret"}).status_code == 503
    assert c.get("/v1/admin/bundle", headers={"X-API-Key": "other"}).status_code == 401


# ------------------------------------------------------------------------- KB
def test_suggest_and_article(client):
    r = client.get("/v1/kb/suggest?q=my+vpn+client+keeps+dropping&k=2", headers=auth())
    body = r.get_json()
    assert r.status_code == 200 and body["suggestions"][0]["article_id"] == "kb-vpn"
    assert len(body["suggestions"]) <= 2
    assert client.get("/v1/kb/suggest?q=", headers=auth()).get_json()["suggestions"] == []
    art = client.get("/v1/kb/articles/kb-vpn", headers=auth()).get_json()["article"]
    assert art["title"] == "Fix VPN connection drops"
    assert_error(client.get("/v1/kb/articles/none", headers=auth()), 404)


def test_suggest_reports_threshold_and_cuts_long_queries(client):
    """A query past the encoder's window is cut (whole sentences), never refused."""
    long = "My VPN client keeps dropping. " * 20 + "Printer toner payslip holiday. " * 300
    r = client.get("/v1/kb/suggest", query_string={"q": long}, headers=auth())
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["query_window"] == {"words": 100, "truncated": True}
    assert body["suggestions"] and body["suggestions"][0]["article_id"] == "kb-vpn"
    threshold = body["threshold"]
    assert isinstance(threshold, float) and all(s["score"] >= threshold for s in body["suggestions"])
    short = client.get("/v1/kb/suggest?q=vpn+drops", headers=auth()).get_json()
    assert short["query_window"]["truncated"] is False and short["threshold"] == threshold
    admin = client.get("/v1/admin/bundle", headers=auth("admin")).get_json()
    assert admin["bundle"]["kb"]["threshold"] == threshold


def test_classify_searches_the_kb_with_the_same_query_window_as_suggest(client):
    """A long ticket's KB suggestions come from its first 100 words, as GET /v1/kb/suggest's do."""
    body = "My VPN client keeps dropping. " * 20 + "Printer toner payslip holiday. " * 300
    r = client.post("/v1/classify", json={"subject": "VPN drops", "body": body}, headers=auth())
    assert r.status_code == 200, r.get_json()
    suggested = client.get(
        "/v1/kb/suggest", query_string={"q": "VPN drops " + body}, headers=auth()
    ).get_json()
    assert suggested["query_window"]["truncated"] is True
    assert [(s["article_id"], s["score"]) for s in r.get_json()["result"]["kb"]] == [
        (s["article_id"], s["score"]) for s in suggested["suggestions"]
    ]


@pytest.mark.parametrize(
    "query", ["k=2", "q=x&k=0", "q=x&k=abc", "q=x&k=999", "q=x&lang=de", "q=" + "x" * 20001]
)
def test_suggest_bad_params(client, query):
    assert_error(client.get(f"/v1/kb/suggest?{query}", headers=auth()), 422)


# ------------------------------------------------------------ reload, health
def test_reload_swaps_atomically_and_inflight_requests_finish_on_old(app, client):
    state = app.extensions["triage.state"]
    old = state.current
    gate, started = threading.Event(), threading.Event()
    original = old.triager.classify

    def slow_classify(tickets, policy=None, **given):
        started.set()
        gate.wait(10)
        return original(tickets, policy, **given)

    old.triager.classify = slow_classify
    seen = {}
    t = threading.Thread(
        target=lambda: seen.update(r=app.test_client().post("/v1/classify", json=TICKET, headers=auth()))
    )
    t.start()
    assert started.wait(10)
    r = client.post("/v1/admin/reload", json={"wait": True}, headers=auth("admin"))
    assert r.status_code == 200, r.get_json()
    assert state.current is not old and state.reloads == 1
    gate.set()
    t.join(10)
    assert seen["r"].status_code == 200 and seen["r"].get_json()["bundle_id"] == old.bundle_id


def test_background_reload_and_unknown_bundle(app, client):
    state = app.extensions["triage.state"]
    old = state.current
    r = client.post("/v1/admin/reload", headers=auth("admin"))
    assert r.status_code == 202
    deadline = time.time() + 30
    while state.current is old and time.time() < deadline:
        time.sleep(0.05)
    assert state.current is not old
    r = client.post("/v1/admin/reload", json={"bundle": "../etc"}, headers=auth("admin"))
    assert_error(r, 404)  # no such bundle in the models dir
    assert_error(client.post("/v1/admin/reload", json={"nope": 1}, headers=auth("admin")), 422)


def test_a_reload_asked_while_a_worker_still_loads_is_followed(service_env, tmp_path, monkeypatch):
    """A sibling worker's reload broadcast while this worker loads its bundle at start (a
    start takes seconds on a busy machine) is followed once this worker's watcher runs:
    the watcher used to read the token after the load and take it for one already done."""
    from service import create_app
    from service.state import ServiceState
    from service.store import close

    load = ServiceState.load

    def load_while_a_sibling_asks(self, requested=None):
        loaded = load(self, requested)
        if self.reloads == 0:  # the start-up load: a sibling broadcasts meanwhile
            ServiceState(self.config).broadcast()
        return loaded

    monkeypatch.setattr(ServiceState, "load", load_while_a_sibling_asks)
    app = create_app(app_config(service_env, TRIAGE_RUN_DIR=str(tmp_path)))
    try:
        state = app.extensions["triage.state"]
        first = state.current
        deadline = time.time() + 30  # the watcher looks every 0.5 s
        while state.current is first and time.time() < deadline:
            time.sleep(0.05)
        assert state.current is not first, "the reload asked during the start was not followed"
    finally:
        close(app)


def test_readyz_only_when_loaded(service_env):
    from service import create_app

    app = create_app(app_config(service_env, TRIAGE_LOAD="off"))
    c = app.test_client()
    assert c.get("/livez").status_code == 200
    body = assert_error(c.get("/readyz"), 503)
    assert body["ready"] is False
    assert_error(c.post("/v1/classify", json=TICKET, headers=auth()), 503)
    app.extensions["triage.state"].load()
    assert c.get("/readyz").get_json()["ready"] is True


def test_broken_rules_file_refuses_to_start(service_env, tmp_path):
    from service import create_app
    from triage.errors import ConfigError

    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\nrules:\n  - name: x\n    when: {field: nope, equals: 1}\n")
    with pytest.raises(ConfigError, match="rules.yaml"):
        create_app(app_config(service_env, TRIAGE_RULES_PATH=str(bad)))


def test_metrics_count_requests_predictions_and_bundle(client):
    client.post("/v1/classify", json=TICKET, headers=auth())
    text = client.get("/metrics").data.decode()
    assert 'triage_http_request_duration_seconds_bucket{endpoint="/v1/classify"' in text
    assert "triage_predictions_total{decision=" in text
    assert "triage_bundle_info{bundle_id=" in text


def _samples(text: str, name: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
    }


def test_metrics_add_up_per_label_across_requests(client):
    """The label children are looked up once and reused: each request still counts once,
    under its own labels (status, endpoint, head and decision, KB answered or not)."""
    before = client.get("/metrics").data.decode()
    results = [
        client.post("/v1/classify", json=TICKET, headers=auth()).get_json()["result"] for _ in range(3)
    ]
    client.post("/v1/classify?kb=0", json=TICKET, headers=auth())
    client.post("/v1/classify", json={"subject": ""}, headers=auth())  # 422
    after = client.get("/metrics").data.decode()

    def grew(name: str) -> dict[str, float]:
        was = _samples(before, name)
        return {k: v - was.get(k, 0.0) for k, v in _samples(after, name).items() if v != was.get(k, 0.0)}

    requests = grew("triage_http_requests_total")
    assert requests['triage_http_requests_total{endpoint="/v1/classify",method="POST",status="200"}'] == 4
    assert requests['triage_http_requests_total{endpoint="/v1/classify",method="POST",status="422"}'] == 1
    heads = {(h, f["decision"]) for r in results for h, f in r["fields"].items()}
    predictions = grew("triage_predictions_total")
    assert sum(predictions.values()) == 4 * len(results[0]["fields"])
    for head, decision in heads:
        assert predictions[f'triage_predictions_total{{decision="{decision}",head="{head}"}}'] >= 3
    kb = grew("triage_kb_suggestions_total")
    answered = "true" if results[0]["kb"] else "false"
    assert kb[f'triage_kb_suggestions_total{{answered="{answered}",source="classify"}}'] >= 3
    assert sum(kb.values()) == 4
    latency = grew("triage_http_request_duration_seconds_count")
    assert latency['triage_http_request_duration_seconds_count{endpoint="/v1/classify",method="POST"}'] == 5


def test_request_id_is_echoed_or_generated(client, caplog):
    caplog.set_level("INFO", logger="service.access")
    r = client.post("/v1/classify", json=TICKET, headers={**auth(), "X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123" and r.get_json()["request_id"] == "abc-123"
    assert any("rid=abc-123" in m for m in caplog.messages)
    generated = client.get("/livez", headers={"X-Request-Id": "bad id with spaces"})
    assert generated.headers["X-Request-Id"] != "bad id with spaces"
    assert len(generated.headers["X-Request-Id"]) == 32


def test_session_cookies_follow_the_secret_key_with_the_signer_reused(app):
    """The session's signing serializer is built once per key: a cookie signed under the old
    key is refused once the key changes, and accepted again while the old key is a fallback."""
    from flask import request

    interface = app.session_interface
    old_key, fallbacks = app.secret_key, app.config["SECRET_KEY_FALLBACKS"]
    cookie = interface.get_cookie_name(app)
    signed = interface.get_signing_serializer(app).dumps({"user": {"id": 7}})

    def opened() -> dict:
        with app.test_request_context("/livez", headers={"Cookie": f"{cookie}={signed}"}):
            return dict(interface.open_session(app, request))

    try:
        assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)
        assert opened() == {"user": {"id": 7}}
        app.secret_key = "another-key-" + "x" * 32
        assert opened() == {}
        app.config["SECRET_KEY_FALLBACKS"] = [old_key]
        assert opened() == {"user": {"id": 7}}
    finally:
        app.secret_key, app.config["SECRET_KEY_FALLBACKS"] = old_key, fallbacks
