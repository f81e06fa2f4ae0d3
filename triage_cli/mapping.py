"""``triage mapping``: a first mapping YAML drafted from an export's columns.

A newcomer's first step before ``triage train``: which column is the text, which are
the labels, quoted as YAML needs (training/mapping_draft.py does the choosing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """examples:
  triage mapping --data exports/tickets.csv                       # print the draft
  triage mapping --data exports/tickets.csv --out mapping.yaml    # write it, then read it
  triage train --data exports/tickets.csv --mapping mapping.yaml
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mapping",
        help="draft a column mapping YAML from an export's columns",
        description="Draft the mapping `triage train` needs from an export (any format it "
        "reads): the text and label columns chosen by their names (ServiceNow, Jira, "
        "Zendesk, Freshdesk, osTicket, GLPI, OTRS and other tools' words, in several "
        "languages) and by their values, read from rows drawn evenly over the whole file. "
        "Each choice is commented with what the column holds; read it before training.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data", required=True, type=Path, help="the export (.csv, .tsv, .jsonl, .json, .parquet)"
    )
    p.add_argument("--out", type=Path, default=None, help="write the draft to this file (default: print it)")
    p.add_argument("--force", action="store_true", help="with --out: replace a file that exists")
    p.set_defaults(func=run_mapping)


def run_mapping(args: argparse.Namespace) -> int:
    from training.mapping_draft import draft_mapping

    if args.out is not None and args.out.exists() and not args.force:
        print(f"triage mapping: error: {args.out} exists; pass --force to replace it", file=sys.stderr)
        return 2
    text = draft_mapping(args.data)
    if args.out is None:
        print(text, end="")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(
        f"triage mapping: wrote {args.out}; read it, then: "
        f"triage train --data {args.data} --mapping {args.out}",
        file=sys.stderr,
    )
    return 0
