"""Where a served request's time goes: a summary of py-spy's raw samples of the gunicorn workers.

Record the workers while ``bench_service.py`` loads them (py-spy samples the running
processes from outside: no code change, the real server), then summarise:

    .venv/bin/pip install py-spy
    nice .venv/bin/python bench/bench_service.py --kb-limit 150 -n 300 --clients 1 --intake-clients 1,4 &
    # once the intake rows run (the workers are the server's children):
    for w in $(cat /proc/<gunicorn master>/task/<master>/children); do
        .venv/bin/py-spy record --pid $w --format raw -o spy.$w --duration 60 --rate 100 --nonblocking &
    done
    .venv/bin/python bench/profile_http.py spy.* --root create_ticket

Prints, for the samples whose stack holds ``--root`` (a view function), the share of
samples in each function (inclusive: the function or anything it called) and the
functions the samples were in (self). py-spy counts a thread only when it is not
idle, so the shares are of the worker's busy time under that view.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys


def summarise(paths: list[str], root: str, top: int) -> str:
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                frames = [re.sub(r":\d+\)", ")", f) for f in stack.split(";")]
                start = next((i for i, f in enumerate(frames) if f.startswith(root + " ")), None)
                if start is None or not count.isdigit():
                    continue
                n = int(count)
                total += n
                for frame in set(frames[start:]):
                    inclusive[frame] += n
                own[frames[-1]] += n
    out = [f"{total} samples under {root}", "", "inclusive %  function"]
    out += [f"{100 * n / max(total, 1):10.1f}  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "self %  function"]
    out += [f"{100 * n / max(total, 1):6.1f}  {f}" for f, n in own.most_common(top // 2)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", help="py-spy --format raw output files")
    p.add_argument("--root", default="create_ticket", help="the view function to look under")
    p.add_argument("--top", type=int, default=60)
    args = p.parse_args(argv)
    print(summarise(args.paths, args.root, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
