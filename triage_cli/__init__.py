"""The ``triage`` command. An entry point: the only code that may import training/ and service/.

Each area registers its subcommands from its own module (``register(subparsers)``),
so adding a command never means editing a long central file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sqlalchemy.exc import OperationalError

from triage.errors import TriageError

# Modules that add subcommands; each has register(subparsers) and sets func=handler.
AREAS = [
    "train",
    "models",
    "serve",
    "tickets",
    "desk",
    "demo_seed",
    "report",
    "retrain",
    "quickstart",
    "batch",
    "security",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage",
        description="ML-driven help-desk triage: train classifiers on your own tickets, "
        "serve them, and run the ticketing core.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'triage COMMAND --help' for the options of one command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        try:
            module = importlib.import_module(f"triage_cli.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"triage_cli.{area}":
                continue  # area not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from . import workspace

        workspace.configure()  # unknown TRIAGE_* names stop here, before any work
        return int(args.func(args) or 0)
    except TriageError as exc:
        print(f"triage {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:  # the store's database: down, wrong port, no such database
        reason = str(exc.orig or exc).strip().splitlines()[0]
        print(
            f"triage {args.command}: error: cannot use the database ({reason}); check "
            "TRIAGE_DATABASE_URL (host, port, database name, user) and that the server is running",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
