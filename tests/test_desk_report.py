"""The desk report's figures against values computed by hand on a small fixture."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from triage.reports.desk import MIN_N, build_report, rows_from_store
from triage.store import routing, tickets

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=timezone.utc)


ROWS = [  # hours from creation written beside each time, for the hand computation below
    {
        "created_at": at(30, 8),
        "first_response_at": at(30, 8) + timedelta(minutes=30),  # 0.5
        "resolved_at": at(30, 10),
        "status": "resolved",
        "team": "Net",
        "agent": "nina",  # 2
        "category": "Network",
        "priority": 1,
        "agent_replies": 1,
        "reopens": 0,
    },
    {
        "created_at": at(29, 12),
        "first_response_at": at(29, 14),  # 2
        "resolved_at": at(30, 12),
        "status": "closed",
        "team": "Net",
        "agent": "nina",  # 24
        "category": "Network",
        "priority": 2,
        "agent_replies": 3,
        "reopens": 0,
    },
    {
        "created_at": at(30, 6),
        "first_response_at": None,
        "resolved_at": None,  # age 6
        "status": "new",
        "team": "Net",
        "agent": "leo",
        "category": "Network",
        "priority": 2,
        "agent_replies": 0,
        "reopens": 0,
    },
    {
        "created_at": at(28, 12),
        "first_response_at": at(28, 13),
        "resolved_at": None,  # 1; age 48
        "status": "in_progress",
        "team": "Desk",
        "agent": "sam",
        "category": "Access",
        "priority": 3,
        "agent_replies": 2,
        "reopens": 1,
    },
    {
        "created_at": at(30, 11),
        "first_response_at": None,
        "resolved_at": None,  # age 1
        "status": "new",
        "team": "Desk",
        "agent": None,
        "category": "Access",
        "priority": None,
        "agent_replies": 0,
        "reopens": 0,
    },
]
AGENTS = [{"agent": "nina", "open": 0, "capacity": 8}, {"agent": "leo", "open": 1, "capacity": 10}]


def test_overall_figures_match_the_hand_computation():
    report = build_report(ROWS, NOW, days=3, agents=AGENTS)
    o = report["overall"]
    assert o["tickets"] == 5
    assert o["first_response"]["n"] == 3
    assert o["first_response"]["mean_h"] == pytest.approx((0.5 + 2 + 1) / 3)
    assert o["first_response"]["median_h"] == pytest.approx(1.0)
    assert (o["resolve"]["n"], o["resolve"]["mean_h"], o["resolve"]["median_h"]) == (2, 13.0, 13.0)
    assert (o["fcr"]["k"], o["fcr"]["n"], o["fcr"]["rate"]) == (1, 2, 0.5)  # A one-touch, B not
    assert (o["reopen"]["k"], o["reopen"]["n"]) == (1, 3)  # A, B resolved; D reopened
    assert o["reopen"]["rate"] == pytest.approx(1 / 3)
    assert o["fcr"]["small"] and o["reopen"]["small"] and MIN_N == 30
    assert o["fcr"]["ci_low"] < 0.5 < o["fcr"]["ci_high"]
    b = o["backlog"]
    assert (b["n"], b["median_age_h"], b["max_age_h"]) == (3, 6.0, 48.0)
    assert b["mean_age_h"] == pytest.approx((6 + 48 + 1) / 3)


def test_group_figures_match_the_hand_computation():
    report = build_report(ROWS, NOW, days=3, agents=AGENTS)
    teams = {r["team"]: r for r in report["by"]["team"]}
    net, desk = teams["Net"], teams["Desk"]
    assert net["first_response"]["mean_h"] == pytest.approx(1.25)
    assert (net["fcr"]["k"], net["fcr"]["n"], net["reopen"]["k"], net["reopen"]["n"]) == (1, 2, 0, 2)
    assert net["backlog"]["n"] == 1 and net["backlog"]["max_age_h"] == 6.0
    assert desk["resolve"]["n"] == 0 and desk["resolve"]["mean_h"] is None
    assert desk["fcr"]["rate"] is None and desk["fcr"]["ci_low"] is None
    assert (desk["reopen"]["k"], desk["reopen"]["n"]) == (1, 1)
    assert desk["backlog"]["mean_age_h"] == pytest.approx(24.5)
    agents = {r["agent"]: r for r in report["by"]["agent"]}
    assert agents["nina"]["tickets"] == 2 and agents["—"]["tickets"] == 1
    prios = [r["priority"] for r in report["by"]["priority"]]
    assert prios == ["1", "2", "3", "—"]
    assert report["volume"] == [
        {"day": "2026-11-28", "created": 1, "resolved": 0},
        {"day": "2026-11-29", "created": 1, "resolved": 0},
        {"day": "2026-11-30", "created": 3, "resolved": 2},
    ]
    assert [(a["agent"], a["load"]) for a in report["agents"]] == [("leo", 0.1), ("nina", 0.0)]


def test_rows_from_the_store_count_replies_and_reopens(store):
    t0 = at(30, 8)
    with store.session() as s:
        routing.upsert_agent(s, "nina", teams=["Net"], capacity=4)
        row, _ = tickets.create(s, {"subject": "x", "requester": "ann@x"}, actor="ann@x", now=t0)
        tickets.set_fields(
            s,
            row,
            {"category": "Network", "priority": 2, "affected_service": "VPN", "team": "Net"},
            actor="t",
            now=t0,
            retime=False,
        )
        routing.assign(s, row.id, actor="t", agent_id="nina", now=t0)
        tickets.add_comment(
            s, row, author="nina", body="try this", by_agent=True, now=t0 + timedelta(minutes=45)
        )
        tickets.add_comment(s, row, author="ann@x", body="thanks", now=t0 + timedelta(hours=1))
        tickets.transition(s, row, "resolved", actor="nina", now=t0 + timedelta(hours=2))
        tickets.transition(s, row, "in_progress", actor="ann@x", now=t0 + timedelta(hours=3))
        rows, agents = rows_from_store(s, t0 - timedelta(days=1))
    [r] = rows
    assert (r["agent_replies"], r["reopens"], r["agent"], r["status"]) == (1, 1, "nina", "in_progress")
    report = build_report(rows, t0 + timedelta(hours=4), days=2, agents=agents)
    assert report["overall"]["first_response"]["mean_h"] == pytest.approx(0.75)
    assert report["overall"]["reopen"]["k"] == 1 and report["overall"]["fcr"]["n"] == 0
    assert [(a["agent"], a["open"]) for a in report["agents"]] == [("nina", 1)]


def test_report_page_json_and_cli(tmp_path, capsys):
    """Through the service (admin only) and `triage report desk`, on the same store."""
    from service.app import create_app
    from triage_cli import main

    db = f"sqlite:///{tmp_path / 'r.db'}"
    app = create_app(
        {
            "TESTING": True,
            "TRIAGE_LOAD": "off",
            "TRIAGE_DATABASE_URL": db,
            "TRIAGE_API_KEYS": "adm:admin,agt:agent",
            "TRIAGE_SECRET_KEY": "t",
        }
    )
    with app.app_context():
        from service.tickets import get_store

        with get_store().session() as s:
            tickets.create(s, {"subject": "x", "requester": "a@x"}, actor="a@x")
    import re

    def staff(key):
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text)
        client.post("/signin", data={"csrf_token": token.group(1), "kind": "staff", "key": key})
        return client

    assert staff("agt").get("/admin/reports/desk").status_code in (302, 403)
    c = staff("adm")
    page = c.get("/admin/reports/desk")
    assert page.status_code == 200 and b"Desk performance" in page.data and b"n = 0" in page.data
    data = c.get("/admin/reports/desk.json").get_json()
    assert data["overall"]["tickets"] == 1 and data["overall"]["backlog"]["n"] == 1
    assert main(["report", "desk", "--database", db]) == 0
    out = capsys.readouterr().out
    assert "tickets     1" in out and "FCR - (n=0)" in out
