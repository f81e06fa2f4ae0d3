"""Ticketing-core throughput: intake (classify + rules + store commit + SLA start) and the
escalation sweep over many open tickets, on SQLite (file, WAL) and PostgreSQL.

* intake: ``--intake`` tickets through ``triage.store.intake.intake`` one transaction
  each (what ``POST /v1/tickets`` does minus HTTP), with a real bundle when
  ``--bundle`` is given, else a constant stand-in triager (then the figure is the
  store + rules + SLA cost alone, and the table says so);
* processes: ``--procs N`` adds rows with N processes writing at once (each its own
  ``Store``, as gunicorn's workers are): ``intake_many`` of ``--batch`` in each, and
  group commit with ``--proc-clients`` threads in each. On a 2-core machine that is the
  store path's deployed shape; CPU ms is then the sum over the processes;
* on PostgreSQL the notes also give the database server's CPU per ticket (its backends
  for this database, read from /proc: the server runs on this machine), which shares
  the same cores;
* sweep: ``--open`` open tickets with both SLA clocks, bulk-loaded, then
  (a) a sweep when nothing is due (the steady state: an index range scan), and
  (b) a sweep when 1 % of the clocks just crossed a level (fires, events, outbox).

    .venv/bin/python bench/bench_store.py                       # 100,000 open tickets
    .venv/bin/python bench/bench_store.py --open 20000 --backends sqlite
    TRIAGE_TEST_POSTGRES_URL=postgresql+psycopg://... .venv/bin/python bench/bench_store.py

PostgreSQL runs in a throw-away schema that is dropped afterwards.

Before and after on one machine (its load moves between runs): ``--before DIR`` (another
checkout of the code, e.g. ``git archive <commit> triage | tar -x -C DIR``) runs the same
table for both trees, alternately, ``--rounds`` times, each in a process of its own with
that tree's ``triage`` imported, then prints each row's medians side by side:

    nice .venv/bin/python bench/bench_store.py --open 0 --clients 1 --grouped 16 --many '' \
        --backends postgresql --before /tmp/before --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

# One OpenMP thread, as a served worker has (service/gunicorn_conf.py): threadpool_limits(1)
# below does not reach faiss, loaded later by the open-ticket index, whose default 2 threads
# spin after every single-vector add: 0.5-2 ms of process CPU per intake once the index is IVF
os.environ.setdefault("OMP_NUM_THREADS", "1")

if "--tree" in sys.argv:  # a --before comparison's child: the tree measured is imported first
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()))

from sqlalchemy import create_engine, insert, make_url, text  # noqa: E402 - after the tree's path

from triage.rules import RuleSet  # noqa: E402
from triage.sla import Calendar, Clock  # noqa: E402
from triage.store import Store, clocks  # noqa: E402
from triage.store.intake import intake, intake_grouped, intake_many  # noqa: E402
from triage.store.tables import SlaClockRow, TicketRow  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
SUBJECTS = [
    "VPN down since this morning",
    "Printer jams on floor 3",
    "Password reset please",
    "Outlook crashes when opening calendar",
    "Need access to the finance share",
]


class StandInTriager:
    """Constant answers in the Triager's shape (no model): isolates the store's cost."""

    bundle_id = "stand-in"

    def classify(self, items, policy=None, **kwargs):
        fields = {
            "category": {"label": "Network", "probability": 0.97, "decision": "apply"},
            "priority": {"label": "3", "probability": 0.91, "decision": "apply"},
            "team": {"label": "Net", "probability": 0.6, "decision": "suggest"},
        }
        return [{"fields": fields, "bundle_id": self.bundle_id} for _ in items]


def open_store(kind: str, workdir: Path):
    if kind == "sqlite":
        store = Store(f"sqlite:///{workdir / 'bench.db'}")
        store.upgrade()
        return store, lambda: store.dispose()
    url = os.environ.get("TRIAGE_TEST_POSTGRES_URL") or PG_DEFAULT
    schema = f"triage_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # the schema's name as the connections' application_name: server_cpu_ms counts only them
    named = make_url(url).update_query_dict({"application_name": schema})
    store = Store(named.render_as_string(hide_password=False), schema=schema)
    store.bench_admin = admin  # type: ignore[attr-defined]
    store.upgrade()

    def drop():
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return store, drop


class TimedTriager:
    """Wraps a triager to report how much of intake is classification."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds = inner, 0.0
        self.bundle_id = getattr(inner, "bundle_id", "")

    def classify(self, items, policy=None, **kwargs):
        start = time.perf_counter()
        try:
            return self.inner.classify(items, policy, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name):  # encoder_reference, manifest, ...
        return getattr(self.inner, name)


def floor_commits(store: Store, n: int) -> list[float]:
    """The floor: one tiny row per write transaction, as the store opens them (ms each)."""
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (v TEXT)"))
    lat = []
    for i in range(n):
        start = time.perf_counter()
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_floor (v) VALUES (:v)"), {"v": f"row {i}"})
        lat.append((time.perf_counter() - start) * 1000)
    return lat


def _payload(i: int) -> dict:
    return {
        "subject": SUBJECTS[i % len(SUBJECTS)],
        "body": f"ticket {i}",
        "requester": f"user{i % 50}@example.org",
        "affected_service": "vpn",
    }


def bench_intake(
    store: Store,
    n: int,
    clients: int,
    triager,
    rules,
    encoder=None,
    tag: str = "",
    mode: str = "session",
    batch: int = 100,
) -> tuple[list[float], float]:
    """``n`` tickets from ``clients`` threads; (latencies ms, wall s).

    ``mode``: ``session`` is one unit of work (session, transaction) per ticket, as
    before group commit; ``grouped`` is ``intake_grouped`` (what ``POST /v1/tickets``
    does: concurrent intakes share transactions); ``many`` hands ``batch`` tickets at
    a time to ``intake_many`` (a mail poll, a bulk import): the latency is then per
    call, the rate per ticket.
    """
    from triage.ticket import Ticket

    triager.classify([Ticket(subject="warm up", body="the encoder loads lazily")])
    if encoder is not None:
        encoder.encode(["warm up"])
    triager.seconds = 0.0
    latencies: list[float] = []
    lock = threading.Lock()
    common = dict(actor="bench", triager=triager, ruleset=rules, encoder=encoder, now=NOW, auto_assign=False)

    def one(i: int) -> None:
        key = f"bench-{tag}-{i}"
        if mode == "grouped":
            intake_grouped(store, _payload(i), idempotency_key=key, **common)
            return
        with store.session() as session:
            intake(session, _payload(i), idempotency_key=key, **common)

    def many(ids: list[int]) -> None:
        results = intake_many(
            store, [_payload(i) for i in ids], keys=[f"bench-{tag}-{i}" for i in ids], **common
        )
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise errors[0]

    def work(mine: range) -> None:
        out = []
        if mode == "many":
            ids = list(mine)
            for lo in range(0, len(ids), batch):
                start = time.perf_counter()
                many(ids[lo : lo + batch])
                out.append((time.perf_counter() - start) * 1000)
        else:
            for i in mine:
                start = time.perf_counter()
                one(i)
                out.append((time.perf_counter() - start) * 1000)
        with lock:
            latencies.extend(out)

    threads = [threading.Thread(target=work, args=(range(c, n, clients),)) for c in range(clients)]
    groups = store.committer.groups
    start, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bench_intake.cpu_ms = (time.process_time() - cpu) * 1000 / max(n, 1)
    bench_intake.groups = store.committer.groups - groups
    return latencies, time.perf_counter() - start


def bench_growth(store: Store, n: int, step: int, clients: int, rules, triager, encoder) -> list[str]:
    """Does an intake cost more as the store fills? ``n`` tickets by group commit from
    ``clients`` threads, with the duplicate search (``encoder``; ``hashing`` if none was
    given), real ticket texts of ../shared/data when there (else the stand-in subjects), each
    ticket timed as it arrives; one line per ``step`` tickets: this process's CPU ms and, on
    PostgreSQL, the server's CPU ms per ticket. Flat lines are what a desk needs: each
    intake's work bounded whatever is stored."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_service import shared_intake_tickets

    if encoder is None:
        from triage.encoder import load_encoder

        encoder = load_encoder("hashing")
    texts = shared_intake_tickets(limit=n) or [_payload(i) for i in range(len(SUBJECTS) * 20)]
    out, done, lock = [], [0], threading.Lock()

    def payload(i: int) -> dict:
        t = texts[i % len(texts)]
        return {
            "subject": t["subject"],
            "body": f"{t['body']} ref {i}",
            "requester": f"user{i % 97}@example.org",
        }

    def work(ids: list[int]) -> None:
        for i in ids:
            intake_grouped(
                store,
                payload(i),
                idempotency_key=f"growth-{i}",
                actor="bench",
                triager=triager,
                ruleset=rules,
                encoder=encoder,
                now=datetime.now(timezone.utc),
            )

    for lo in range(0, n, step):
        ids = list(range(lo, min(n, lo + step)))
        server, cpu, wall = server_cpu_ms(store), time.process_time(), time.perf_counter()
        threads = [threading.Thread(target=work, args=(ids[c::clients],)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with lock:
            done[0] += len(ids)
        after = server_cpu_ms(store)
        db = f" {(after - server) / len(ids):5.2f}" if server is not None and after is not None else "     -"
        out.append(
            f"| {store.dialect:<10} | {done[0]:>6} | {(time.process_time() - cpu) * 1000 / len(ids):6.2f} |{db} | "
            f"{len(ids) / (time.perf_counter() - wall):7.1f} |"
        )
    return out


def bench_mail(
    store: Store, n: int, triager, rules, mode: str, batch: int, tag: str
) -> tuple[list[float], float]:
    """``n`` new-ticket e-mails (parsed in the timed part): ``one`` is ``inbox.receive_raw``
    each (a transaction each, what the poller's per-message handler does), ``many`` is
    ``inbox.receive_many`` of ``batch`` (a poll through group commit). Latency per call."""
    from triage.store import inbox

    raws = [
        f"From: user{i % 50}@example.org\nSubject: {SUBJECTS[i % len(SUBJECTS)]}\n"
        f"Message-ID: <{tag}-{i}@bench>\n\nticket {i}\n".encode()
        for i in range(n)
    ]
    common = dict(triager=triager, ruleset=rules, now=NOW)
    lat: list[float] = []
    groups = store.committer.groups
    start, cpu = time.perf_counter(), time.process_time()
    step = batch if mode == "many" else 1
    for lo in range(0, n, step):
        began = time.perf_counter()
        if mode == "many":
            got = inbox.receive_many(store, raws[lo : lo + step], **common)
        else:
            got = [inbox.receive_raw(store, raws[lo], **common)]
        if any(r.outcome != "created" for r in got):
            raise RuntimeError(f"mail bench: {[r.outcome for r in got]}")
        lat.append((time.perf_counter() - began) * 1000)
    bench_intake.cpu_ms = (time.process_time() - cpu) * 1000 / max(n, 1)
    bench_intake.groups = store.committer.groups - groups if mode == "many" else n
    return lat, time.perf_counter() - start


def server_cpu_ms(store: Store) -> float | None:
    """CPU ms used so far by the PostgreSQL backends serving this store: those of its
    application_name (its schema, :func:`open_store`), else of its database (then any other
    client of that database, a test suite, is counted too). None: not measurable here, e.g.
    SQLite or a server on another machine."""
    if store.dialect != "postgresql":
        return None
    name = store.engine.url.database or ""
    admin, app = getattr(store, "bench_admin", None), store.engine.url.query.get("application_name")
    pids: set[str] | None = None
    if admin is not None and app:
        with admin.connect() as conn:
            pids = {
                str(pid)
                for pid in conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE application_name = :app"), {"app": app}
                ).scalars()
            }
    total, found = 0, False
    for pid in os.listdir("/proc") if pids is None else pids:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().split(b"\0")[0].split()
            # "postgres: [cluster:] user database host(port) state"
            if not words or words[0] != b"postgres:" or name.encode() not in words[1:4]:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total, found = total + int(fields[11]) + int(fields[12]), True
    return total * 1000 / os.sysconf("SC_CLK_TCK") if found else None


def _proc_worker(url, schema, mode, ids, batch, clients, tag, ready, start, out, finish) -> None:
    """One writer process of ``bench_procs``: its own Store, warmed up, then its tickets."""
    rules, triager = RuleSet.load(), StandInTriager()
    store = Store(url, schema=schema)
    common = dict(actor="bench", triager=triager, ruleset=rules, now=NOW, auto_assign=False)
    for w in range(6):  # compiled statements cached, PostgreSQL's prepared (after 5 runs)
        intake_many(
            store, [_payload(i) for i in range(5)], keys=[f"{tag}-warm{w}-{i}" for i in range(5)], **common
        )
    ready.put(os.getpid())
    start.wait()
    lat: list[float] = []
    lock = threading.Lock()

    def work(mine: list[int]) -> None:
        step = batch if mode == "many" else 1
        out_ = []
        for lo in range(0, len(mine), step):
            part = mine[lo : lo + step]
            began = time.perf_counter()
            got = intake_many(store, [_payload(i) for i in part], keys=[f"{tag}-{i}" for i in part], **common)
            if any(isinstance(r, Exception) for r in got):
                raise next(r for r in got if isinstance(r, Exception))
            out_.append((time.perf_counter() - began) * 1000)
        with lock:
            lat.extend(out_)

    threads = [threading.Thread(target=work, args=(ids[c::clients],)) for c in range(clients)]
    groups, cpu = store.committer.groups, time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(((time.process_time() - cpu) * 1000, lat, store.committer.groups - groups))
    finish.wait(timeout=120)  # the connections stay until the parent read the server's CPU
    store.dispose()


def bench_procs(store: Store, n: int, procs: int, mode: str, batch: int, clients: int, tag: str):
    """``n`` tickets written by ``procs`` processes at once (``many``: intake_many of
    ``batch``; ``grouped``: ``clients`` threads each through group commit); (latencies, wall)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a clean interpreter each, as a worker is
    ready, out, start, finish = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    workers = [
        ctx.Process(
            target=_proc_worker,
            args=(
                store.url,
                store.schema,
                mode,
                list(range(p, n, procs)),
                batch,
                1 if mode == "many" else clients,
                f"{tag}-p{p}",
                ready,
                start,
                out,
                finish,
            ),
        )
        for p in range(procs)
    ]
    for w in workers:
        w.start()
    for _ in workers:
        ready.get(timeout=120)
    server = server_cpu_ms(store)
    began = time.perf_counter()
    start.set()
    done = [out.get(timeout=600) for _ in workers]
    wall = time.perf_counter() - began
    after = server_cpu_ms(store)
    finish.set()
    for w in workers:
        w.join()
    bench_intake.cpu_ms = sum(d[0] for d in done) / n
    bench_intake.groups = sum(d[2] for d in done)
    bench_intake.server_ms = None if server is None or after is None else (after - server) / n
    return [x for d in done for x in d[1]], wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def line(kind: str, what: str, lat: list[float], wall: float, cpu_ms: float, items: int = 0) -> str:
    """A table row; ``items`` (tickets, when a call carries many) sets the rate's numerator."""
    return (
        f"| {kind:<10} | {what:<36} | {len(lat):>5} | {statistics.median(lat):>7.2f} | "
        f"{pct(lat, 0.99):>7.2f} | {max(lat):>7.1f} | {(items or len(lat)) / wall:>8.1f} | "
        f"{cpu_ms:>6.2f} |"
    )


def load_open_tickets(store: Store, n: int, due_fraction: float, chunk: int = 5000) -> float:
    """Bulk-load ``n`` open tickets with running 24x7 clocks; ``due_fraction`` cross 75 % at NOW."""
    cal = Calendar.always()
    start = time.perf_counter()
    due_every = max(1, round(1 / due_fraction)) if due_fraction else 0
    with store.engine.begin() as conn:
        first_id = (conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM tickets")).scalar() or 0) + 1
        for lo in range(0, n, chunk):
            ids = range(first_id + lo, first_id + min(n, lo + chunk))
            conn.execute(
                insert(TicketRow),
                [
                    {
                        "id": i,
                        "subject": SUBJECTS[i % 5],
                        "body": "",
                        "channel": "api",
                        "status": "assigned" if i % 2 else "new",
                        "category": "Network",
                        "priority": 3,
                        "affected_service": "vpn",
                        "queue": "Net",
                        "team": "Net",
                        "extra": {},
                        "tags": [],
                        "escalation_level": 0,
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for i in ids
                ],
            )
            conn.execute(insert(SlaClockRow), [row for i in ids for row in _clock_rows(i, cal, due_every)])
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - start


def _clock_rows(ticket_id: int, cal: Calendar, due_every: int) -> list[dict]:
    rows = []
    for kind, minutes in (("first_response", 240.0), ("resolution", 2400.0)):
        due_now = due_every and ticket_id % due_every == 0 and kind == "first_response"
        # due ones cross the 75 % level 30 s before NOW; the others started 5 minutes ago
        started = (
            NOW - timedelta(minutes=minutes * 0.75, seconds=30) if due_now else NOW - timedelta(minutes=5)
        )
        clock = Clock.start(started, minutes, cal, kind)
        rows.append(
            {
                "ticket_id": ticket_id,
                "kind": kind,
                "policy": "bench",
                "state": {
                    "clock": clock.to_dict(),
                    "targets": {"3": minutes},
                    "fired": [],
                    "levels": [["warn", 0.75], ["escalate", 1.0]],
                },
                "running": True,
                "paused": False,
                "breached": False,
                "due_at": started + timedelta(minutes=minutes),
                "next_level_at": started + timedelta(minutes=minutes * 0.75),
            }
        )
    return rows


def timed_sweep(store: Store, now: datetime) -> tuple[float, int]:
    start = time.perf_counter()
    fired = clocks.sweep_all(store, now)
    return time.perf_counter() - start, len(fired)


def profile(kind: str, args, triager, rules) -> None:
    """cProfile of ``--intake`` tickets in this thread (``--profile session``: one transaction
    each; ``many``: intake_many of ``--batch``), after a warm-up; top functions by cumulative time."""
    import cProfile
    import io
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        store, cleanup = open_store(kind, Path(tmp))
        try:
            for tag in ("warm", "plain", "profiled"):
                # the thread's CPU time, not the wall clock: under load that is mostly waiting for a core
                profiler = cProfile.Profile(time.thread_time) if tag == "profiled" else None
                cpu = time.process_time()
                if profiler is not None:
                    profiler.enable()
                bench_intake_inline(store, args.intake, triager, rules, args.profile, args.batch, tag)
                if profiler is not None:
                    profiler.disable()
                if tag == "plain":
                    cpu_ms = (time.process_time() - cpu) * 1000 / args.intake
                    print(
                        f"{kind}: {args.profile}, {args.intake} tickets, {cpu_ms:.2f} ms CPU each without the profiler"
                    )
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())
        finally:
            cleanup()


def bench_intake_inline(store: Store, n: int, triager, rules, mode: str, batch: int, tag: str) -> None:
    """``n`` tickets in the calling thread (cProfile sees only its own thread)."""
    common = dict(actor="bench", triager=triager, ruleset=rules, now=NOW, auto_assign=False)
    if mode == "many":
        for lo in range(0, n, batch):
            ids = range(lo, min(n, lo + batch))
            intake_many(store, [_payload(i) for i in ids], keys=[f"{tag}-{i}" for i in ids], **common)
        return
    for i in range(n):
        with store.session() as session:
            intake(session, _payload(i), idempotency_key=f"{tag}-{i}", **common)


def _plan(args) -> list[tuple[str, int]]:
    """(mode, clients) rows in print order: each mode at each of its client counts."""
    rows = [("session", int(c)) for c in args.clients.split(",") if c]
    rows += [("grouped", int(c)) for c in args.grouped.split(",") if c]
    rows += [("many", int(c)) for c in args.many.split(",") if c]
    if args.procs:  # the deployed shape: several processes writing at once
        rows += [("procs-many", args.procs), ("procs-grouped", args.procs)]
    if args.mail:  # mail after the tickets: one message a transaction, then a poll's batch
        rows += [("mail-one", 1), ("mail-many", 1)]
    return rows


def _server_note() -> str:
    server = getattr(bench_intake, "server_ms", None)
    return "" if server is None else f", db server CPU {server:.2f} ms/ticket"


def run(kind: str, args, triager, rules, encoder, label: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store, cleanup = open_store(kind, Path(tmp))
        try:
            cpu = time.process_time()
            floor = floor_commits(store, args.intake)
            floor_cpu = (time.process_time() - cpu) * 1000 / args.intake
            print(line(kind, "floor: one-row write transaction", floor, sum(floor) / 1000, floor_cpu))
            for mode, clients in _plan(args):
                if mode.startswith("mail"):
                    lat, wall = bench_mail(
                        store,
                        args.mail,
                        triager,
                        rules,
                        mode[5:],
                        args.batch,
                        f"{mode}-{uuid.uuid4().hex[:6]}",
                    )
                    what = (
                        "mail, receive_raw each"
                        if mode == "mail-one"
                        else f"mail, receive_many of {args.batch}"
                    )
                    notes = f" {bench_intake.groups} transactions |"
                    print(line(kind, what, lat, wall, bench_intake.cpu_ms, items=args.mail) + notes)
                    continue
                if mode.startswith("procs"):
                    sub = mode[6:]
                    lat, wall = bench_procs(
                        store,
                        args.intake,
                        clients,
                        sub,
                        args.batch,
                        args.proc_clients,
                        f"{mode}-{uuid.uuid4().hex[:6]}",
                    )
                    what = (
                        f"intake_many of {args.batch}, {clients} processes"
                        if sub == "many"
                        else f"group commit, {args.proc_clients} clients x {clients} procs"
                    )
                    notes = f" {bench_intake.groups} transactions{_server_note()} |"
                    print(line(kind, what, lat, wall, bench_intake.cpu_ms, items=args.intake) + notes)
                    continue
                server = server_cpu_ms(store)
                lat, wall = bench_intake(
                    store,
                    args.intake,
                    clients,
                    triager,
                    rules,
                    encoder,
                    tag=f"{mode}{clients}",
                    mode=mode,
                    batch=args.batch,
                )
                share = triager.seconds / args.intake * 1000
                what = {
                    "session": f"intake, {clients} client(s)",
                    "grouped": f"group commit, {clients} client(s)",
                    "many": f"intake_many of {args.batch}, {clients} client(s)",
                }[mode]
                after = server_cpu_ms(store)
                bench_intake.server_ms = (
                    None if server is None or after is None else (after - server) / args.intake
                )
                notes = (
                    f" classify {share:.1f} ms/ticket, {bench_intake.groups} transactions{_server_note()} |"
                )
                print(line(kind, what, lat, wall, bench_intake.cpu_ms, items=args.intake) + notes)
                triager.seconds = 0.0
            if not args.open:
                return
            load = load_open_tickets(store, args.open, 0.01)
            print(f"{kind:<10} bulk load: {args.open} open tickets + {2 * args.open} clocks in {load:.1f} s")
            idle, n_idle = timed_sweep(store, NOW - timedelta(minutes=1))
            print(f"{kind:<10} sweep, nothing due:  {idle * 1000:8.1f} ms ({n_idle} fired)")
            busy, n_busy = timed_sweep(store, NOW)
            print(f"{kind:<10} sweep, 1 % due:      {busy * 1000:8.1f} ms ({n_busy} fired)")
            again, n_again = timed_sweep(store, NOW)
            print(f"{kind:<10} sweep repeated:      {again * 1000:8.1f} ms ({n_again} fired)")
        finally:
            cleanup()


def _child_argv(argv: list[str]) -> list[str]:
    """This run's arguments without ``--before DIR`` and ``--rounds N`` (the child's own)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--before", "--rounds"):
            skip = True
        elif not arg.startswith(("--before=", "--rounds=")):
            out.append(arg)
    return out


def _row_figures(row: str) -> tuple[str, float, float, float | None] | None:
    """(store and what, per s, CPU ms, server CPU ms or None) of a table row; None: no row."""
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    if len(cells) < 8 or cells[0] in ("store", "") or cells[0].startswith("-"):
        return None
    server = None
    if "db server CPU" in row:
        server = float(row.split("db server CPU")[1].split()[0])
    try:
        return f"{cells[0]} | {cells[1]}", float(cells[6]), float(cells[7]), server
    except ValueError:
        return None


def compare(args) -> None:
    """``--before``: the same table for the other tree and this one, alternately, each run in
    a process of its own; then each row's medians side by side (see the module's docstring)."""
    import subprocess

    trees = {"before": Path(args.before).resolve(), "after": Path(__file__).resolve().parents[1]}
    argv = _child_argv(sys.argv[1:])
    seen: dict[tuple[str, str], list[tuple[float, float, float | None]]] = {}
    order: list[str] = []
    for round_ in range(args.rounds):
        for name, tree in trees.items():
            print(f"# round {round_ + 1}, {name} ({tree}), load average {os.getloadavg()[0]:.2f}", flush=True)
            done = subprocess.run(
                [sys.executable, __file__, *argv, "--tree", str(tree)],
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if done.returncode != 0:
                raise SystemExit(f"{name}: {done.stderr[-3000:]}")
            for row in done.stdout.splitlines():
                figures = _row_figures(row)
                if figures is None:
                    continue
                print(f"{name:<6} {row}", flush=True)
                what, *values = figures
                if what not in order:
                    order.append(what)
                seen.setdefault((what, name), []).append(tuple(values))  # type: ignore[arg-type]
    print(
        f"\nMedians of {args.rounds} round(s), before = {trees['before']}:\n\n"
        "| store | what | per s before | after | CPU ms before | after | server CPU ms before | after |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for what in order:
        cells = []
        for i in range(3):
            for name in trees:
                values = [v[i] for v in seen.get((what, name), []) if v[i] is not None]
                cells.append(f"{statistics.median(values):.2f}" if values else "-")
        print(f"| {what} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--open", type=int, default=100_000, help="open tickets for the sweep (0: intake only)"
    )
    parser.add_argument("--intake", type=int, default=1000, help="tickets per intake measurement")
    parser.add_argument(
        "--clients", default="1,4", help="threads for one-transaction-per-ticket intake ('' : none)"
    )
    parser.add_argument(
        "--grouped", default="1,4,16", help="threads for group-commit intake (intake_grouped)"
    )
    parser.add_argument("--many", default="1", help="threads for batch intake (intake_many)")
    parser.add_argument("--batch", type=int, default=100, help="tickets per intake_many call")
    parser.add_argument(
        "--procs", type=int, default=0, help="also rows with N writer processes at once (0: none)"
    )
    parser.add_argument(
        "--proc-clients", type=int, default=4, help="threads per process in the --procs group-commit row"
    )
    parser.add_argument(
        "--mail", type=int, default=0, help="also N e-mails: receive_raw each vs receive_many of --batch"
    )
    parser.add_argument(
        "--profile",
        choices=("session", "many"),
        help="instead of the table: cProfile of --intake tickets (one transaction each, or intake_many)",
    )
    parser.add_argument("--top", type=int, default=45, help="functions listed by --profile")
    parser.add_argument(
        "--encoder",
        default="",
        help="also encode for duplicate search: hashing (no weights), minilm-onnx or minilm",
    )
    parser.add_argument(
        "--growth",
        type=int,
        default=0,
        help="instead of the table: N tickets by group commit at --proc-clients threads with the "
        "duplicate search, CPU ms per ticket for each --growth-step (does intake cost more as the store fills?)",
    )
    parser.add_argument("--growth-step", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--before", help="another checkout of the code: the same table for it and this tree, alternately"
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --before: runs of each tree")
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # a --before child: the tree imported
    parser.add_argument("--bundle", help="model bundle folder for real classification")
    args = parser.parse_args()
    if args.before:
        compare(args)
        return
    rules = RuleSet.load()
    if args.bundle:
        from triage.predict import Triager

        triager, label = Triager.from_bundle(args.bundle), f"bundle {Path(args.bundle).name}"
    else:
        triager, label = StandInTriager(), "stand-in triager: store+rules+SLA only"
    triager = TimedTriager(triager)
    encoder = None
    if args.encoder:
        from triage.encoder import load_encoder

        encoder = load_encoder(args.encoder)
        label += f", duplicate search on {args.encoder} vectors"
    print(
        f"{label}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n"
        "CPU ms: this process's CPU time per ticket (all threads; the database server's "
        "is not counted), which other load on the machine does not inflate as it does "
        "wall-clock latency\n"
    )
    if args.growth:
        print(
            f"| store      | stored | CPU ms | server CPU ms | per s | ({args.proc_clients} clients, group commit)"
        )
        print("|------------|--------|--------|---------------|-------|")
        for kind in args.backends.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                store, cleanup = open_store(kind.strip(), Path(tmp))
                try:
                    from threadpoolctl import threadpool_limits

                    with threadpool_limits(1):  # as in a served worker (service/gunicorn_conf.py)
                        lines = bench_growth(
                            store,
                            args.growth,
                            args.growth_step,
                            args.proc_clients,
                            rules,
                            triager.inner,
                            encoder,
                        )
                    print("\n".join(lines), flush=True)
                finally:
                    cleanup()
        return
    if args.profile:
        for kind in args.backends.split(","):
            profile(kind.strip(), args, triager.inner, rules)
        return
    print(
        f"| {'store':<10} | {'what':<36} | {'n':>5} | {'p50 ms':>7} | {'p99 ms':>7} | "
        f"{'max ms':>7} | {'per s':>8} | CPU ms | notes |"
    )
    print(f"|{'-' * 12}|{'-' * 38}|{'-' * 7}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 10}|--------|-------|")
    for kind in args.backends.split(","):
        run(kind.strip(), args, triager, rules, encoder, label)


if __name__ == "__main__":
    main()
