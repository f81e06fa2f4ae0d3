"""The demo's seeded history: every state, replies, breaches; only into an empty store."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from triage.desk import load_desk
from triage.reports.desk import build_report, rows_from_store
from triage.store import Store
from triage.store import desk as store_desk
from triage.store.tables import Comment, Escalation, TicketRow
from triage_cli.demo_seed import seed

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)


def test_seed_makes_a_lived_in_desk_once(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'demo.db'}")
    store.upgrade()
    with store.session() as s:
        store_desk.apply(s, load_desk(Path("data/demo/desk.yaml")), actor="t", source="t")
    assert seed(store, tickets=120, days=21, now=NOW) == 120
    with store.session() as s:
        states = Counter(s.scalars(select(TicketRow.status)))
        assert set(states) >= {"new", "in_progress", "pending", "resolved", "closed"}, states
        assert s.scalar(select(func.count()).select_from(Comment)) > 50
        assert s.scalar(select(func.count()).select_from(Escalation)) > 0  # breaches happened
        assert s.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.queue == "triage")) > 0
        rows, agents = rows_from_store(s, datetime(2026, 11, 1, tzinfo=timezone.utc))
    report = build_report(rows, NOW, days=30, agents=agents)
    assert report["overall"]["first_response"]["n"] > 30 and report["overall"]["reopen"]["k"] >= 1
    assert seed(store, tickets=120, days=21, now=NOW) == 0  # never into a store with tickets
    store.dispose()
