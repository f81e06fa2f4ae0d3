"""Where a served request's time goes: py-spy on the gunicorn workers, as a CPU budget.

Two ways in:

* ``--record SECONDS`` (the budget of an intake): starts ``triage serve`` as
  ``bench_service.py`` does (2 workers, demo bundle, a fresh store), warms it up, then
  records every thread of both workers with py-spy while ``--clients`` clients send
  ``POST /v1/tickets`` (real ticket texts when ``../shared/data`` is there), and prints
  the worker CPU per intake (``/proc``) split by part: request threads (Flask, JSON, auth,
  encoder, heads, search, write/commit, ...), the outbox thread that sends the received
  notices, gunicorn's main loop. Samples waiting on a lock, a sleep or a poll are counted
  apart (py-spy reports a thread blocked in a C call as busy) and left out of the budget.

      nice .venv/bin/python bench/profile_http.py --record 40 --database sqlite
      nice .venv/bin/python bench/profile_http.py --record 40 --database postgresql

* raw files recorded by hand (the workers are the server's children):

      for w in $(cat /proc/<gunicorn master>/task/<master>/children); do
          .venv/bin/py-spy record --pid $w --format raw --threads -o spy.$w --duration 60 \\
              --rate 100 --nonblocking &
      done
      .venv/bin/python bench/profile_http.py spy.* --root create_ticket   # one view's functions
      .venv/bin/python bench/profile_http.py spy.* --budget --cpu-ms 20   # the budget

Shares are of the busy samples (py-spy skips threads it sees idle); ms per intake are the
shares of the CPU samples times the worker CPU per intake measured in the same run.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _frames(stack: str) -> list[str]:
    return [re.sub(r":-?\d+\)", ")", f) for f in stack.split(";")]


def _samples(paths: list[str]):
    """(frames, count) of every raw line; with ``--threads`` the first frame names the thread."""
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if count.isdigit():
                    yield _frames(stack), int(count)


def summarise(paths: list[str], root: str, top: int) -> str:
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for frames, n in _samples(paths):
        start = next((i for i, f in enumerate(frames) if f.startswith(root + " ")), None)
        if start is None:
            continue
        total += n
        for frame in set(frames[start:]):
            inclusive[frame] += n
        own[frames[-1]] += n
    out = [f"{total} samples under {root}", "", "inclusive %  function"]
    out += [f"{100 * n / max(total, 1):10.1f}  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "self %  function"]
    out += [f"{100 * n / max(total, 1):6.1f}  {f}" for f, n in own.most_common(top // 2)]
    return "\n".join(out)


# The part a sample belongs to: the innermost (closest to the leaf) of these markers found
# in its stack, on a request thread; a frame matches when it starts with the marker.
REQUEST_PARTS = [
    ("OnnxMiniLMEncoder.encode ", "encoder (int8 MiniLM)"),
    ("MemoEncoder.encode ", "encoder memo"),
    ("PolicyTriager.classify ", "heads (classification)"),
    ("requester_history ", "prepare: requester history read"),
    ("_OpenTickets.catch_up ", "search: index catch-up (other workers' tickets)"),
    ("_Window.near ", "search: burst neighbours in memory"),
    ("_window_in_memory ", "search: burst neighbours' status read"),
    ("detect_burst ", "search: burst clustering"),
    ("_burst ", "search: burst other"),
    ("VectorIndex.search ", "search: index query"),
    ("_nearest ", "search: candidates read"),
    ("search (triage/store/similar.py)", "search: other"),
    ("assess ", "prepare: assess other (text, shapes)"),
    ("prepare ", "prepare: read transaction, other"),
    ("GroupCommitter.", "write + commit (group commit)"),
    ("intake_many ", "intake_many other (session)"),
    ("read_json_body ", "request JSON parse"),
    ("validate (service/validation.py)", "request validation"),
    ("IntakeResult.to_dict ", "answer: result dict"),
    ("jsonify ", "answer: JSON"),
    ("spend (service/limiter.py)", "rate limiter"),
    ("create_ticket ", "view: other"),
    ("require_role.", "auth"),
    ("Flask.full_dispatch_request ", "Flask: hooks, routing, access log, metrics"),
    ("Flask.__call__ ", "Flask/WSGI: request/response objects"),
    ("ThreadWorker.handle ", "gunicorn: HTTP parse, write the answer"),
]
THREAD_PARTS = [  # by thread name (py-spy --threads), for the threads that are not requests'
    ("outbox", "outbox thread: the received notices (compose, send, record)"),
    ("escalation", "escalation sweep thread"),
    ("open-ticket-index-load", "open-ticket index load thread"),
    ("triage-reload-watch", "bundle reload watcher thread"),
    ("MainThread", "gunicorn main loop (poll, accept, heartbeat)"),
]
# a sample whose leaf is one of these is a wait (py-spy reports some blocking calls as busy)
WAITS = (
    "Condition.wait ",
    "Event.wait ",
    "WriteGate.acquire ",
    "EpollSelector.select ",
    "PollSelector.select ",
    "Lock.acquire",
    "sleep ",
    "_worker (concurrent/futures/thread.py)",
    "WorkerTmp.notify ",
    "Connection.wait (psycopg",  # waiting for PostgreSQL's answer
)


def part_of(frames: list[str]) -> str:
    thread = frames[0] if frames and frames[0].startswith("thread ") else ""
    if len(frames) <= 1 or any(frames[-1].startswith(w) for w in WAITS):
        return "(waiting: lock, sleep, poll; not CPU)"
    for name, part in THREAD_PARTS:
        if thread.endswith(": " + name) or thread.endswith(name):
            return part
    for frame in reversed(frames):
        for marker, part in REQUEST_PARTS:
            if frame.startswith(marker):
                return part
    return "request thread: other" if "ThreadPoolExecutor" in thread else f"other thread ({thread})"


def budget(paths: list[str], cpu_ms: float | None) -> str:
    parts: collections.Counter = collections.Counter()
    for frames, n in _samples(paths):
        parts[part_of(frames)] += n
    waiting = sum(n for p, n in parts.items() if p.startswith("(waiting"))
    busy = sum(parts.values()) - waiting
    out = [
        f"{sum(parts.values())} samples, {waiting} of them waiting; shares of the {busy} CPU samples"
        + (f"; ms/intake = share x {cpu_ms:.1f} worker CPU ms per intake" if cpu_ms else ""),
        "",
        f"{'share %':>8}  {'ms/intake':>9}  part",
    ]
    for part, n in sorted(parts.items(), key=lambda kv: -kv[1]):
        if part.startswith("(waiting"):
            continue
        ms = f"{cpu_ms * n / busy:9.2f}" if cpu_ms else f"{'':9}"
        out.append(f"{100 * n / max(busy, 1):8.1f}  {ms}  {part}")
    return "\n".join(out)


def record(args) -> int:
    """Serve, warm up, record both workers with py-spy during ``args.record`` s of intake."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_service as bs
    from serving import free_port, kill_after, stop_server, wait_ready

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    ns = argparse.Namespace(
        bundle=args.bundle,
        kb=str(bs.SHARED_KB if bs.SHARED_KB.exists() else bs.DEMO / "kb"),
        encoder="",
        train_encoder="minilm-onnx",
        candidates="combined",
        workers=2,
        threads=args.threads,
    )
    bundle = bs.ensure_bundle(ns)
    if Path(ns.kb).is_file():
        ns.kb = str(bs.kb_subset(Path(ns.kb), 150))
    ns.database_url, drop = bs.bench_database(args.database)
    os.environ["TRIAGE_RATELIMIT_ENABLED"] = "false"
    port = free_port()
    out = Path(args.out or tempfile.mkdtemp(prefix="triage-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    proc = bs.start_server(ns, bundle, port, out / "server.log")
    killer = kill_after(proc, 1800)
    try:
        wait_ready(port, proc, 1500)
        intake, source = bs.intake_tickets(args.intake_texts)
        pids = bs.worker_pids(proc.pid)
        bs.sustained(port, intake, args.clients, args.warm, pids)  # warm: index, window, caches
        spies = [
            subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--format", "raw", "--threads", "--nonblocking"]
                + [
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(int(args.record)),
                    "-o",
                    str(out / f"spy.{pid}"),
                ]
                + (["--native"] if args.native else []),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in pids
        ]
        time.sleep(1.0)
        row = bs.sustained(port, intake, args.clients, args.record - 2, pids)
        for s in spies:
            s.wait(timeout=args.record + 60)
        load = bs.load_average()
    finally:
        stop_server(proc, killer)
        drop()
    paths = [str(p) for p in sorted(out.glob("spy.*"))]
    print(
        f"{args.database}, {args.clients} clients, intake texts: {source}; {row['n']} intakes in "
        f"{args.record - 2:.0f} s = {row['per_s']:.1f}/s, worker CPU {row['cpu_ms']:.2f} ms/intake, "
        f"p50 {row['p50']:.1f} p99 {row['p99']:.1f} max {row['max']:.1f} ms; load average {load}; "
        f"raw samples in {out}\n"
    )
    print(budget(paths, row["cpu_ms"]))
    if args.root:
        print("\n" + summarise(paths, args.root, args.top))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", help="py-spy --format raw output files")
    p.add_argument("--root", default="", help="also list the functions under this view (e.g. create_ticket)")
    p.add_argument("--top", type=int, default=60)
    p.add_argument("--budget", action="store_true", help="the per-part budget of the given files")
    p.add_argument("--cpu-ms", type=float, default=None, help="worker CPU ms per intake (for --budget)")
    p.add_argument("--record", type=float, default=0, help="serve and record this many seconds of intake")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="request threads per worker (0: the server's)")
    p.add_argument("--warm", type=float, default=15, help="seconds of intake before recording")
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--native", action="store_true", help="py-spy --native (C frames: GC, ONNX)")
    p.add_argument("--intake-texts", choices=("auto", "shared", "demo"), default="auto")
    p.add_argument("--bundle", default="")
    p.add_argument("--out", default="", help="folder for the raw samples (default: a temp folder)")
    args = p.parse_args(argv)
    if args.record:
        return record(args)
    if not args.paths:
        p.error("give py-spy raw files, or --record SECONDS")
    if args.budget:
        print(budget(args.paths, args.cpu_ms))
    if args.root or not args.budget:
        print(summarise(args.paths, args.root or "create_ticket", args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
