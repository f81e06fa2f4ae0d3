"""Triager.classify's CPU per ticket, robust to a shared machine, and its function calls.

Per ticket the minimum thread CPU over R repetitions (another process taking the core only
ever adds), and the Python and C function calls per classify counted by cProfile (the same
on any load). Run it from a checkout; compare two trees with the same bundle:

    .venv/bin/python bench/bench_heads_cpu.py <bundle> main
    (cd <other worktree> && .venv/bin/python /path/to/bench_heads_cpu.py <bundle> before)
"""

import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, "bench")
sys.path.insert(0, ".")
os.environ["OMP_NUM_THREADS"] = "1"
from bench_service import demo_tickets, typical  # noqa: E402
from triage.predict import Triager  # noqa: E402
from triage.text import model_text  # noqa: E402
from triage.ticket import Ticket  # noqa: E402
from service.components import serving_encoder, bundle_encoder_ref  # noqa: E402
from service.classify import sklearn_fast_path  # noqa: E402

b = Path(sys.argv[1])
R = 7
enc = serving_encoder(bundle_encoder_ref(b), None)
tr = Triager.from_bundle(b, encoder=enc)
ts = typical(demo_tickets())[:300]
tickets = [Ticket(subject=t["subject"], body=t["body"] + f" ref {i}") for i, t in enumerate(ts)]
texts = [model_text(t.subject, t.body) for t in tickets]
vecs = [enc.encode([x]) if tr.needs_vectors else None for x in texts]
best = [float("inf")] * len(tickets)
with sklearn_fast_path():
    for i in range(20):
        tr.classify([tickets[i]], texts=[texts[i]], vectors=vecs[i])
    for _ in range(R):
        for i in range(len(tickets)):
            s = time.thread_time()
            tr.classify([tickets[i]], texts=[texts[i]], vectors=vecs[i])
            best[i] = min(best[i], time.thread_time() - s)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(len(tickets)):
        tr.classify([tickets[i]], texts=[texts[i]], vectors=vecs[i])
    prof.disable()
calls = sum(v[1] for v in pstats.Stats(prof).stats.values())
print(
    f"{sys.argv[2]}: min-of-{R} CPU per classify {1000 * sum(best) / len(best):.3f} ms; Python+C function calls per classify {calls / len(tickets):.0f}; load {os.getloadavg()[0]:.1f}"
)
