"""Where one ``POST /v1/classify?kb=0`` spends its CPU, in-process (no HTTP server, no sockets).

Builds the real app (``service.create_app``, SQLite store in a temporary folder) on a bundle,
then for the same ~60-word demo tickets ``bench_service.py`` sends (each body made distinct):

* ``Triager.classify`` one ticket at a time (thread CPU ms per ticket; the heads alone);
* the whole request through Flask's test client (auth, JSON, policy check, heads, rules, JSON);
* a CPU budget per part of the request (thread CPU of each part, same run, same tickets);
* ``--profile N``: cProfile of the test-client requests, the top functions by own time.

    .venv/bin/python bench/profile_classify.py --bundle ~/.cache/triage/bench-models-minilm-onnx-tfidf-*/2026*
    .venv/bin/python bench/profile_classify.py --bundle <bundle> --profile 25

The machine is shared: thread CPU (``time.thread_time``) is what is reported, with the
load average beside it; wall-clock would count the waits for a core.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_service import demo_tickets, typical  # noqa: E402

KEY = "profile-classify-key"


def load_app(bundle: Path, kb: Path | None, tmp: Path):
    os.environ.update(
        {
            "TRIAGE_BUNDLE": str(bundle),
            "TRIAGE_TRUSTED_BUNDLES": str(bundle),
            "TRIAGE_API_KEYS": f"{KEY}:intake",
            "TRIAGE_LOAD": "sync",
            "TRIAGE_LOG_LEVEL": "WARNING",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp / 'profile.db'}",
            "TRIAGE_MAIL_INTERVAL": "0",
        }
    )
    if kb is not None:
        os.environ["TRIAGE_KB_PATH"] = str(kb)
    from service import create_app

    return create_app({"TRIAGE_MODELS_DIR": str(tmp / "models")})


def bodies(n: int) -> list[dict]:
    tickets = typical(demo_tickets())
    return [
        dict(t, body=f"{t['body']} ref {i}") for i, t in ((i, tickets[i % len(tickets)]) for i in range(n))
    ]


def cpu_ms(fn, items) -> list[float]:
    out = []
    for item in items:
        start = time.thread_time()
        fn(item)
        out.append((time.thread_time() - start) * 1000)
    return out


def summary(label: str, values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (
        f"| {label:<44} | {statistics.median(values):8.3f} | {statistics.fmean(values):8.3f} | {p99:8.3f} |"
    )


@contextlib.contextmanager
def gc_pauses():
    """Wall ms of each of Python's garbage collections meanwhile, by generation."""
    pauses: dict[int, list[float]] = {}
    started: list[float] = []

    def watch(phase, info):
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.setdefault(info["generation"], []).append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(watch)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(watch)


def environ_for(body: dict | None, headers: dict, method: str = "POST", path: str = "/v1/classify?kb=0"):
    """A WSGI environ as gunicorn would pass it (built outside the measured calls)."""
    from werkzeug.test import EnvironBuilder

    data = json.dumps(body).encode() if body is not None else b""
    environ = EnvironBuilder(
        path=path, method=method, data=data, headers={**headers, "Content-Type": "application/json"}
    ).get_environ()
    environ["REMOTE_ADDR"] = "127.0.0.1"
    return environ


def wsgi_call(app):
    """Call the WSGI app as gunicorn does (no test client building requests or reading)."""

    def run(environ):
        status: list[str] = []
        chunks = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        assert status[0].startswith("200"), chunks[:300]

    return run


def budget(app, loaded, items: list[dict]) -> list[str]:
    """Thread CPU ms of each part of the ?kb=0 request, called as the view calls them."""
    from service import classify as view
    from service.desk import team_map
    from service.policy import current_policy
    from service.ticket_schema import parse_classify_body
    from triage.text import model_text

    parts: dict[str, list[float]] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.thread_time()
        out = fn(*args, **kwargs)
        parts.setdefault(name, []).append((time.thread_time() - start) * 1000)
        return out

    triager = loaded.triager
    inner = getattr(triager, "inner", triager)
    with app.test_request_context("/v1/classify?kb=0", method="POST"):
        for body in items:
            _, parsed = timed("parse body (ticket_schema)", parse_classify_body, body, app.config)
            ticket, extras = parsed[0]
            ticket = timed("html → text (_plain)", view._plain, ticket)
            text = timed("model_text (normalise)", model_text, ticket.subject, ticket.body)
            policy = timed("policy version check", current_policy)
            with view.sklearn_fast_path():
                pred = timed(
                    "heads (Triager.classify)", inner.classify, [ticket], policy or None, texts=[text]
                )[0]
            teams = timed("team map", team_map, app.config)
            from triage.rule_input import with_desk_teams

            seen = with_desk_teams(pred, teams)
            from datetime import datetime, timezone

            now = datetime.now(timezone.utc)
            fields = timed("rule input", view.rule_input, ticket, extras, seen, now, loaded.rules)
            outcome = timed("rules evaluate", view.evaluate_rules, loaded.rules, fields, ticket, now)
            out = timed("outcome → JSON values", view.outcome_json, outcome)
            timed("jsonify", app.json.dumps, {"fields": pred["fields"], **out})
    return [summary(name, values) for name, values in parts.items()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--kb", type=Path, default=None, help="KB file (default: the app's)")
    p.add_argument("-n", type=int, default=300, help="tickets per measurement")
    p.add_argument("--profile", type=int, default=0, help="print cProfile's top N functions (own time)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = load_app(args.bundle.resolve(), args.kb, Path(tmp))
        loaded = app.extensions["triage.state"].snapshot()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {KEY}"}
        items = bodies(args.n)

        def post(body):
            r = client.post("/v1/classify?kb=0", json=body, headers=headers)
            assert r.status_code == 200, r.get_data(as_text=True)

        from service.classify import sklearn_fast_path
        from service.ticket_schema import parse_classify_body

        tickets = [parse_classify_body(b, app.config)[1][0][0] for b in items]
        triager = loaded.triager
        inner = getattr(triager, "inner", triager)

        def heads(ticket):
            with sklearn_fast_path():
                inner.classify([ticket])

        for _ in range(2):  # warm caches (policy, imports, first-call allocations)
            post(items[0])
            heads(tickets[0])
        print(
            f"bundle {args.bundle.name}, {len(items)} tickets, load average {os.getloadavg()[0]:.2f} before"
        )
        print("| thread CPU ms per ticket/request            |      p50 |     mean |      p99 |")
        print("|----------------------------------------------|----------|----------|----------|")
        print(summary("Triager.classify, 1 ticket", cpu_ms(heads, tickets)))
        with gc_pauses() as pauses:
            print(summary("POST /v1/classify?kb=0 (Flask test client)", cpu_ms(post, items)))
        environs = [environ_for(body, headers) for body in items]
        print(summary("POST /v1/classify?kb=0 (WSGI call, no client)", cpu_ms(wsgi_call(app), environs)))
        environs = [environ_for(None, {}, "GET", "/livez") for _ in items]
        print(summary("GET /livez (WSGI call, no client)", cpu_ms(wsgi_call(app), environs)))
        for line in budget(app, loaded, items):
            print(line)
        print(f"load average {os.getloadavg()[0]:.2f} after")
        for gen, ms in sorted(pauses.items()):
            print(
                f"gc generation {gen}: {len(ms)} collections in {len(items)} requests, "
                f"median {statistics.median(ms):.3f} ms, longest {max(ms):.3f} ms"
            )
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for body in items:
                post(body)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.profile)
            print(out.getvalue())
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.profile * 2)
            print(out.getvalue())
        from service.store import close

        close(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
