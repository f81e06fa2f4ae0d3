"""Admin reports through Flask's test client: access, the policy change and its effect.

The bundle is the session's small HashingEncoder bundle (``service_fixtures``); each
test gets its own SQLite store, so changes never leak between tests.
"""

from __future__ import annotations

import json
import re

import pytest

from service_fixtures import TICKET, app_config, auth

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture()
def app(service_env, monkeypatch, tmp_path):  # noqa: F811
    from service import create_app

    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    return create_app(
        app_config(
            service_env,
            TRIAGE_SECRET_KEY="reports-tests",
            TRIAGE_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}",
        )
    )


def signed_in(app, key: str):
    client = app.test_client()
    r = client.post("/signin", data={"kind": "staff", "key": key, "csrf_token": csrf(client, "/signin")})
    assert r.status_code in (302, 303), r.data[:300]
    return client


def csrf(client, path: str = "/admin/reports/confidence") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def classify(app, **extra) -> dict:
    r = app.test_client().post("/v1/classify", json=dict(TICKET, **extra), headers=auth())
    assert r.status_code == 200, r.get_json()
    return r.get_json()["result"]["fields"]


def test_reports_are_for_admins_only(app):
    agent = signed_in(app, "agent-key")
    for path in (
        "/admin/reports/confidence",
        "/admin/reports/knowledge",
        "/admin/reports/sla",
        "/admin/reports/confidence.json",
        "/admin/reports/confidence.html",
    ):
        assert agent.get(path).status_code == 403, path
        assert app.test_client().get(path, headers=auth("agent")).status_code == 403, path
    anonymous = app.test_client().get("/admin/reports/confidence")
    assert anonymous.status_code == 302 and "/signin" in anonymous.headers["Location"]
    admin = signed_in(app, "admin-key")
    for path in ("/admin/reports/confidence", "/admin/reports/knowledge", "/admin/reports/sla"):
        r = admin.get(path)
        assert r.status_code == 200, (path, r.get_data(as_text=True)[:500])
        assert "Content-Security-Policy" in r.headers
    assert app.test_client().get("/admin/reports/confidence.json", headers=auth("admin")).status_code == 200


def test_head_off_takes_effect_on_the_next_classify(app):
    before = classify(app)
    assert any(f["decision"] != "abstain" for f in before.values()), before
    head = next(h for h, f in before.items() if f["decision"] != "abstain")
    admin = signed_in(app, "admin-key")
    r = admin.post(
        "/admin/reports/confidence/policy",
        data={"csrf_token": csrf(admin), "head": head, "kind": "mode", "mode": "off", "note": "testing"},
    )
    assert r.status_code == 302
    assert classify(app)[head]["decision"] == "abstain"
    report = admin.get("/admin/reports/confidence.json").get_json()
    change = report["history"][0]
    assert (change["head"], change["label"], change["new"]) == (head, None, {"mode": "off"})
    assert change["by"]  # the signed-in admin (named by the session, not by the key)
    assert change["old"] == {"mode": "auto"} and change["note"] == "testing"
    assert report["heads"][head]["policy"]["mode"] == "off"


def test_class_apply_threshold_above_one_stops_auto_apply(app):
    """A class threshold of 0 makes the top label apply, above 1 only suggest; reset restores."""
    before = classify(app)
    head = next(iter(before))
    label, original = before[head]["label"], before[head]["decision"]
    admin = signed_in(app, "admin-key")
    token = csrf(admin)

    def set_class(apply: str, suggest: str) -> str:
        r = admin.post(
            "/admin/reports/confidence/policy",
            data={
                "csrf_token": token,
                "head": head,
                "kind": "class",
                "label": label,
                "apply": apply,
                "suggest": suggest,
            },
        )
        assert r.status_code == 302
        return classify(app)[head]["decision"]

    assert set_class("0.0", "0.0") == "apply"
    assert set_class("1.01", "0.0") == "suggest"
    r = admin.post(
        "/admin/reports/confidence/policy",
        data={"csrf_token": token, "head": head, "kind": "reset", "label": label},
    )
    assert r.status_code == 302
    assert classify(app)[head]["decision"] == original


def test_policy_change_needs_csrf_and_valid_values(app):
    admin = signed_in(app, "admin-key")
    r = admin.post("/admin/reports/confidence/policy", data={"head": "type", "kind": "mode", "mode": "off"})
    assert r.status_code == 400
    r = admin.post(
        "/admin/reports/confidence/policy",
        follow_redirects=True,
        data={
            "csrf_token": csrf(admin),
            "head": "type",
            "kind": "class",
            "label": "incident",
            "apply": "abc",
        },
    )
    assert "Not saved" in r.get_data(as_text=True)
    assert admin.get("/admin/reports/confidence.json").get_json()["history"] == []


def test_what_if_endpoint_estimates_proposed_thresholds(app):
    admin = signed_in(app, "admin-key")
    body = admin.get("/admin/reports/confidence.json").get_json()
    head = next(iter(body["heads"]))
    label = next(iter(body["heads"][head]["thresholds"]))
    r = admin.get(
        f"/admin/reports/confidence/what-if?head={head}&label={label}&apply=1.01&suggest=1.01"
    ).get_json()
    assert r["ok"] and r["available"]
    assert r["proposed"]["class"]["applied"]["n"] == 0
    assert r["proposed"]["class"]["suggested"]["n"] == 0
    bad = admin.get(f"/admin/reports/confidence/what-if?head={head}&apply=-3")
    assert bad.status_code == 422


def test_hostile_ticket_text_is_escaped_in_page_and_export(app):
    client = app.test_client()
    r = client.post(
        "/v1/tickets",
        json={"subject": f"Printer {XSS}", "body": f"jammed {XSS}", "requester": "x@example.com"},
        headers=auth(),
    )
    assert r.status_code in (200, 201), r.get_json()
    admin = signed_in(app, "admin-key")
    for path in ("/admin/reports/confidence", "/admin/reports/confidence.html"):
        page = admin.get(path).get_data(as_text=True)
        assert XSS not in page
    export = admin.get("/admin/reports/confidence.html")
    assert export.headers["Content-Disposition"].startswith("attachment")
    assert "<script" not in export.get_data(as_text=True)


def test_cli_report_confidence_json_and_html(service_env, tmp_path, capsys, monkeypatch):  # noqa: F811
    from triage_cli import main

    # bundles load only from the models folder: the session bundle's folder is it here
    monkeypatch.setenv("TRIAGE_MODELS_DIR", str(service_env["bundle"].parent))
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    common = ["--bundle", str(service_env["bundle"]), "--database", db]
    out_html = tmp_path / "confidence.html"
    assert main(["report", "confidence", *common, "--json", "--html", str(out_html)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["heads"]) >= {"type", "team"}
    assert report["heads"]["type"]["holdout"]["what_if_available"]
    html = out_html.read_text(encoding="utf-8")
    assert "<svg" in html and "<script" not in html and "<link" not in html
    assert main(["report", "sla", *common]) == 0
    assert capsys.readouterr().out.lstrip().startswith("all")
    assert main(["report", "knowledge", *common, "--no-gaps", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deflection"]["difference"]["value"] is None


def test_a_change_made_in_one_worker_applies_in_another(service_env, monkeypatch, tmp_path):  # noqa: F811
    """Two apps on one database stand for two gunicorn workers: no reload, no signal."""
    from service import create_app

    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(tmp_path / "cache"))
    config = app_config(
        service_env,
        TRIAGE_SECRET_KEY="reports-tests",
        TRIAGE_DATABASE_URL=f"sqlite:///{tmp_path / 'shared.db'}",
    )
    one, two = create_app(config), create_app(config)
    before = classify(two)  # worker two has read (and cached) the empty policy
    head = next(h for h, f in before.items() if f["decision"] != "abstain")
    admin = signed_in(one, "admin-key")
    admin.post(
        "/admin/reports/confidence/policy",
        data={"csrf_token": csrf(admin), "head": head, "kind": "mode", "mode": "suggest_only"},
    )
    after = classify(two)
    assert after[head]["decision"] == (
        "suggest" if before[head]["decision"] == "apply" else before[head]["decision"]
    )
