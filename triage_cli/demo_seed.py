"""``triage demo seed``: a few weeks of desk history, so the demo's pages are lived in.

Everything goes through the store's own functions (intake, assignment, replies,
transitions, the escalation sweep), exactly as the service writes, never raw
SQL, so the history, SLA clocks, breaches and reports are what a real desk
would have produced. Texts come from the synthetic demo corpus
(``data/demo/tickets.csv``). It seeds only an empty store (a second run does
nothing), so it never mixes invented tickets into a real desk's data.
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
MATRIX = {
    ("high", "high"): 1,
    ("high", "medium"): 2,
    ("medium", "high"): 2,
    ("medium", "medium"): 3,
    ("high", "low"): 3,
    ("low", "high"): 3,
}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="demo data: seed a few weeks of desk history",
        description="Seed an EMPTY ticket store with a few weeks of invented desk history "
        "(tickets in every state, replies, reassignments, pending, reopen, SLA "
        "breaches) through the store's own API. Does nothing when tickets exist.",
    )
    sub = p.add_subparsers(dest="demo_command", metavar="ACTION", required=True)
    seed = sub.add_parser(
        "seed",
        help="seed the demo history into an empty store",
        description="Seed the demo history (needs the demo desk applied: "
        "triage desk apply data/demo/desk.yaml).",
    )
    seed.add_argument(
        "--database", default=None, help="SQLAlchemy URL (default TRIAGE_DATABASE_URL, else var/triage.db)"
    )
    seed.add_argument("--tickets", type=int, default=160, help="tickets to create (160)")
    seed.add_argument("--days", type=int, default=21, help="weeks of history, in days (21)")
    seed.add_argument("--seed", type=int, default=3, help="random seed (3)")
    seed.set_defaults(func=run_seed)


def run_seed(args: argparse.Namespace) -> int:
    from triage_cli.tickets import _store

    store = _store(args)
    made = seed(store, tickets=args.tickets, days=args.days, seed_value=args.seed)
    print(
        f"triage demo seed: {made} ticket(s) created"
        if made
        else "triage demo seed: the store already holds tickets; nothing seeded"
    )
    store.dispose()
    return 0


def _rows() -> list[dict]:
    with open(DEMO / "tickets.csv", newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["assignment_group"]]


def seed(
    store, *, tickets: int = 160, days: int = 21, seed_value: int = 3, now: datetime | None = None
) -> int:
    """Create the history; returns the number of tickets (0 when the store was not empty)."""
    from sqlalchemy import func, select

    from triage.rules import RuleSet
    from triage.store import clocks
    from triage.store.tables import TicketRow

    now = now or datetime.now(timezone.utc)
    with store.session() as s:
        if s.scalar(select(func.count()).select_from(TicketRow)):
            return 0
    rng = random.Random(seed_value)
    rules = RuleSet.load()
    rows = rng.sample(_rows(), min(tickets, len(_rows())))
    for i, row in enumerate(rows):
        age = timedelta(days=days) * (i + 0.5) / len(rows)  # oldest first, spread evenly
        created = _office_hours(now - timedelta(days=days) + age, rng)
        with store.session() as s:
            _one(s, row, created, now, rules, rng)
    with store.session() as s:
        clocks.sweep(s, now, limit=10_000)  # escalations of what is late by now
    return len(rows)


def _office_hours(t: datetime, rng: random.Random) -> datetime:
    t = t.replace(hour=rng.randint(8, 16), minute=rng.randint(0, 59), second=0, microsecond=0)
    while t.weekday() >= 5:
        t -= timedelta(days=1)
    return t


def _one(s, row: dict, created: datetime, now: datetime, rules, rng: random.Random) -> None:
    from triage.store import tickets
    from triage.store.intake import intake
    from triage.ticket import Status

    impact = {"1": "high", "2": "medium", "3": "low"}.get(row["impact"], "medium")
    urgency = {"1": "high", "2": "medium", "3": "low"}.get(row["urgency"], "medium")
    triaged = rng.random() > 0.12  # some arrive without fields and wait in the triage queue
    payload = {
        "subject": row["title"],
        "body": row["description"],
        "channel": row["source"],
        "requester": row["requester_email"],
        "customer_tier": row["tier"],
        "affected_service": row["service"],
    }
    if triaged:
        payload.update(
            team=row["assignment_group"], category=row["category"], priority=MATRIX.get((impact, urgency), 4)
        )
    ticket = intake(s, payload, actor=row["requester_email"], ruleset=rules, now=created).ticket
    if ticket.assignee is None or ticket.status != Status.ASSIGNED.value:
        return  # untriaged or nobody had room: it still waits, and the reports show it
    agent, customer = ticket.assignee, row["requester_email"]
    t = created + timedelta(minutes=rng.choice([5, 20, 45, 90, 240, 600, 1500]))
    if t >= now:
        return
    tickets.transition(s, ticket, Status.IN_PROGRESS, actor=agent, now=t)
    tickets.add_comment(s, ticket, author=agent, body=_reply(row, rng), by_agent=True, now=t)
    fate = rng.random()
    t += timedelta(hours=rng.choice([1, 3, 8, 20, 50]))
    if fate < 0.12 or t >= now:
        return  # still being worked on (some of these are past their SLA by now)
    if fate < 0.25:
        tickets.transition(
            s,
            ticket,
            Status.PENDING,
            actor=agent,
            now=t,
            reason=rng.choice(["customer", "customer", "third_party"]),
        )
        return
    if fate < 0.35:  # a second round with the customer
        tickets.add_comment(
            s, ticket, author=customer, body="Still happening, sorry.", channel=row["source"], now=t
        )
        t += timedelta(hours=2)
        tickets.add_comment(s, ticket, author=agent, body="Thanks, trying another fix.", by_agent=True, now=t)
    if t >= now:
        return
    tickets.transition(s, ticket, Status.RESOLVED, actor=agent, now=t, resolution="solved")
    t += timedelta(days=rng.choice([1, 2, 3]))
    if fate > 0.92 and t < now:  # reopened by the customer, resolved again
        tickets.customer_replied(s, ticket, actor=customer, now=t)
        t += timedelta(hours=4)
        if t < now:
            tickets.transition(s, ticket, Status.RESOLVED, actor=agent, now=t, resolution="solved")
        return
    if t < now and fate < 0.8:
        tickets.transition(s, ticket, Status.CLOSED, actor="auto-close", now=t)


def _reply(row: dict, rng: random.Random) -> str:
    return rng.choice(
        [
            f"Hi, thanks for reporting this. I'm looking at the {row['service']} issue now.",
            "Thanks, I can reproduce it. Could you try signing out and in again?",
            f"I've picked this up for {row['assignment_group']}; I'll update you within the hour.",
        ]
    )
