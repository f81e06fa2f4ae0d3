"""``POST /v1/classify?kb=0`` as WSGI calls: thread CPU per request (min over repetitions) and
function calls per request, on one bundle; run it from two trees to compare them.

Per request the minimum thread CPU over R repetitions (another process taking the core only
ever adds) and the Python and C function calls counted by cProfile (the same on any load).
The app, tickets and environ are those of ``bench/profile_classify.py``:

    .venv/bin/python bench/bench_classify_wsgi.py --bundle <bundle> --kb <kb.jsonl>
    (cd <other worktree> && /path/to/.venv/bin/python bench/bench_classify_wsgi.py --bundle <bundle> --kb <kb.jsonl>)

Set ``TRIAGE_SECRET_KEY`` so the app does not write one into the checkout.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from profile_classify import KEY, bodies, environ_for, load_app, wsgi_call  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--kb", type=Path, default=None, help="KB file (default: the app's)")
    p.add_argument("-n", type=int, default=300, help="tickets")
    p.add_argument("-r", type=int, default=3, help="repetitions (the minimum per request is kept)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = load_app(args.bundle.resolve(), args.kb, Path(tmp))
        items = bodies(args.n)
        headers = {"Authorization": f"Bearer {KEY}"}
        call = wsgi_call(app)
        for _ in range(20):  # warm caches (policy, imports, first-call allocations)
            call(environ_for(items[0], headers))
        best = [float("inf")] * len(items)
        for _ in range(args.r):
            environs = [environ_for(body, headers) for body in items]  # built outside the timing
            for i, environ in enumerate(environs):
                start = time.thread_time()
                call(environ)
                best[i] = min(best[i], time.thread_time() - start)
        environs = [environ_for(body, headers) for body in items]
        prof = cProfile.Profile()
        prof.enable()
        for environ in environs:
            call(environ)
        prof.disable()
        calls = sum(v[1] for v in pstats.Stats(prof).stats.values())
        from service.store import close

        close(app)
    print(
        f"{args.bundle.name}: min-of-{args.r} thread CPU per ?kb=0 request {1000 * sum(best) / len(best):.3f} ms; "
        f"function calls per request {calls / len(items):.0f}; load {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
