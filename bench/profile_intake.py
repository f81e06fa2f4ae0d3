"""Where the time of one intake goes: cProfile over a stream of ``intake`` calls.

Runs ``-n`` tickets through ``triage.store.intake.intake`` on a throw-away SQLite
file (one unit of work each, like ``POST /v1/tickets``), with a real bundle when
``--bundle`` is given (else bench_store's constant stand-in triager) and, with
``--encoder``, the duplicate search too; prints the top functions by cumulative
time. The summary committed beside this script (profile_intake.txt) was made with:

    .venv/bin/python bench/profile_intake.py -n 300 --encoder hashing
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import NOW, SUBJECTS, StandInTriager  # noqa: E402

from triage.rules import RuleSet  # noqa: E402
from triage.store import Store  # noqa: E402
from triage.store.intake import intake  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=500)
    p.add_argument("--bundle", help="model bundle folder (default: a constant stand-in)")
    p.add_argument("--encoder", default="", help="encoder for duplicate search (e.g. hashing)")
    p.add_argument("--top", type=int, default=30)
    p.add_argument(
        "--plain",
        action="store_true",
        help="no cProfile: print the process CPU per intake (all, and the second half: a full "
        "catch-up margin and burst window) instead of the profile",
    )
    args = p.parse_args()
    rules = RuleSet.load()
    if args.bundle:
        from triage.predict import Triager

        triager = Triager.from_bundle(args.bundle)
    else:
        triager = StandInTriager()
    encoder = None
    if args.encoder:
        from triage.encoder import load_encoder

        encoder = load_encoder(args.encoder)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/profile.db")
        store.upgrade()

        def stream(count: int, start: int = 0) -> None:
            for i in range(start, start + count):
                with store.session() as session:
                    intake(
                        session,
                        {
                            "subject": SUBJECTS[i % len(SUBJECTS)],
                            "body": f"ticket {i}",
                            "requester": f"u{i % 50}@x.org",
                            "affected_service": "vpn",
                        },
                        actor="bench",
                        triager=triager,
                        ruleset=rules,
                        encoder=encoder,
                        idempotency_key=f"profile-{i}",
                        now=NOW,
                        auto_assign=False,
                    )

        if args.plain:
            cpu = time.process_time()
            stream(args.n // 2)
            half = time.process_time()
            stream(args.n - args.n // 2, start=args.n // 2)
            end = time.process_time()
            store.dispose()
            print(
                f"{args.n} intakes: {1000 * (end - cpu) / args.n:.2f} ms CPU each; second half "
                f"{1000 * (end - half) / (args.n - args.n // 2):.2f} ms (triager "
                f"{'bundle' if args.bundle else 'stand-in'}, encoder {args.encoder or 'none'})"
            )
            return
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(stream, args.n)
        wall = time.perf_counter() - start
        store.dispose()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
    print(
        f"{args.n} intakes in {wall:.2f} s under cProfile ({1000 * wall / args.n:.2f} ms each; "
        f"triager {'bundle' if args.bundle else 'stand-in'}, encoder {args.encoder or 'none'})"
    )
    print(out.getvalue())


if __name__ == "__main__":
    main()
