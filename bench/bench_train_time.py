"""Training time (issue 15 §3): the user's `triage train` on the 47,837 shared it_tickets, with
a per-phase breakdown, CPU seconds, and the plain TF-IDF + LinearSVC fit on the same rows as
the same-run reference.

    nice .venv/bin/python bench/bench_train_time.py                 # the default command
    nice .venv/bin/python bench/bench_train_time.py --serial        # every fit on one core
    nice .venv/bin/python bench/bench_train_time.py --incremental   # the SGD head: file order vs shuffled
    PYTHONPATH=/path/to/older/checkout .venv/bin/python bench/bench_train_time.py   # "before"

What runs: ``triage train --data <export> --mapping <mapping> --out <tmp>`` with its
defaults (int8 ONNX MiniLM, vector screen, MLflow logging into a temporary tracking
database), in this process, so the phases can be timed by wrapping the functions that do
them (nothing in the training code is changed for the bench). A phase's wall time can
include time in phases nested in it (the ``in`` column); CPU is the whole process tree's
(this process, its threads, and the worker processes the fits run in), read from
/proc. The embedding cache is a fresh folder unless ``--warm-cache``, so the sample the
vector screen embeds is really embedded, as on a first run.

Reading the figures on a shared machine: the CPU seconds barely move with the load, the wall
time does. The run's CPU seconds bound its idle wall time from above as long as it is not
waiting on anything (it reads one local file): on one idle core it would take at most that
long, and on two at least half of it. Both bounds are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from shared_data import SHARED  # noqa: E402 - bench/ is on sys.path when run as a script

DEFAULT_DATA = SHARED / "it_tickets" / "all_tickets_processed_improved_v3.csv"
DEFAULT_MAPPING = ROOT / "bench" / "mappings" / "it_tickets.yaml"
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu() -> float:
    """CPU seconds of this process, its reaped children, and its live descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    return total + sum(_proc_cpu(pid) for pid in _descendants(os.getpid()))


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    out, todo = [], [root]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _proc_cpu(pid: int) -> float:
    """utime + stime of a live process (its own; its children are descendants we also read)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    return 0.0


class Phases:
    """Wall and CPU seconds per named phase, accumulated over calls."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.stack: list[str] = []

    def wrap(self, owner, attr: str, name, within: str = "") -> None:
        """Replace ``owner.attr`` by a timed copy; ``name`` may be a function of the call's args.
        A function this version of the code does not have is left alone."""
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            label = name(*args, **kwargs) if callable(name) else name
            row = self.rows.setdefault(label, {"calls": 0, "wall": 0.0, "cpu": 0.0, "in": within})
            w0, c0 = time.perf_counter(), tree_cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                row["calls"] += 1
                row["wall"] += time.perf_counter() - w0
                row["cpu"] += tree_cpu() - c0

        setattr(owner, attr, timed)


def instrument(phases: Phases) -> None:
    """The phases of `triage train`, by the functions that do them."""
    import sklearn.pipeline

    import triage.classifiers as clf
    import triage_cli.train as cli
    import training.pipeline as pipe
    import training.screening as screening

    phases.wrap(pipe, "_load_for_training", "read + clean the export")
    phases.wrap(pipe, "_screen", "vector screen (3,000-row sample)")
    phases.wrap(screening, "fit_candidates", "screen: fits on the sample", "vector screen")
    phases.wrap(pipe, "choose_context", "context groups (ablation)")

    def fits(X, y, kinds, **kw):
        return "refit winner on train + calibration" if len(kinds) == 1 else "candidates on train"

    phases.wrap(pipe, "fit_candidates", fits)
    phases.wrap(clf, "fit_parts", "base models (vocabularies + cross-fits)", "candidates / refit")
    phases.wrap(sklearn.pipeline.FeatureUnion, "fit_transform", "reference vocabulary", "base models")
    if hasattr(clf, "_fit_transform"):
        phases.wrap(clf, "_fit_transform", "tfidf vocabulary (word, char)", "base models")

    def cross_fit_name(make, *args, **kw):
        est = make()
        c = getattr(est, "C", None)
        return f"cross-fit {type(est).__name__}" + (f"(C={c:g})" if c is not None else "")

    phases.wrap(clf, "_cross_fit", cross_fit_name, "base models")
    phases.wrap(clf.TextHead, "_assemble", "calibration (calibrator choice, bias, map)", "candidates / refit")
    phases.wrap(clf.TextHead, "predict_labelled", "candidates scored on calibration + holdout")
    phases.wrap(pipe, "head_metrics", "metrics (selection, holdout)")
    phases.wrap(pipe, "paired_wins", "paired bootstrap (400 resamples)")
    phases.wrap(pipe, "choose_thresholds", "threshold search")
    phases.wrap(pipe, "make_reference", "report's plain reference (refitted)")
    phases.wrap(pipe, "write_bundle", "bundle write (models, report, plots)")
    phases.wrap(cli, "_log_to_mlflow", "MLflow logging")


def reference_fit(data: Path, mapping: Path) -> dict:
    """The plain TF-IDF 1–2-gram + LinearSVC fitted on every labelled row: the yardstick."""
    from triage.classifiers import make_reference
    from training.mapping import load_export, load_mapping

    ds = load_export(data, load_mapping(mapping))
    head = next(iter(ds.labels))
    rows = [i for i, v in enumerate(ds.labels[head]) if v is not None]
    texts, y = [ds.texts[i] for i in rows], [ds.labels[head][i] for i in rows]
    w0, c0 = time.perf_counter(), tree_cpu()
    make_reference().fit(texts, y)
    return {"rows": len(rows), "wall": time.perf_counter() - w0, "cpu": tree_cpu() - c0}


def incremental_order(data: Path, mapping_path: Path, max_rows: int = 10_000) -> None:
    """The full-data SGD head (``--max-rows``) learnt in file order vs in the seeded shuffled
    order of training/incremental.py, on the export as given and on a copy sorted by label
    (written under /tmp, never into the repository); macro-F1 of its raw arg-max on the
    export's holdout rows, which it never learns."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import f1_score

    from training import incremental
    from training.mapping import load_export, load_mapping
    from training.pipeline import assign_splits
    from training.stream import load_sampled

    mapping = load_mapping(mapping_path)
    head = next(iter(mapping.labels))
    column = mapping.labels[head].column
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    sorted_path = Path(tempfile.mkdtemp(prefix="triage-bench-sorted-")) / "sorted.csv"
    frame.sort_values(column, kind="stable").to_csv(sorted_path, index=False)
    learn = incremental._learn
    print(f"\n# incremental head ({head}), sample of {max_rows} rows held out from it")
    print("| export | order | rows learnt | holdout macro-F1 | CPU s |")
    print("|---|---|---|---|---|")
    for name, path in (("as given", data), ("sorted by label", sorted_path)):
        ds = load_export(path, mapping)
        hold = np.flatnonzero(
            (assign_splits(ds.texts) == "holdout") & [v is not None for v in ds.labels[head]]
        )
        sample, info = load_sampled(path, mapping, max_rows, head, seed=0)
        for order in ("file order", "shuffled (seed 0)"):
            incremental._learn = (  # type: ignore[assignment]
                (lambda m, part, rows: learn(m, part, np.sort(rows))) if order == "file order" else learn
            )
            c0 = tree_cpu()
            model = incremental.fit_incremental(
                path, mapping, [head], info, sample.source_rows, splits=assign_splits, seed=0
            )[head]
            cpu = tree_cpu() - c0
            pred = model.svc_.predict(model.hash([ds.texts[i] for i in hold]))
            f1 = f1_score([ds.labels[head][i] for i in hold], pred, average="macro")
            print(f"| {name} | {order} | {model.rows_learnt_} | {f1:.4f} | {cpu:.1f} |")
    incremental._learn = learn  # type: ignore[assignment]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--mapping", type=Path, default=DEFAULT_MAPPING)
    ap.add_argument("--serial", action="store_true", help="every fit in this process, one at a time")
    ap.add_argument("--warm-cache", action="store_true", help="keep the user's embedding cache")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--incremental", action="store_true", help="only the SGD head's learning order")
    ap.add_argument("train_args", nargs="*", help="extra `triage train` arguments (after --)")
    args = ap.parse_args()
    if args.incremental:
        incremental_order(args.data, args.mapping)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="triage-bench-train-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    if not args.warm_cache:  # an empty embedding cache; the ONNX export (built once per machine) kept
        from triage.cache_dir import DEFAULT

        user = Path(os.environ.get("TRIAGE_CACHE_DIR") or DEFAULT)
        (tmp / "cache").mkdir()
        if (user / "onnx").is_dir():
            (tmp / "cache" / "onnx").symlink_to(user / "onnx")
        os.environ["TRIAGE_CACHE_DIR"] = str(tmp / "cache")
    import triage.classifiers as clf

    if args.serial and hasattr(clf, "fit_jobs"):
        clf.fit_jobs = lambda: 1  # type: ignore[assignment]
    phases = Phases()
    instrument(phases)
    import triage_cli

    load0 = os.getloadavg()
    argv = ["train", "--data", str(args.data), "--mapping", str(args.mapping), "--out", str(tmp / "models")]
    argv += ["--json", *args.train_args]
    w0, c0 = time.perf_counter(), tree_cpu()
    with contextlib.redirect_stdout(open(tmp / "report.json", "w")):
        rc = triage_cli.main(argv)
    wall, cpu = time.perf_counter() - w0, tree_cpu() - c0
    with contextlib.suppress(Exception):  # the fits' worker processes: not part of the reference
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    load1 = os.getloadavg()
    ref = reference_fit(args.data, args.mapping)
    load2 = os.getloadavg()
    report = json.loads((tmp / "report.json").read_text())
    print_table(args, rc, wall, cpu, phases, ref, report, (load0, load1, load2), tmp)
    if args.json:
        args.json.write_text(
            json.dumps({"wall": wall, "cpu": cpu, "phases": phases.rows, "reference": ref}, indent=2)
        )
    return rc


def print_table(args, rc, wall, cpu, phases, ref, report, loads, tmp) -> None:
    print(f"# triage train on {args.data.name} ({'serial' if args.serial else 'default scheduling'})")
    print(
        f"load average (1, 5, 15 min): start {loads[0]}, end of train {loads[1]}, after reference {loads[2]}"
    )
    print(f"exit code {rc}; bundle and report under {tmp}\n")
    print("| phase | in | calls | wall s | CPU s |")
    print("|---|---|---|---|---|")
    for name, r in phases.rows.items():
        print(f"| {name} | {r['in']} | {r['calls']} | {r['wall']:.1f} | {r['cpu']:.1f} |")
    print(f"| **whole `triage train`** | | 1 | **{wall:.1f}** | **{cpu:.1f}** |")
    print(
        f"| reference: TF-IDF 1–2-gram + LinearSVC fit, {ref['rows']} rows | | 1 | {ref['wall']:.1f} | {ref['cpu']:.1f} |"
    )
    print(
        f"\nratio to the reference: wall {wall / ref['wall']:.1f}x, CPU {cpu / ref['cpu']:.1f}x; "
        f"idle 2-core wall time projected between {cpu / 2:.0f} s (both cores busy throughout) "
        f"and {cpu:.0f} s (one core at a time) = {cpu / 2 / 60:.1f}–{cpu / 60:.1f} min (target 6 min)"
    )
    for head, h in report.get("heads", {}).items():
        print(
            f"\nhead {head}: chosen {h['chosen']}, holdout macro-F1 {h['metrics']['macro_f1']:.4f} "
            f"(reference {h['reference']['macro_f1']:.4f}); selection "
            + ", ".join(f"{k} {v:.4f}" for k, v in h["candidates"].items())
        )
    screen = report.get("vector_screen") or {}
    if screen:
        print(f"vector screen: keep={screen.get('keep')}, rows embedded {screen.get('rows_embedded')}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
