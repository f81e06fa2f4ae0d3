"""Ticket search at scale: p50/p95 of a two-word query with paging, full text vs a LIKE scan.

Loads ``--tickets`` synthetic tickets (default 100,000; invented help-desk text, no
shared data) into a migrated store, then times ``triage.store.search.find`` (the
query the agent workspace and ``GET /v1/tickets?q=`` run: match + total count (exact up to
1,000, then "1,000+") +
one page of 25, sorted by priority) for two-word queries on pages 1 and 3. The
reference, measured in the same run on the same rows and queries, is the same
call with ``method="like"``: the ``LIKE '%word%'`` scan a store without a
full-text index would do.

    .venv/bin/python bench/bench_search.py                        # both backends, 100,000
    .venv/bin/python bench/bench_search.py --tickets 20000 --backends sqlite
    TRIAGE_TEST_POSTGRES_URL=postgresql+psycopg://... .venv/bin/python bench/bench_search.py

PostgreSQL runs in a throw-away schema that is dropped afterwards. Timings are
wall clock on a shared machine: compare the two columns, not runs.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from triage.store import Store, search
from triage.store.tables import TicketRow

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 9, 1, tzinfo=timezone.utc)
THINGS = [
    "printer",
    "laptop",
    "vpn",
    "password",
    "outlook",
    "teams",
    "sharepoint",
    "monitor",
    "keyboard",
    "headset",
    "badge",
    "wifi",
    "payroll",
    "invoice",
    "account",
    "mailbox",
    "docking",
    "scanner",
    "browser",
    "certificate",
    "license",
    "phone",
    "tablet",
    "server",
]
STATES = [
    "offline",
    "broken",
    "slow",
    "locked",
    "expired",
    "missing",
    "crashing",
    "frozen",
    "disconnected",
    "blocked",
    "denied",
    "failing",
    "flickering",
    "jammed",
    "stuck",
]
FILLER = [
    "since",
    "this",
    "morning",
    "after",
    "the",
    "update",
    "please",
    "help",
    "again",
    "every",
    "time",
    "I",
    "try",
    "to",
    "open",
    "it",
    "on",
    "floor",
    "two",
    "office",
    "cannot",
    "work",
    "urgent",
    "thanks",
    "colleague",
    "same",
    "issue",
    "yesterday",
]


def ticket_text(rng: random.Random) -> tuple[str, str]:
    thing, state = rng.choice(THINGS), rng.choice(STATES)
    words = [rng.choice(FILLER) for _ in range(rng.randint(12, 40))]
    for extra in rng.sample(THINGS, 2) + rng.sample(STATES, 2):
        words.insert(rng.randrange(len(words)), extra)
    return f"{thing.capitalize()} {state}", f"My {thing} is {state}. " + " ".join(words)


def load(store: Store, n: int, seed: int = 7) -> float:
    rng = random.Random(seed)
    start = time.perf_counter()
    batch = []
    with store.engine.begin() as conn:
        for i in range(n):
            subject, body = ticket_text(rng)
            at = T0 + timedelta(minutes=i)
            batch.append(
                {
                    "subject": subject,
                    "body": body,
                    "channel": "web",
                    "status": rng.choice(["new", "assigned", "in_progress", "resolved", "closed"]),
                    "priority": rng.randint(1, 4),
                    "queue": "triage",
                    "extra": {},
                    "tags": [],
                    "escalation_level": 0,
                    "created_at": at,
                    "updated_at": at,
                    "requester": f"user{rng.randint(1, 5000)}@acme.example",
                }
            )
            if len(batch) == 2000:
                conn.execute(insert(TicketRow), batch)
                batch = []
        if batch:
            conn.execute(insert(TicketRow), batch)
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE tickets"))
    return time.perf_counter() - start


def queries(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(THINGS)} {rng.choice(STATES)}" for _ in range(count)]


def time_search(store: Store, qs: list[str], method: str) -> tuple[list[float], int]:
    times, found = [], 0
    for i, q in enumerate(qs):
        offset = 0 if i % 2 == 0 else 50  # pages 1 and 3
        with store.session(readonly=True) as s:
            started = time.perf_counter()
            page = search.find(s, q=q, sort="priority", limit=25, offset=offset, method=method)
            times.append((time.perf_counter() - started) * 1000)
            found += page.total
    return times, found


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_backend(kind: str, n: int, count: int, like_count: int) -> list[str]:
    schema, admin = None, None
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-search-")
        store = Store(f"sqlite:///{Path(folder) / 'search.db'}")
    else:
        url = os.environ.get("TRIAGE_TEST_POSTGRES_URL") or PG_DEFAULT
        schema = f"bench_search_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        store = Store(url, schema=schema)
    try:
        store.upgrade()
        seconds = load(store, n)
        qs = queries(count)
        with store.session(readonly=True) as s:
            assert search.has_fulltext(s), "migration 0008's full-text index is missing"
        time_search(store, qs[:5], "auto")  # warm caches, as a running service has them
        fts, fts_found = time_search(store, qs, "auto")
        like, like_found = time_search(store, qs[:like_count], "like")
        fts_same, _ = fts[:like_count], None
        return [
            f"| {kind} | {n:,} | {seconds:.0f} s | full text (this) | {len(fts)} | "
            f"{pct(fts, 50):.1f} | {pct(fts, 95):.1f} | {fts_found / len(qs):.0f} |",
            f"| {kind} | {n:,} | | LIKE scan (reference) | {len(like)} | "
            f"{pct(like, 50):.1f} | {pct(like, 95):.1f} | {like_found / len(like):.0f} |",
            f"| {kind} | | | ratio p95 LIKE / full text | | | "
            f"{pct(like, 95) / max(pct(fts_same, 95), 1e-9):.1f}x | |",
        ]
    finally:
        store.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tickets", type=int, default=100_000, help="tickets to load (100,000)")
    p.add_argument("--queries", type=int, default=200, help="timed full-text queries (200)")
    p.add_argument(
        "--like-queries", type=int, default=20, help="timed LIKE-scan queries (20: each scans every ticket)"
    )
    p.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    args = p.parse_args()
    print(
        f"# ticket search, two-word query, page of 25 (pages 1 and 3), sort by priority, "
        f"with total count — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n"
    )
    print("| backend | tickets | load | method | queries | p50 ms | p95 ms | matches/query |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in [b.strip() for b in args.backends.split(",") if b.strip()]:
        for line in run_backend(kind, args.tickets, args.queries, args.like_queries):
            print(line, flush=True)


if __name__ == "__main__":
    main()
