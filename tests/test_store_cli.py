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
        t = intake(
            s,
            {"subject": "old", "priority": 1, "customer_tier": "vip"},
            actor="x",
            ruleset=RuleSet.load(),
            now=long_ago,
        ).ticket
    capsys.readouterr()
    assert main(["escalate", "--once", "--database", url]) == 0
    out = capsys.readouterr().out
    assert f"ticket {t.id}: first_response level 1 (warn)" in out
    assert f"ticket {t.id}: resolution level 3 (manager)" in out
    assert main(["escalate", "--once", "--database", url]) == 0
    assert capsys.readouterr().out == ""  # nothing fires twice
    assert main(["breaches", "--database", url]) == 0
    assert "2 breached clock(s)" in capsys.readouterr().out


def test_mail_poll_turns_a_mailbox_into_tickets_once(tmp_path, capsys, monkeypatch):
    import mailbox

    from triage.store import inbox

    batches: list[int] = []  # the poll hands its messages over together (group commit)
    real = inbox.receive_many
    monkeypatch.setattr(
        inbox, "receive_many", lambda store, ms, **kw: batches.append(len(ms)) or real(store, ms, **kw)
    )

    url = f"sqlite:///{tmp_path / 'mail.db'}"
    box = mailbox.mbox(tmp_path / "inbox.mbox")  # keeps delivery order: the reply comes second
    box.add(b"From: ann@x\nSubject: printer\nMessage-ID: <p1@x>\n\nit jams\n")
    box.add(b"From: ann@x\nSubject: Re: printer\nIn-Reply-To: <p1@x>\nMessage-ID: <p2@x>\n\nstill\n")
    box.close()
    args = ["mail", "poll", "--mbox", str(tmp_path / "inbox.mbox"), "--once", "--database", url]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 created, 1 threaded, 0 duplicate, 0 refused; 0 left unread" in out
    assert batches == [2]  # the opener and its reply in one batch, the reply still threaded
    assert main(args) == 0 and "0 created, 0 threaded" in capsys.readouterr().out  # acknowledged
    with Store(url).session() as s:
        from triage.store import tickets

        (ticket,) = tickets.query(s)
        assert [c.body.strip() for c in tickets.comments(s, ticket.id)] == ["still"]
