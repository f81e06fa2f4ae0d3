"""What the outbox's delivery loop costs served intake: the same bundle and store kind, the
loop off (``TRIAGE_MAIL_INTERVAL=0``) and on, one server start each, in one run.

Per row: intakes/s at ``--clients`` clients, worker CPU ms per intake (``/proc``), the
PostgreSQL backends' CPU ms per intake, and the delivery threads' own CPU per intake (the
``outbox`` loop and its ``outbox-doorbell`` watcher, found by name with ``py-spy dump`` and
read from ``/proc/<worker>/task/<tid>``), the delivery rounds the run took and the notices
they sent. Each ``MODE[@TREE]`` row may serve another checkout of the code (``TREE``, e.g.
``git archive <commit> triage triage_cli service bench | tar -x -C /tmp/before``), so a change
is measured against its base in the same run:

    nice .venv/bin/python bench/bench_mail_loop.py --bundle $B --database postgresql
    nice .venv/bin/python bench/bench_mail_loop.py --bundle $B --database sqlite --modes off,on@/tmp/before,on

The loop's cost per intake depends on the intake rate: a round has a fixed cost (the claim's
transaction, the outcome's) that the notices queued in its gap (``service.mailer.ROUND_GAP_S``)
share, so compare rows of one run, at similar rates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_service as bs  # noqa: E402
from serving import free_port, kill_after, stop_server, wait_ready  # noqa: E402


def thread_cpu(pid: int, tid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def delivery_threads(pids: list[int]) -> dict[str, list[tuple[int, int]]]:
    """``{thread name: [(worker pid, native thread id)]}`` of the outbox threads (py-spy dump)."""
    spy = Path(sys.executable).parent / "py-spy"
    found: dict[str, list[tuple[int, int]]] = {}
    for pid in pids:
        dump = subprocess.run(
            [str(spy), "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True
        ).stdout
        for tid, name in re.findall(r'Thread (\S+) \([^)]*\): "([^"]+)"', dump):
            if name.startswith("outbox"):
                found.setdefault(name, []).append((pid, int(tid, 0)))
    return found


def sent_rounds(url: str) -> tuple[int, int]:
    """(delivery rounds, notices sent) the run's store records (a round records one time)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rounds, sent = conn.execute(
                text("SELECT count(DISTINCT delivered_at), count(delivered_at) FROM outbox")
            ).one()
    finally:
        engine.dispose()
    return int(rounds), int(sent)


def one_row(args, spec: str, intake: list[dict]) -> dict:
    mode, _, tree = spec.partition("@")
    os.environ["TRIAGE_MAIL_INTERVAL"] = "0" if mode == "off" else str(args.interval)
    os.environ["TRIAGE_RATELIMIT_ENABLED"] = "false"
    ns = argparse.Namespace(kb=args.kb, encoder="", workers=2, threads=0)
    ns.database_url, drop = bs.bench_database(args.database)
    if args.database == "postgresql":
        from sqlalchemy.engine import make_url

        bs.DB_NAME = make_url(ns.database_url).database or ""
    bs.ROOT = Path(tree).resolve() if tree else HERE.parent
    port = free_port()
    proc = bs.start_server(ns, Path(args.bundle), port, bs.CACHE / f"bench-mail-loop-{port}.log")
    killer = kill_after(proc, 900)
    try:
        wait_ready(port, proc, 800)
        pids = bs.worker_pids(proc.pid)
        bs.sustained(port, intake, args.clients, args.warm, pids)  # the index, window, caches
        threads = delivery_threads(pids) if mode != "off" else {}
        before = {k: sum(thread_cpu(p, t) for p, t in v) for k, v in threads.items()}
        row = bs.sustained(port, intake, args.clients, args.seconds, pids)
        after = {k: sum(thread_cpu(p, t) for p, t in v) for k, v in threads.items()}
        rounds, sent = sent_rounds(ns.database_url)
        load = os.getloadavg()[0]
    finally:
        stop_server(proc, killer)
        drop()
    n = max(row["n"], 1)
    return {
        "row": spec,
        "per_s": round(row["per_s"], 1),
        "worker_ms": round(row["cpu_ms"], 2),
        "db_ms": round(row.get("db_ms", 0.0), 2),
        **{f"{k}_ms": round((after[k] - before[k]) / n * 1000, 2) for k in before},
        "rounds": rounds,
        "sent": sent,
        "load": round(load, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="the bundle folder to serve (bench_service.py trains one)")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    p.add_argument(
        "--modes", default="off,on", help="rows: off or on, each optionally @TREE (another checkout)"
    )
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--warm", type=float, default=10, help="seconds of intake before measuring")
    p.add_argument("--seconds", type=float, default=30, help="seconds of intake measured")
    p.add_argument("--interval", type=float, default=5, help="TRIAGE_MAIL_INTERVAL of the 'on' rows")
    args = p.parse_args(argv)
    args.kb = str(bs.SHARED_KB if bs.SHARED_KB.exists() else bs.DEMO / "kb")
    if Path(args.kb).is_file():
        args.kb = str(bs.kb_subset(Path(args.kb), 150))
    intake, source = bs.intake_tickets("auto")
    print(f"{args.database}, {args.clients} clients, intake texts: {source}", flush=True)
    for spec in args.modes.split(","):
        print(json.dumps(one_row(args, spec, intake)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
