"""PostgreSQL's pages read per ticket stored, by table and index, step by step: which read grows
with the store, in a count the machine's load does not move.

Run it beside a bench that writes tickets into a throw-away schema of the same database
(``bench_service.py --database postgresql``, ``bench_store.py --growth``): every ``--every``
seconds it reads PostgreSQL's own counters for the schemas matching ``--schema``
(``pg_statio_user_tables`` / ``_indexes``: buffer hits and reads, heap, index and TOAST;
``pg_stat_user_tables``: sequential scans' rows, updates and HOT updates) and prints, per ticket
stored in that step, the pages of each table and index that read the most. A line that rises from
step to step is a read that grows with the store; the first full step is the same-run reference
each later one is compared with. It stops once tickets have been stored and then none for two
steps (the bench ended), and prints the first and last full steps side by side.

Server CPU per intake (``bench_service.py``'s db CPU column) moves with the machine's load;
pages do not. Round 8 (``pgserver``) found the growing reads this way (bench/README.md).

    nice .venv/bin/python bench/pg_pages.py --every 20 &
    nice .venv/bin/python bench/bench_service.py --database postgresql --sustained 120 ...
"""

from __future__ import annotations

import argparse
import os
import time

import psycopg

_TABLES = """SELECT relname, coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0),
    coalesce(toast_blks_hit, 0) + coalesce(toast_blks_read, 0)
    + coalesce(tidx_blks_hit, 0) + coalesce(tidx_blks_read, 0)
    FROM pg_statio_user_tables WHERE schemaname LIKE %s"""
_INDEXES = """SELECT relname || '.' || indexrelname, coalesce(idx_blks_hit, 0) + coalesce(idx_blks_read, 0)
    FROM pg_statio_user_indexes WHERE schemaname LIKE %s"""
_ROWS = """SELECT relname, coalesce(seq_tup_read, 0), n_tup_ins, n_tup_upd, n_tup_hot_upd
    FROM pg_stat_user_tables WHERE schemaname LIKE %s"""
PAGES = ("heap", "toast", "index")


def conninfo(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def snapshot(conn, schema: str) -> dict[tuple[str, str], int]:
    """The counters now, by (kind, relation), summed over the matching schemas."""
    conn.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one frozen view
    out: dict[tuple[str, str], int] = {}

    def add(key: tuple[str, str], value: int) -> None:
        out[key] = out.get(key, 0) + int(value)

    for name, heap, toast in conn.execute(_TABLES, (schema,)):
        add(("heap", name), heap)
        add(("toast", name), toast)
    for name, pages in conn.execute(_INDEXES, (schema,)):
        add(("index", name), pages)
    for name, seq, ins, upd, hot in conn.execute(_ROWS, (schema,)):
        for kind, value in (("seq rows", seq), ("inserted", ins), ("updated", upd), ("hot", hot)):
            add((kind, name), value)
    return out


def per_ticket(before: dict, after: dict) -> tuple[int, dict[tuple[str, str], float]]:
    """Tickets stored between two snapshots, and each counter's growth per ticket."""
    tickets = after.get(("inserted", "tickets"), 0) - before.get(("inserted", "tickets"), 0)
    if tickets <= 0:
        return 0, {}
    return tickets, {key: (value - before.get(key, 0)) / tickets for key, value in after.items()}


def show(step: dict[tuple[str, str], float], top: int) -> list[str]:
    pages = sorted(((v, k) for k, v in step.items() if k[0] in PAGES and v > 0), reverse=True)
    lines = [f"    pages per ticket, all relations: {sum(v for v, _ in pages):7.1f}"]
    lines += [f"    {kind:<6} {name:<52} {v:7.1f}" for v, (kind, name) in pages[:top]]
    seq = sorted(((v, k[1]) for k, v in step.items() if k[0] == "seq rows" and v >= 0.5), reverse=True)
    if seq:
        lines.append(
            "    rows read by sequential scans per ticket: " + ", ".join(f"{n} {v:.1f}" for v, n in seq)
        )
    return lines


def side_by_side(first: dict, last: dict, top: int) -> list[str]:
    keys = sorted(
        {k for k in first.keys() | last.keys() if k[0] in PAGES},
        key=lambda k: -max(first.get(k, 0.0), last.get(k, 0.0)),
    )[:top]
    total = [sum(v for k, v in s.items() if k[0] in PAGES) for s in (first, last)]
    lines = ["| relation | first step | last step |", "|---|---|---|"]
    lines.append(f"| all (pages per ticket) | {total[0]:.1f} | {total[1]:.1f} |")
    lines += [
        f"| {kind} {name} | {first.get((kind, name), 0):.1f} | {last.get((kind, name), 0):.1f} |"
        for kind, name in keys
    ]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url", default=os.environ.get("TRIAGE_TEST_POSTGRES_URL", ""), help="the bench's database"
    )
    p.add_argument("--schema", default="triage_bench_%", help="schemas to count (a LIKE pattern)")
    p.add_argument("--every", type=float, default=20, help="seconds per step")
    p.add_argument("--top", type=int, default=12, help="relations listed per step")
    p.add_argument("--timeout", type=float, default=1800, help="stop after this many seconds")
    args = p.parse_args()
    if not args.url:
        p.error("no database: --url or TRIAGE_TEST_POSTGRES_URL")
    steps: list[tuple[int, dict]] = []
    idle, start = 0, time.monotonic()
    with psycopg.connect(conninfo(args.url), autocommit=True) as conn:
        before = snapshot(conn, args.schema)
        while time.monotonic() - start < args.timeout:
            time.sleep(args.every)
            after = snapshot(conn, args.schema)
            tickets, step = per_ticket(before, after)
            before = after
            if not tickets:
                idle += 1 if steps else 0
                if idle >= 2:
                    break
                continue
            idle = 0
            steps.append((tickets, step))
            stored = after.get(("inserted", "tickets"), 0)
            print(f"step {len(steps)}: {tickets} tickets stored, {stored} in all", flush=True)
            print("\n".join(show(step, args.top)), flush=True)
    full = [s for n, s in steps if n >= 50] or [s for _, s in steps]  # a bench's tail step: a handful
    if len(full) >= 2:
        print("\nfirst and last full step (pages per ticket stored):")
        print("\n".join(side_by_side(full[0], full[-1], args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
