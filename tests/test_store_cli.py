"""The ticketing commands: db upgrade, escalate --once, breaches (in-process, SQLite file)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from triage.rules import RuleSet
from triage.store import Store
from triage.store.intake import intake
from triage_cli import main


def test_upgrade_escalate_and_breaches(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "upgrade", "--database", url]) == 0
    store = Store(url)
    long_ago = datetime.now(timezone.utc) - timedelta(days=30)
    with store.session() as s:
        t = intake(s, {"subject": "old", "priority": 1, "customer_tier": "vip"}, actor="x",
                   ruleset=RuleSet.load(), now=long_ago).ticket
    capsys.readouterr()
    assert main(["escalate", "--once", "--database", url]) == 0
    out = capsys.readouterr().out
    assert f"ticket {t.id}: first_response level 1 (warn)" in out
    assert f"ticket {t.id}: resolution level 3 (manager)" in out
    assert main(["escalate", "--once", "--database", url]) == 0
    assert capsys.readouterr().out == ""  # nothing fires twice
    assert main(["breaches", "--database", url]) == 0
    assert "2 breached clock(s)" in capsys.readouterr().out
