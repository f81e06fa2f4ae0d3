"""The demo's seeded history is not mailed, and some of it carries customer ratings."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from triage.desk import load_desk
from triage.store import Store, satisfaction
from triage.store import desk as store_desk
from triage.store.tables import OutboxMessage
from triage_cli.demo_seed import seed
from triage_cli.quickstart import _demo_mail_history

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)


def test_seeded_history_sends_no_mail_and_has_ratings(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'demo.db'}")
    store.upgrade()
    with store.session() as s:
        store_desk.apply(s, load_desk(Path("data/demo/desk.yaml")), actor="t", source="t")
    assert seed(store, tickets=60, days=21, now=NOW) == 60
    with store.session() as s:
        queued = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "mail"))
        assert queued > 60  # the store's triggers did queue the history's notices...
    _demo_mail_history(store)
    with store.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "mail")) == 0
        )  # ...and none is sent
        rows = satisfaction.report(s, "team")
        assert rows and sum(r["n"] for r in rows) > 0
    store.dispose()
