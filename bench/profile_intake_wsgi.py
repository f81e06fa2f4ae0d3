"""Where one ``POST /v1/tickets`` spends its CPU above the store, in-process (no HTTP server).

Builds the real app (``service.create_app``, a fresh SQLite store in a temporary folder,
the mail loop off) on a bundle, warms it up, then sends real tickets of ``../shared/data``
(the bodies ``bench_service.py`` sends) as WSGI calls, one at a time:

* thread CPU ms per intake (p50 / mean / p99), and the same for ``GET /livez``;
* ``--profile N``: cProfile of the intakes, the top N functions by own time and by
  cumulative time, plus a budget by part (encoder, heads, rules, store, Flask, ...).

    .venv/bin/python bench/profile_intake_wsgi.py --bundle <bundle> -n 400 --profile 40

One thread, so the group commit holds one ticket per transaction; the machine is shared,
so thread CPU (``time.thread_time``) is reported with the load average beside it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_service import demo_tickets, shared_intake_tickets  # noqa: E402
from profile_classify import environ_for, summary  # noqa: E402

KEY = "profile-intake-key"

# (part, substrings of a cProfile function key that count toward it), first match wins
PARTS = [
    ("encoder (ONNX run)", ("onnxruntime",)),
    ("encoder (tokenizer)", ("encode_batch",)),
    ("encoder (other)", ("onnx_encoder.py", "encoder.py")),
    ("heads", ("predict.py", "predict_math.py", "classifiers.py", "thresholds.py", "sklearn", "scipy")),
    ("rules", ("rules.py", "rule_input.py", "sla.py")),
    ("store (SQLAlchemy, sqlite3)", ("sqlalchemy", "sqlite3", "triage/store/")),
    ("flask/werkzeug", ("flask", "werkzeug")),
    ("json", ("json",)),
    ("service/", ("service/",)),
]


def load_app(bundle: Path, tmp: Path):
    os.environ.update(
        {
            "TRIAGE_BUNDLE": str(bundle),
            "TRIAGE_TRUSTED_BUNDLES": str(bundle),
            "TRIAGE_API_KEYS": f"{KEY}:intake",
            "TRIAGE_LOAD": "sync",
            "TRIAGE_LOG_LEVEL": "WARNING",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp / 'profile.db'}",
            "TRIAGE_MAIL_INTERVAL": "0",
            "OMP_NUM_THREADS": "1",  # one ONNX thread, as service/gunicorn_conf.py gives a worker
            "TRIAGE_RATELIMIT_TICKET_CREATE": "100000 per minute",
        }
    )
    from service import create_app

    return create_app({"TRIAGE_MODELS_DIR": str(tmp / "models")})


def bodies(n: int, skip: int = 0) -> list[dict]:
    tickets = shared_intake_tickets() or demo_tickets()
    out = []
    for i in range(skip, skip + n):
        t = tickets[i % len(tickets)]
        out.append(
            {
                "subject": t["subject"],
                "body": f"{t['body']} ref {i}",
                "channel": t.get("channel", "email"),
                "customer_tier": t.get("customer_tier", "standard"),
                "requester": f"user{i % 97}@example.org",
            }
        )
    return out


def call(app, environ) -> None:
    status: list[str] = []
    chunks = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    assert status[0][:3] in ("200", "201"), chunks[:300]


def budget(prof: cProfile.Profile, total_ms: float, n: int) -> list[str]:
    """Own time of each function summed by part, scaled to the measured CPU per intake."""
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    own: dict[str, float] = {}
    for (file, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.items():
        key = f"{file}:{name}"
        part = next((p for p, subs in PARTS if any(s in key for s in subs)), "other (stdlib, builtins)")
        own[part] = own.get(part, 0.0) + tt
    whole = sum(own.values()) or 1.0
    lines = ["| part (cProfile own time, scaled) | share % | ms/intake |", "|---|---|---|"]
    for part, t in sorted(own.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {part} | {100 * t / whole:5.1f} | {total_ms * t / whole:5.2f} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("-n", type=int, default=400, help="intakes per measurement")
    p.add_argument("--profile", type=int, default=0, help="print cProfile's top N functions")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = load_app(args.bundle.resolve(), Path(tmp))
        headers = {"Authorization": f"Bearer {KEY}"}
        for body in bodies(50, skip=100_000):  # warm: imports, caches, the first index load
            call(app, environ_for(body, headers, path="/v1/tickets"))
        environs = [environ_for(b, headers, path="/v1/tickets") for b in bodies(args.n)]
        print(f"bundle {args.bundle.name}, {args.n} intakes, load average {os.getloadavg()[0]:.2f} before")
        print("| thread CPU ms per request                    |      p50 |     mean |      p99 |")
        print("|----------------------------------------------|----------|----------|----------|")
        times = []
        process_start = time.process_time()
        for environ in environs:
            start = time.thread_time()
            call(app, environ)
            times.append((time.thread_time() - start) * 1000)
        process_ms = (time.process_time() - process_start) * 1000 / len(environs)
        print(summary("POST /v1/tickets (WSGI call, SQLite)", times))
        # every thread of the process: what the request thread starts (timers, ...) included
        print(f"| {'same, process CPU (all threads), mean':<44} |          | {process_ms:8.3f} |          |")
        livez = [environ_for(None, {}, "GET", "/livez") for _ in range(args.n)]
        ltimes = []
        for environ in livez:
            start = time.thread_time()
            call(app, environ)
            ltimes.append((time.thread_time() - start) * 1000)
        print(summary("GET /livez (WSGI call)", ltimes))
        print(f"load average {os.getloadavg()[0]:.2f} after")
        if args.profile:
            environs = [environ_for(b, headers, path="/v1/tickets") for b in bodies(args.n, skip=args.n)]
            prof = cProfile.Profile(time.thread_time)  # CPU, not waits
            prof.enable()
            for environ in environs:
                call(app, environ)
            prof.disable()
            mean = sum(times) / len(times)
            print("\n".join(budget(prof, mean, args.n)))
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats(key).print_stats(args.profile)
                print(out.getvalue())
        from service.store import close

        close(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
