"""Shadow mode: the challenger runs on live tickets, is stored, never applied, and is graded.

Library: a failing challenger never reaches the caller. Service: with
``TRIAGE_SHADOW_BUNDLE`` set, intake and classify responses are the champion's alone,
the challenger's answers land in ``shadow_predictions``, and ``GET /v1/admin/shadow``
compares both with the labels agents set.
"""

from __future__ import annotations

from service_fixtures import TICKET, app_config, auth
from triage.shadow import ShadowJob, ShadowQueue, ShadowRunner, classify_with_shadow
from triage.ticket import Ticket


class _Champion:
    bundle_id = "champ"

    def classify(self, tickets):
        return [{"fields": {"team": {"label": "Network"}}, "bundle_id": "champ"} for _ in tickets]


def _broken():
    raise RuntimeError("bundle checksum mismatch")


def test_a_broken_challenger_never_reaches_the_caller():
    runner = ShadowRunner(_broken)
    results, shadow = classify_with_shadow(_Champion(), runner, [Ticket(subject="vpn")])
    assert results[0]["bundle_id"] == "champ" and shadow is None
    assert "checksum" in runner.error


def test_queue_is_bounded_and_drops_instead_of_blocking():
    got = []
    queue = ShadowQueue(ShadowRunner(lambda: _Champion()), lambda job, res: got.append(res), maxsize=1)
    for _ in range(50):
        queue.submit(ShadowJob([Ticket(subject="x")], [None], [None], "classify"))
    assert queue.drain(10)
    assert queue.done + queue.dropped == 50 and queue.done >= 1 and len(got) == queue.done


def test_service_stores_shadow_predictions_and_reports_agreement(service_env, tmp_path, monkeypatch):
    from service import create_app

    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    app = create_app(
        app_config(
            service_env,
            TRIAGE_SHADOW_BUNDLE=str(service_env["bundle"]),
            TRIAGE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        )
    )
    client = app.test_client()
    r = client.post(
        "/v1/tickets",
        json={"subject": TICKET["subject"], "body": TICKET["body"], "requester": "ann@example.com"},
        headers=auth("agent"),
    )
    assert r.status_code == 201, r.get_json()
    ticket = r.get_json()["ticket"]
    champion_team = (r.get_json()["prediction"]["fields"].get("team") or {}).get("label")
    c = client.post("/v1/classify", json={"tickets": [TICKET, TICKET]}, headers=auth())
    assert c.status_code == 200 and "shadow" not in c.get_json()  # responses are the champion's
    queue = app.extensions["triage.shadow"]
    assert queue.drain(60)
    other = "Service Desk" if champion_team != "Service Desk" else "Network"
    p = client.patch(f"/v1/tickets/{ticket['id']}", json={"team": other}, headers=auth("agent"))
    assert p.status_code == 200, p.get_json()

    rep = client.get("/v1/admin/shadow", headers=auth("admin"))
    assert rep.status_code == 200
    body = rep.get_json()
    assert body["enabled"] and body["status"]["done"] == 2 and body["status"]["error"] is None
    team = body["report"][service_env["bundle"].name]["team"]
    assert team["shadowed"] == 3  # one ticket + two classified
    assert team["agreement"] == 1.0  # the same bundle in both roles agrees with itself
    assert team["labelled"] == 1 and team["champion_accuracy"] == 0.0
    assert team["challenger_accuracy"] == 0.0  # both said champion_team; the agent said other
    assert client.get("/v1/admin/shadow", headers=auth("agent")).status_code == 403


def test_without_the_setting_nothing_is_shadowed(service_env, tmp_path, monkeypatch):
    from service import create_app

    monkeypatch.delenv("TRIAGE_SHADOW_BUNDLE", raising=False)
    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    app = create_app(app_config(service_env, TRIAGE_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    assert "triage.shadow" not in app.extensions
    body = app.test_client().get("/v1/admin/shadow", headers=auth("admin")).get_json()
    assert body["enabled"] is False and body["report"] == {}
