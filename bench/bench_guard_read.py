"""Pages PostgreSQL reads for the mail-loop guard's part of the outbox claim, as a requester's
tickets of the hour grow: the bounded read the claim runs (``outbound._opened_bounded``: at most
``--per-hour`` tickets per notice's ticket) beside the whole-hour read it ran before (still
SQLite's, ``outbound._opened_in_window``), in the same schema, same run.

Pages (buffers of ``EXPLAIN (ANALYZE, BUFFERS)``) do not move with the machine's load. Each step
adds tickets one a second in the hour before now, every ``--share``-th of them the auto-responder's
(others' tickets between: a requester's rows spread over the heap as on a real desk), takes
``VACUUM ANALYZE`` and reads for a batch of ``--notices`` of its newest tickets.

    nice .venv/bin/python bench/bench_guard_read.py --database postgresql+psycopg://…/test_x
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, select, text  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from triage.store import Store, outbound  # noqa: E402
from triage.store.tables import TicketRow  # noqa: E402

NOW = datetime.now(timezone.utc).replace(microsecond=0)
BOT = "autoresponder@example.org"


def _pages(store, stmt, params: dict) -> tuple[int, int]:
    """(pages, rows) of ``stmt`` with its parameters inlined."""
    sql = str(
        stmt.params(**params).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    with store.engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql))
        conn.rollback()
    hit = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", plan)
    rows = re.search(r"actual rows=(\d+)", plan)
    assert hit and rows, plan
    return int(hit.group(1)) + int(hit.group(2) or 0), int(rows.group(1))


def _add(store, start: int, n: int, share: int) -> None:
    rows = [
        {
            "subject": f"ticket {i} " + "x" * 200,
            "requester": BOT if i % share == 0 else f"user{i % 500}@example.org",
            "status": "new",
            "created_at": NOW - timedelta(seconds=3600 * i // (start + n)),
            "updated_at": NOW,
        }
        for i in range(start, start + n)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(TicketRow.__table__), rows)
    with store.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE tickets")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--database", required=True, help="PostgreSQL URL (a throw-away schema is made and dropped)"
    )
    p.add_argument("--steps", default="1000,4000,16000,64000", help="tickets in the hour, cumulative")
    p.add_argument("--share", type=int, default=4, help="every n-th ticket is the auto-responder's")
    p.add_argument("--per-hour", type=int, default=outbound.RECEIPTS_PER_HOUR)
    p.add_argument("--notices", type=int, default=10, help="the batch: the bot's newest tickets")
    args = p.parse_args()
    schema = f"bench_guard_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.database)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    store = Store(args.database, schema=schema)
    try:
        store.upgrade()
        print(
            f"per_hour {args.per_hour}, a batch of {args.notices} notices of {BOT} (every {args.share}th ticket)"
        )
        print(
            f"{'tickets':>8} {'bot':>6} | {'bounded pages':>13} {'rows':>5} | {'whole hour pages':>16} {'rows':>6}"
        )
        stored = 0
        for total in (int(s) for s in args.steps.split(",")):
            _add(store, stored, total - stored, args.share)
            stored = total
            with store.engine.connect() as conn:
                newest = list(
                    conn.scalars(
                        select(TicketRow.id, TicketRow.created_at)
                        .where(TicketRow.requester == BOT)
                        .order_by(TicketRow.created_at.desc())
                        .limit(args.notices)
                    )
                )
                bot = conn.scalar(
                    select(text("count(*)")).select_from(TicketRow).where(TicketRow.requester == BOT)
                )
                oldest = conn.scalar(select(text("min(created_at)")).where(TicketRow.id.in_(newest)))
            bounded = _pages(
                store, outbound._opened_bounded(), {"notified": newest, "per_hour": args.per_hour}
            )
            since = oldest.replace(tzinfo=timezone.utc) - timedelta(hours=1) if oldest else NOW
            whole = _pages(
                store, outbound._opened_in_window(), {"requesters": [BOT], "since": since, "until": NOW}
            )
            print(f"{stored:>8} {bot:>6} | {bounded[0]:>13} {bounded[1]:>5} | {whole[0]:>16} {whole[1]:>6}")
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
