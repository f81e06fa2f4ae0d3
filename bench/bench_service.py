"""End-to-end HTTP latency of the service under gunicorn, with the same run's floor.

Starts ``triage serve`` (gunicorn, 2 workers) on a free loopback port, waits for
/readyz, measures with keep-alive ``http.client`` connections from 1 and 2
concurrent clients, prints one table, and stops the server (bounded time):

* ``POST /v1/classify`` for a typical ~60-word ticket, KB suggestions + rules/SLA included;
* ``POST /v1/classify?kb=0``: no KB suggestions (with TF-IDF-only heads: no encoder call);
* batch throughput (``{"tickets": [...]}`` of 32);
* ``POST /v1/tickets``: durable intake (model, duplicate search, rules, SLA, commit) on a
  fresh store (``--database sqlite|postgresql``), real ticket texts of ``../shared/data``
  when it is there (``--intake-texts``; the demo's templates repeat and every intake would
  join a burst after ~1,000), every request with its own
  ``Idempotency-Key`` so no replay inflates the rate, at ``--intake-clients`` clients,
  each beside its own ``/livez`` floor; ``--sustained 60`` adds a 60 s intake run that
  reports the slowest request;
* ``GET /v1/kb/suggest`` as a customer types (prefixes of real subjects);
* ``GET /livez``, the floor: what HTTP + gunicorn + Flask cost with no work at all.

Every classify/suggest text is distinct, so the service's memo of recent vectors
never hides the encoder's cost. Targets (issue 3): classify p50 <= 30 ms,
p99 <= 60 ms with MiniLM; suggest p99 <= 15 ms.

    .venv/bin/python bench/bench_service.py                     # trains a MiniLM demo bundle once
    .venv/bin/python bench/bench_service.py --encoder minilm-onnx --bundle models/<id>
    .venv/bin/python bench/bench_service.py --database postgresql --sustained 60
    .venv/bin/python bench/bench_service.py --clients 1 --intake-clients 4 --wrk 20  # + wrk rows

``BENCH_PORTS=18100-18199`` keeps the server on a port of that range (a shared machine).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

# bench/serving.py (the script's own folder)
from serving import free_port, kill_after, stop_server, wait_ready

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
SHARED_KB = next(
    (
        p
        for p in (
            ROOT.parent / "shared" / "data" / "kb" / "kb_articles.jsonl",
            Path("/work/shared/data/kb/kb_articles.jsonl"),
        )
        if p.exists()
    ),
    ROOT.parent / "shared" / "data" / "kb" / "kb_articles.jsonl",
)
CACHE = Path(os.environ.get("TRIAGE_CACHE_DIR", Path.home() / ".cache" / "triage"))
KEY = "bench-intake-key"

# Used only when data/demo/mapping.yaml does not exist yet.
DEMO_MAPPING = """text: {subject: title, body: description}
labels:
  type: {column: kind}
  team: {column: assignment_group}
  category: {column: category}
  impact: {column: impact}
  urgency: {column: urgency}
min_class_count: 10
"""


def demo_tickets() -> list[dict]:
    with open(DEMO / "tickets.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            "subject": r["title"],
            "body": r["description"],
            "channel": r["source"],
            "customer_tier": r["tier"],
            "affected_service": r["service"],
        }
        for r in rows
    ]


def shared_intake_tickets(limit: int = 0) -> list[dict]:
    """Real help-desk tickets for intake, in the export's order, when ``../shared/data`` is
    there (bench/shared_data.py): the endava export's title/body, then the it_tickets rows
    it does not hold (one text each: its first words stand in as the subject). Never copied
    into the repo: read at run time only. [] when the data is not there.

    Why not the demo: its ~180 templates repeat, so after ~1,000 intakes every intake joins
    a burst (200 neighbours clustered, an incident proposal written), which no desk sees."""
    from shared_data import SHARED

    endava = SHARED / "endava" / "all_tickets_subset.csv"
    it_tickets = SHARED / "it_tickets" / "all_tickets_processed_improved_v3.csv"
    if not endava.exists():
        return []
    out, seen = [], set()
    with open(endava, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if (r["body"] or r["title"]).strip():
                out.append({"subject": r["title"], "body": r["body"]})
                seen.add(f"{r['title']} {r['body']}".strip())
    if it_tickets.exists():
        with open(it_tickets, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                text = r["Document"].strip()
                if text and text not in seen:
                    out.append({"subject": " ".join(text.split()[:6])[:80], "body": text})
                if limit and len(out) >= limit:
                    break
    channels, tiers = ("email", "web", "chat", "phone"), ("standard", "standard", "standard", "gold")
    return [
        dict(t, channel=channels[i % len(channels)], customer_tier=tiers[i % len(tiers)])
        for i, t in enumerate(out)
    ]


INTAKE_ORDER_SEED = 15  # the number: any fixed seed would do


def intake_tickets(source: str) -> tuple[list[dict], str]:
    """(tickets, what they are) for the intake rows: ``--intake-texts shared|demo|auto``."""
    if source in ("shared", "auto"):
        found = shared_intake_tickets()
        if found:
            # The export's order drifts: its first 5,000 texts have a median of 22 words, the
            # whole of it 32. Taken in order, a 60 s run's late steps held longer texts than its
            # early ones (the encoder's cost per text rose with them) and a short run saw only
            # the short ones. A fixed shuffle gives every step, and every run, the same mix.
            random.Random(INTAKE_ORDER_SEED).shuffle(found)
            words = statistics.median(len(f"{t['subject']} {t['body']}".split()) for t in found)
            return found, (
                f"{len(found)} real tickets of ../shared/data (shuffled, seed {INTAKE_ORDER_SEED}), "
                f"median {words:.0f} words"
            )
        if source == "shared":
            raise SystemExit("--intake-texts shared: ../shared/data not found (bench/shared_data.py)")
    demo = demo_tickets()
    return demo, f"the demo corpus ({len(demo)} tickets, ~180 templates: bursts after ~1,000)"


def typical(tickets: list[dict], lo: int = 45, hi: int = 80) -> list[dict]:
    """Tickets of about 60 words (subject + body), the size the targets are stated for."""
    out = [t for t in tickets if lo <= len(f"{t['subject']} {t['body']}".split()) <= hi]
    return out or tickets


def training_fingerprint() -> str:
    """What the cached demo bundle was trained from: the demo corpus and the trainer's code.

    A bundle trained by another version (an older corpus, other calibration) would be served
    silently and the figures would describe it, not this checkout."""
    digest = hashlib.sha256()
    sources = sorted((ROOT / "training").rglob("*.py")) + sorted((ROOT / "triage").rglob("*.py"))
    for path in [DEMO / "tickets.csv", DEMO / "mapping.yaml", *sources]:
        if path.exists():
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_bundle(args) -> Path:
    """The bundle to serve: --bundle, else a MiniLM demo bundle trained once into the cache."""
    if args.bundle:
        return Path(args.bundle).resolve()
    kinds = tuple(k.strip() for k in args.candidates.split(",") if k.strip())
    models = CACHE / (
        f"bench-models-{args.train_encoder}"
        + ("" if kinds == ("combined",) else "-" + "-".join(kinds))
        + f"-{training_fingerprint()}"
    )
    found = sorted(models.glob("*/manifest.json"))
    if found:
        return found[-1].parent
    from training.pipeline import train

    mapping = DEMO / "mapping.yaml"
    if not mapping.exists():
        mapping = CACHE / "bench-demo-mapping.yaml"
        mapping.parent.mkdir(parents=True, exist_ok=True)
        mapping.write_text(DEMO_MAPPING, encoding="utf-8")
    print(
        f"training a {args.train_encoder} demo bundle into {models} (once; embeddings are cached)", flush=True
    )
    result = train(
        DEMO / "tickets.csv",
        mapping,
        models,
        encoder=args.train_encoder,
        candidates=kinds,
        cv=3,
        progress=False,
    )
    return Path(result.bundle_path)


def kb_subset(path: Path, limit: int) -> Path:
    """The first ``limit`` lines of a JSON Lines KB, cached so the index is reused."""
    target = CACHE / f"bench-kb-{path.stem}-{limit}.jsonl"
    if not target.exists():
        with open(path, encoding="utf-8") as fh:
            lines = [line for _, line in zip(range(limit), fh)]
        target.write_text("".join(lines), encoding="utf-8")
    return target


def start_server(args, bundle: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "TRIAGE_API_KEYS": f"{KEY}:intake",
        "PYTHONPATH": str(ROOT),
        "TRIAGE_KB_PATH": str(args.kb),
        "TRIAGE_LOG_LEVEL": "WARNING",
        "TRIAGE_DATABASE_URL": args.database_url,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if getattr(args, "threads", 0):
        env["TRIAGE_THREADS"] = str(args.threads)  # request threads per gthread worker
    cmd = [
        sys.executable,
        "-m",
        "triage_cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--bundle",
        str(bundle),
        "--trust",
        str(bundle),
    ]
    if args.encoder:
        cmd += ["--encoder", args.encoder]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


class Client:
    """One keep-alive connection; returns per-request latency in ms."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> float:
        data = json.dumps(body).encode() if body is not None else None
        start = time.perf_counter()
        self.conn.request(method, path, body=data, headers={**self.headers, **(headers or {})})
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status not in (200, 201):
            raise RuntimeError(f"{method} {path} -> {response.status}: {payload[:300]!r}")
        return elapsed


def run_clients(port: int, n_clients: int, requests: list[tuple]) -> tuple[list[float], float]:
    """Split ``requests`` over ``n_clients`` threads; (latencies, wall seconds)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def work(chunk):
        client, mine = Client(port), []
        for method, path, body, *headers in chunk:
            mine.append(client.call(method, path, body, *headers))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(requests[i::n_clients],)) for i in range(n_clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start


def worker_pids(server_pid: int) -> list[int]:
    path = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU time of the workers: unlike wall time, other load does not inflate it."""
    return sum(cpu_by_worker(pids).values())


def cpu_by_worker(pids: list[int]) -> dict[int, float]:
    """Each worker's user + system CPU seconds."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return out


def worker_split(before: dict[int, float], after: dict[int, float]) -> str:
    """How the run's worker CPU fell on the workers ("53/47 %"): with keep-alive clients a
    worker serves the connections it accepted, so "100/0" means both clients on one worker."""
    used = [max(after.get(pid, 0.0) - before.get(pid, 0.0), 0.0) for pid in sorted(after)]
    total = sum(used) or 1.0
    return "/".join(f"{100 * u / total:.0f}" for u in sorted(used, reverse=True)) + " %"


# the database server's CPU (PostgreSQL on this machine: its backends for the bench's database,
# from /proc), which shares the two cores with the workers; set by main() for --database postgresql
DB_NAME = ""


def db_cpu_seconds() -> float:
    """user + system CPU time of the PostgreSQL backends serving ``DB_NAME`` (0 without one),
    the backends that ended included (as last seen: a pool closes its overflow connections)."""
    if not DB_NAME:
        return 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                words = fh.read().split(b"\0")[0].split()
            # "postgres: [cluster:] user database host(port) state"
            if not words or words[0] != b"postgres:" or DB_NAME.encode() not in words[1:4]:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            start = fields[19]  # a pid reused by a new backend is another backend
        except (OSError, IndexError):
            continue
        _DB_SEEN[(pid, start)] = int(fields[11]) + int(fields[12])
    return sum(_DB_SEEN.values()) / os.sysconf("SC_CLK_TCK")


_DB_SEEN: dict[tuple[str, str], int] = {}  # CPU ticks of every backend seen, by (pid, start time)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def row(
    name: str,
    lat: list[float],
    wall: float,
    items: int,
    target: str = "",
    cpu: float = 0.0,
    client: float = 0.0,
    db: float = 0.0,
) -> dict:
    return {
        "client_ms": 1000 * client / max(len(lat), 1),
        "db_ms": 1000 * db / max(len(lat), 1),
        "what": name,
        "n": len(lat),
        "p50": statistics.median(lat),
        "p99": pct(lat, 0.99),
        "per_s": items / wall,
        "target": target,
        "cpu_ms": 1000 * cpu / max(len(lat), 1),
        "max": max(lat),
    }


def measure(
    port: int,
    tickets: list[dict],
    n: int,
    clients: list[int],
    pids: list[int],
    intake_clients: list[int] = (),
    intake: list[dict] | None = None,
    fast_only: int = 0,
) -> list[dict]:
    rows = []
    intake_reqs = intake_requests(intake or tickets)
    pick = iter(range(10**9))

    def classify_reqs(count):  # distinct texts: the vector memo never hits
        out = []
        for _ in range(count):
            i = next(pick)
            t = tickets[i % len(tickets)]
            out.append(("POST", "/v1/classify", dict(t, body=f"{t['body']} ref {i}")))
        return out

    def suggest_reqs(count):
        out = []
        for _ in range(count):
            i = next(pick)
            words = tickets[i % len(tickets)]["subject"].split() + [f"x{i}"]
            q = " ".join(words[: 2 + i % 5])[:60] + f" {i}"
            out.append(("GET", "/v1/kb/suggest?" + urlencode({"q": q}), None))
        return out

    run_clients(port, 2, classify_reqs(20) + suggest_reqs(20))  # warm both workers

    def timed(name, c, reqs, items_per_req=1, target=""):
        before, client, db = cpu_by_worker(pids), time.process_time(), db_cpu_seconds()
        lat, wall = run_clients(port, c, reqs)
        after, client, db = cpu_by_worker(pids), time.process_time() - client, db_cpu_seconds() - db
        cpu = sum(after.values()) - sum(before.values())
        rows.append(row(name, lat, wall, items_per_req * len(lat), target, cpu, client, db))
        rows[-1]["split"] = worker_split(before, after)

    if fast_only:  # the fast path only, N times: each repeat opens new connections
        for i in range(fast_only):
            timed(f"GET /livez (floor), 2 client(s) [{i + 1}]", 2, [("GET", "/livez", None)] * n)
            fast = [("POST", "/v1/classify?kb=0", body) for _, _, body in classify_reqs(n)]
            timed(f"POST /v1/classify?kb=0, 2 client(s) [{i + 1}]", 2, fast, target="p99<=5")
        return rows
    for c in clients:
        timed(f"GET /livez (floor), {c} client(s)", c, [("GET", "/livez", None)] * n)
        timed(f"POST /v1/classify 1 ticket, {c} client(s)", c, classify_reqs(n), target="p50<=30 p99<=60")
        timed(f"GET /v1/kb/suggest, {c} client(s)", c, suggest_reqs(n), target="p99<=15")
    fast = [("POST", "/v1/classify?kb=0", body) for _, _, body in classify_reqs(n)]
    timed("POST /v1/classify?kb=0, 2 client(s)", 2, fast, target="p99<=5 (TF-IDF heads)")
    batch = 32
    reqs = [
        ("POST", "/v1/classify", {"tickets": [r[2] for r in classify_reqs(batch)]})
        for _ in range(max(4, n // 40))
    ]
    timed(f"POST /v1/classify batch of {batch}, 2 clients", 2, reqs, batch, "throughput (tickets/s)")
    for c in intake_clients:
        timed(f"GET /livez (floor), {c} client(s)", c, [("GET", "/livez", None)] * n)
        timed(f"POST /v1/tickets (intake), {c} client(s)", c, intake_reqs(n), target=">=150/s p99<=150 at 4")
    return rows


# one run id and one count for every intake row of a run: each row goes on through the list
# where the last stopped (a row starting over would send the same texts again: duplicates)
RUN = os.urandom(4).hex()
INTAKE_COUNT = itertools.count()


def intake_requests(tickets: list[dict]):
    """Intake bodies, each with its own Idempotency-Key (no replay can inflate the rate)."""
    run, counter = RUN, INTAKE_COUNT

    def make(count: int) -> list[tuple]:
        out = []
        for _ in range(count):
            i = next(counter)
            t = tickets[i % len(tickets)]
            body = {
                "subject": t["subject"],
                "body": f"{t['body']} ref {i}",  # distinct even when the list wraps
                "channel": t["channel"],
                "customer_tier": t["customer_tier"],
                "requester": f"user{i % 97}@example.org",
            }
            out.append(("POST", "/v1/tickets", body, {"Idempotency-Key": f"bench-{run}-{i}"}))
        return out

    return make


def sustained(
    port: int, tickets: list[dict], clients: int, seconds: float, pids: list[int] = (), step: float = 10.0
) -> dict:
    """Intake from ``clients`` threads for ``seconds``: how many, how slow the slowest, and the
    worker CPU per intake of each ``step`` seconds (``curve``: does an intake cost more as the
    store fills?)."""
    cpu, client_cpu, db = cpu_seconds(list(pids)), time.process_time(), db_cpu_seconds()
    make = intake_requests(tickets)
    per_thread: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def work(mine: list[float]):
        client = Client(port)
        while time.perf_counter() < stop:
            ((method, path, body, headers),) = make(1)
            mine.append(client.call(method, path, body, headers))

    threads = [threading.Thread(target=work, args=(mine,)) for mine in per_thread]
    start = time.perf_counter()
    for t in threads:
        t.start()
    curve, last = [], (start, cpu, 0, db)
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(max(0.0, last[0] + step - time.perf_counter()))
        now, done = time.perf_counter(), sum(len(m) for m in per_thread)
        if now - last[0] >= step or not any(t.is_alive() for t in threads):
            used, db_used = cpu_seconds(list(pids)), db_cpu_seconds()
            n = max(done - last[2], 1)
            curve.append(
                {
                    "at": now - start,
                    "per_s": (done - last[2]) / (now - last[0]),
                    "cpu_ms": 1000 * (used - last[1]) / n,
                    "db_ms": 1000 * (db_used - last[3]) / n,
                    "stored": done,
                    "full": now - last[0] >= step * 0.9,
                }
            )
            last = (now, used, done, db_used)
    latencies = [x for mine in per_thread for x in mine]
    out = row(
        f"POST /v1/tickets for {seconds:.0f} s, {clients} clients",
        latencies,
        time.perf_counter() - start,
        len(latencies),
        "no request > 1000 ms",
        cpu_seconds(list(pids)) - cpu,
        time.process_time() - client_cpu,
        db_cpu_seconds() - db,
    )
    out["target"] += f" ({sum(1 for x in latencies if x > 1000)} were)"
    out["curve"] = curve
    return out


def drift_line(curve: list[dict]) -> str:
    """The first full step against the last (a short tail step is left out): flat is what a
    desk needs, each intake's work bounded however many tickets were stored before it."""
    full = [c for c in curve if c.get("full", True)] or curve
    first, last = full[0], full[-1]
    line = (
        f"  first vs last full step: worker CPU {first['cpu_ms']:.2f} -> {last['cpu_ms']:.2f} ms "
        f"({100 * (last['cpu_ms'] / max(first['cpu_ms'], 1e-9) - 1):+.1f} %)"
    )
    if first["db_ms"] or last["db_ms"]:
        line += f", db CPU {first['db_ms']:.2f} -> {last['db_ms']:.2f} ms"
    return line + f", at {first.get('stored', 0)} -> {last.get('stored', 0)} stored"


def wrk_rows(
    port: int,
    tickets: list[dict],
    clients: int,
    seconds: float,
    pids: list[int],
    classify: list[dict],
    fast_only: bool = False,
) -> list[dict]:
    """``/livez``, intake, then ``?kb=0`` classify driven by wrk (C, event loop: a fraction of
    the Python client's CPU per request): ``/livez`` and intake at ``clients`` connections, the
    fast path at 2 as in the issue's table, ``seconds`` each; wrk's CPU is measured too."""
    import resource
    import shutil
    import tempfile

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("--wrk needs wrk on the PATH")
    folder = Path(tempfile.mkdtemp(prefix="triage-bench-wrk-"))
    bodies = folder / "bodies.jsonl"
    start = next(INTAKE_COUNT)  # on from where the Python client's rows stopped
    with open(bodies, "w", encoding="utf-8") as fh:  # distinct texts: wrk_intake.lua fills @REF@
        for i, t in enumerate(tickets[start % len(tickets) :] + tickets[: start % len(tickets)]):
            body = {
                "subject": t["subject"],
                "body": f"{t['body']} ref @REF@",
                "channel": t["channel"],
                "customer_tier": t["customer_tier"],
                "requester": f"user{i % 97}@example.org",
            }
            fh.write(json.dumps(body) + "\n")
    fast = folder / "classify.jsonl"  # the Python client's ?kb=0 tickets, each text made distinct
    with open(fast, "w", encoding="utf-8") as fh:
        for t in classify:
            fh.write(json.dumps(dict(t, body=f"{t['body']} ref @REF@")) + "\n")
    url = f"http://127.0.0.1:{port}"
    script = str(ROOT / "bench" / "wrk_intake.lua")
    out = []
    runs = (
        (f"GET /livez (floor, wrk), {clients} connections", clients, [], ""),
        (
            f"POST /v1/tickets (wrk) {seconds:.0f} s, {clients} conn.",
            clients,
            ["-s", script, url, "--", str(bodies), KEY, os.urandom(4).hex()],
            ">=150/s p99<=150 max<1000",
        ),
        # a new connection per request: what a worker's late accept costs when clients don't
        # keep their connections (TRIAGE_ACCEPT_DELAY_MS=0, plain gthread, is the reference)
        (f"GET /livez (wrk, Connection: close), {clients} conn.", clients, ["-H", "Connection: close"], ""),
        ("GET /livez (floor, wrk), 2 connections", 2, [], ""),
        (
            f"POST /v1/classify?kb=0 (wrk) {seconds:.0f} s, 2 conn.",
            2,
            ["-s", script, url, "--", str(fast), KEY, os.urandom(4).hex(), "/v1/classify?kb=0"],
            "p99<=5 (TF-IDF heads)",
        ),
    )
    for name, conns, extra, target in runs[2:] if fast_only else runs:
        cmd = [wrk, f"-t{min(conns, 2)}", f"-c{conns}", f"-d{seconds:.0f}s", "--timeout", "10s", "--latency"]
        scripted = "-s" in extra
        cmd += extra if scripted else [*extra, url + "/livez"]
        by_worker, db = cpu_by_worker(pids), db_cpu_seconds()
        client = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        by_worker_after, db = cpu_by_worker(pids), db_cpu_seconds() - db
        worker = sum(by_worker_after.values()) - sum(by_worker.values())
        if scripted:
            line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), "")
            stats = dict(part.split("=") for part in line.split()[1:])
            if not stats:
                raise SystemExit(f"wrk printed no summary: {done.stdout}{done.stderr}")
            n, wall = int(stats["requests"]), float(stats["seconds"])
            p50, p99, worst = (float(stats[k]) for k in ("p50", "p99", "max"))
            failed = int(stats["non2xx"]) + int(stats["errors"])
            target += f" ({failed} failed)"
        else:
            n, wall, p50, p99, worst = _wrk_plain(done.stdout)
        used = (after.ru_utime + after.ru_stime) - (client.ru_utime + client.ru_stime)
        out.append(
            {
                "what": name,
                "n": n,
                "p50": p50,
                "p99": p99,
                "max": worst,
                "per_s": n / wall,
                "target": target,
                "cpu_ms": 1000 * worker / max(n, 1),
                "client_ms": 1000 * used / max(n, 1),
                "db_ms": 1000 * db / max(n, 1),
                "split": worker_split(by_worker, by_worker_after),
            }
        )
    __import__("shutil").rmtree(folder, True)
    return out


def _wrk_plain(text: str) -> tuple[int, float, float, float, float]:
    """(requests, seconds, p50, p99, max) from wrk's own ``--latency`` report."""
    import re

    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    n = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", text).group(1))
    amount, unit = re.search(r"requests in ([\d.]+)(ms|s|m)", text).groups()
    wall = float(amount) * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]
    pcts = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", text, re.M))
    worst = ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", text).group(1))
    return n, wall, ms(pcts["50"]), ms(pcts["99"]), worst


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def kb_size(path: str) -> int | str:
    p = Path(path)
    return sum(1 for _ in open(p, encoding="utf-8")) if p.is_file() else "?"


def print_table(rows: list[dict], meta: str) -> None:
    print(f"\n{meta}\n")
    print(
        f"| {'what':<42} | {'n':>5} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} "
        f"| {'items/s':>8} | {'worker CPU ms/req':>17} | {'client CPU ms/req':>17} "
        f"| {'db CPU ms/req':>13} | workers' CPU split | target |"
    )
    print(
        f"|{'-' * 44}|{'-' * 7}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 19}|{'-' * 19}"
        f"|{'-' * 15}|-------|--------|"
    )
    for r in rows:
        print(
            f"| {r['what']:<42} | {r['n']:>5} | {r['p50']:>7.1f} | {r['p99']:>7.1f} | "
            f"{r['max']:>7.1f} | {r['per_s']:>8.1f} | {r['cpu_ms']:>17.1f} | {r['client_ms']:>17.1f} "
            f"| {r.get('db_ms', 0.0):>13.2f} | {r.get('split', '')} | {r['target']} |"
        )
    for r in rows:
        if r.get("curve"):
            # The tail step (the last few requests finishing after the clock ran out) is
            # left out: a handful of intakes over a fraction of a second reads as a rate.
            steps = [c for c in r["curve"] if c.get("full", True)] or r["curve"]
            print(
                f"\n{r['what']}, each {steps[0]['at']:.0f} s (does an intake cost more as the store fills?):"
            )
            print("  until s:          " + " ".join(f"{c['at']:>6.0f}" for c in steps))
            print("  intakes/s:        " + " ".join(f"{c['per_s']:>6.1f}" for c in steps))
            print("  worker CPU ms:    " + " ".join(f"{c['cpu_ms']:>6.2f}" for c in steps))
            print("  intakes by then:  " + " ".join(f"{c['stored']:>6}" for c in steps))
            if any(c["db_ms"] for c in steps):
                print("  db CPU ms:        " + " ".join(f"{c['db_ms']:>6.2f}" for c in steps))
            print(drift_line(r["curve"]))
    print(
        "\nworker CPU ms/req: CPU time the gunicorn workers spent per request (one thread "
        "each), i.e. the latency floor on an idle core; wall-clock p50/p99 include waiting for "
        "a CPU when the machine is shared (see the load average). client CPU ms/req: what the load "
        "generator itself burnt per request (the Python client's threads, or wrk), on the same cores. "
        "db CPU ms/req: the PostgreSQL server's backends for the bench's database (0 on SQLite); "
        "150/s on 2 cores needs the three columns' sum <= ~13 ms. "
        "workers' CPU split: each worker's share of that CPU, largest first (keep-alive clients stay "
        "on the worker that accepted their connection: 100/0 = every client on one worker)."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", help="bundle folder (default: a MiniLM demo bundle, trained once)")
    p.add_argument(
        "--kb",
        default=str(SHARED_KB if SHARED_KB.exists() else DEMO / "kb"),
        help="KB articles (default: the shared 2,446-article KB)",
    )
    p.add_argument(
        "--kb-limit",
        type=int,
        default=0,
        help="serve only the first N articles (a quicker first index build)",
    )
    p.add_argument("--encoder", default="", help="serve with this encoder kind (e.g. minilm-onnx)")
    p.add_argument(
        "--train-encoder",
        default="minilm-onnx",
        choices=("minilm", "minilm-onnx"),
        help="encoder of the demo bundle trained when --bundle is not given",
    )
    p.add_argument(
        "--candidates",
        default="combined",
        help="head kinds of the demo bundle trained when --bundle is not given; 'tfidf' gives "
        "TF-IDF-only heads, whose ?kb=0 classify never calls the encoder (the 5 ms fast path)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--threads", type=int, default=0, help="request threads per worker (default: the server's, 2)"
    )
    p.add_argument("-n", type=int, default=300, help="requests per measurement")
    p.add_argument("--clients", default="1,2", help="concurrent clients to measure with")
    p.add_argument("--timeout", type=float, default=1800, help="stop everything after this (s)")
    p.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store intake writes to: a fresh SQLite file, or a fresh schema in "
        "TRIAGE_TEST_POSTGRES_URL's database (dropped afterwards)",
    )
    p.add_argument(
        "--intake-clients", default="1,4", help="concurrent clients for POST /v1/tickets ('' to skip intake)"
    )
    p.add_argument(
        "--intake-texts",
        choices=("auto", "shared", "demo"),
        default="auto",
        help="intake bodies: real tickets of ../shared/data (auto: when present, else the demo) "
        "or the demo corpus (its templates repeat: every intake bursts after ~1,000)",
    )
    p.add_argument(
        "--sustained",
        type=float,
        default=0,
        help="also run intake at the largest --intake-clients for this many seconds",
    )
    p.add_argument(
        "--wrk",
        type=float,
        default=0,
        help="also drive /livez and intake with wrk (bench/wrk_intake.lua) for this many seconds "
        "each, at the largest --intake-clients connections, then /livez and POST /v1/classify?kb=0 "
        "at 2: a client that burns little CPU",
    )
    p.add_argument(
        "--fast-only",
        type=int,
        default=0,
        metavar="N",
        help="measure only /livez and POST /v1/classify?kb=0 at 2 clients, N times over (each time "
        "on new connections: which worker accepts which is drawn anew), then --wrk if given",
    )
    args = p.parse_args(argv)
    bundle = ensure_bundle(args)
    if args.kb_limit and Path(args.kb).is_file():
        args.kb = str(kb_subset(Path(args.kb), args.kb_limit))
    args.database_url, drop_database = bench_database(args.database)
    global DB_NAME
    if args.database == "postgresql":
        from sqlalchemy.engine import make_url

        DB_NAME = make_url(args.database_url).database or ""
    # the bench is one caller sending far more than a person does (suggest rows stopped at the
    # 240-per-minute limit above -n 200): the per-caller limits are off, as in bench_suggest.py
    os.environ["TRIAGE_RATELIMIT_ENABLED"] = "false"
    port = free_port()
    log_path = CACHE / f"bench-service-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = start_server(args, bundle, port, log_path)
    killer = kill_after(proc, args.timeout)
    try:
        wait_ready(port, proc, args.timeout - 120)  # first run embeds the KB (cached after)
        tickets = typical(demo_tickets())
        intake, intake_source = intake_tickets(args.intake_texts)
        words = statistics.median(len(f"{t['subject']} {t['body']}".split()) for t in tickets)
        load_before = load_average()
        intake_clients = [int(c) for c in args.intake_clients.split(",") if c.strip()]
        rows = measure(
            port,
            tickets,
            args.n,
            [int(c) for c in args.clients.split(",")],
            worker_pids(proc.pid),
            intake_clients,
            intake,
            args.fast_only,
        )
        if args.sustained and intake_clients:
            rows.append(sustained(port, intake, max(intake_clients), args.sustained, worker_pids(proc.pid)))
        if args.wrk:
            rows += wrk_rows(
                port,
                intake,
                max(intake_clients or [4]),
                args.wrk,
                worker_pids(proc.pid),
                tickets,
                bool(args.fast_only),
            )
        meta = (
            f"bundle {bundle.name}, encoder {args.encoder or 'bundle default'}, "
            f"{args.workers} gunicorn workers x {args.threads or 'default'} threads, KB {Path(args.kb).name} ({kb_size(args.kb)} articles), "
            f"store {args.database}, intake texts: {intake_source}, "
            f"classify tickets median {words:.0f} words, {os.cpu_count()} CPUs, keep-alive http.client, "
            f"load average {load_before} before / {load_average()} after"
        )
        print_table(rows, meta)
    finally:
        stop_server(proc, killer)
        drop_database()
    return 0


def bench_database(kind: str):
    """(URL, cleanup) of an empty store for this run: intake rates depend on what is there."""
    import tempfile

    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="triage-bench-")
        return f"sqlite:///{folder}/bench.db", lambda: __import__("shutil").rmtree(folder, True)
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    url = os.environ.get("TRIAGE_TEST_POSTGRES_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    schema = f"triage_bench_{os.urandom(5).hex()}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop():
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in url else "?"
    return url + sep + "options=" + quote(f"-csearch_path={schema}"), drop


if __name__ == "__main__":
    sys.exit(main())
