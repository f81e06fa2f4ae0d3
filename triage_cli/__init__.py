"""The ``triage`` command. An entry point: the only code that may import training/ and service/.

Each area registers its subcommands from its own module (``register(subparsers)``),
so adding a command never means editing a long central file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from sqlalchemy.exc import OperationalError

from triage.errors import TriageError

# Modules that add subcommands; each has register(subparsers) and sets func=handler.
AREAS = [
    "train",
    "mapping",
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


class _Parser(argparse.ArgumentParser):
    """argparse's parser; a group named without its action (``triage mail``) lists the
    actions it has rather than only "the following arguments are required: ACTION"."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        actions = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        if actions and "required: " in message and str(actions[0].metavar) in message.split("required: ")[1]:
            self.print_help(sys.stderr)
            self.exit(2, f"\n{self.prog}: error: name one of: {', '.join(actions[0].choices)}\n")
        if "required: " in message and "--mapping" in message.split("required: ")[1]:
            message += " (a YAML naming the export's text and label columns: `triage mapping --data EXPORT` drafts one)"
        super().error(message)


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand without a description its one-line summary as one, so that
    ``triage COMMAND --help`` always opens with a sentence saying what the command does."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and summaries.get(name):
                    sub.description = str(summaries[name])[:1].upper() + str(summaries[name])[1:] + "."
                _describe(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    _describe(parser)
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
