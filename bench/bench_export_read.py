"""What a broken export costs to read, and what drafting its mapping costs.

The shared IT-tickets export is written N times over into a temporary CSV (the reference)
and again with a few tickets cut by a line break nobody quoted (short rows). Both readers
(``load_export``, the in-memory one, and ``load_sampled``, what ``--max-rows`` uses) read
each, and the CPU seconds print side by side: the short rows' numbering pass
(training/short_rows.py) runs only when pyarrow met a short row. Then ``triage mapping``'s
draft of the same file, timed.

    nice .venv/bin/python bench/bench_export_read.py            # 4 copies: ~191,000 rows, 58 MB
    nice .venv/bin/python bench/bench_export_read.py --copies 1

Nothing from the shared data is written into the repository (the copies go to a temporary folder).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from shared_data import SHARED  # noqa: E402 - bench/ is on sys.path when run as a script

SOURCE = SHARED / "it_tickets" / "all_tickets_processed_improved_v3.csv"
MAPPING = ROOT / "bench" / "mappings" / "it_tickets.yaml"
CUTS = (1_000, 50_000, 150_000)  # data lines after which a ticket's second half is written alone


def _write(folder: Path, copies: int) -> tuple[Path, Path]:
    head, rest = SOURCE.read_text(encoding="utf-8").split("\n", 1)
    body = rest * copies
    clean = folder / "clean.csv"
    clean.write_text(head + "\n" + body, encoding="utf-8")
    lines = body.split("\n")
    for at in sorted((c for c in CUTS if c < len(lines)), reverse=True):
        lines.insert(at, "second half of a ticket cut by an unquoted line break")
    short = folder / "short.csv"
    short.write_text(head + "\n" + "\n".join(lines), encoding="utf-8")
    return clean, short


def _cpu(fn, *args) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="copies of the shared export (default 4)")
    parser.add_argument("--max-rows", type=int, default=20_000, help="load_sampled's sample (default 20,000)")
    args = parser.parse_args()
    from training.mapping import load_export, load_mapping
    from training.mapping_draft import draft_mapping
    from training.stream import load_sampled

    mapping = load_mapping(MAPPING)
    with tempfile.TemporaryDirectory(prefix="triage-bench-export-") as tmp:
        clean, short = _write(Path(tmp), args.copies)
        print(f"{clean.stat().st_size / 1e6:.0f} MB, {args.copies} copies of {SOURCE.name}; CPU seconds")
        print(f"{'reader':<28}{'clean (reference)':>20}{'short rows':>14}  rows kept / skipped")
        for name, read in (
            ("load_export", lambda p: load_export(p, mapping)),
            (
                f"load_sampled ({args.max_rows:,})",
                lambda p: load_sampled(p, mapping, args.max_rows, "team")[0],
            ),
        ):
            base, _ = _cpu(read, clean)
            cost, data = _cpu(read, short)
            skipped = data.counts["dropped"].get("short_row", 0)  # type: ignore[attr-defined]
            print(f"{name:<28}{base:>20.2f}{cost:>14.2f}  {len(data):,} / {skipped}")  # type: ignore[arg-type]
        cost, text = _cpu(draft_mapping, clean)
        print(f"{'triage mapping (draft)':<28}{cost:>20.2f}{'':>14}  {len(str(text).splitlines())} lines")


if __name__ == "__main__":
    main()
