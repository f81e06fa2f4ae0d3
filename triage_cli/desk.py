"""``triage desk apply|check|show|log``: the desk (teams, agents, queues) as a file.

``apply`` makes the ticket store hold what ``desk.yaml`` says and prints the
difference; applying the same file again prints "no changes". Every change is
recorded with who ran it (``--actor``, default the login name) and the file.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "desk",
        help="teams, agents and queues from desk.yaml (apply, check, show, log)",
        description="The help desk's teams (business calendar, escalation contacts), agents "
        "(e-mail, teams, skills, capacity, seniority, availability) and queues, kept "
        "in a desk.yaml file and applied to the ticket store. See "
        "data/demo/desk.yaml for the format.",
    )
    sub = p.add_subparsers(dest="desk_command", metavar="ACTION", required=True)
    ap = sub.add_parser(
        "apply",
        help="make the store match DESK_FILE and print the diff",
        description="Create, update or retire teams, agents and queues so the store matches "
        "the file. Idempotent: a second run changes nothing. Objects missing from "
        "the file are retired (kept for history, no longer routed to). With "
        "--rules/--bundle the team names of the rules file and of the bundle's team "
        "head are checked against the desk first.",
    )
    _common(ap)
    ap.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    ap.add_argument(
        "--actor", default=None, help="who is recorded as making the change (default: your login name)"
    )
    ap.set_defaults(func=run_apply)
    ck = sub.add_parser(
        "check",
        help="validate DESK_FILE against the rules and the bundle, change nothing",
        description="Exit 2 naming every unknown team (with file and line) when the rules "
        "route to, or the bundle's team head predicts, a team the desk lacks.",
    )
    _common(ck)
    ck.set_defaults(func=run_check)
    sh = sub.add_parser(
        "show",
        help="print the desk the store holds now (JSON)",
        description="The active teams, agents and queues of the store, as JSON.",
    )
    _db(sh)
    sh.set_defaults(func=run_show)
    lg = sub.add_parser(
        "log",
        help="who changed what in the desk, newest first",
        description="The recorded desk changes (file applies and admin edits).",
    )
    _db(lg)
    lg.add_argument("--limit", type=int, default=50, help="how many changes (default 50)")
    lg.set_defaults(func=run_log)


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database", default=None, help="SQLAlchemy URL (default TRIAGE_DATABASE_URL, else var/triage.db)"
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("desk_file", metavar="DESK_FILE", type=Path, help="the desk.yaml to load")
    p.add_argument(
        "--rules",
        default=None,
        help="rules file whose route_to teams must exist (default TRIAGE_RULES_PATH, "
        "else the shipped defaults)",
    )
    p.add_argument(
        "--bundle", default=None, help="bundle folder whose team-head classes must exist or be mapped"
    )
    _db(p)


def _checked(args):
    import os

    from triage.desk import check_names, load_desk
    from triage.rules import RuleSet

    desk = load_desk(args.desk_file)
    rules = RuleSet.load(args.rules or os.environ.get("TRIAGE_RULES_PATH") or None)
    labels, bundle_file = (), "bundle"
    if args.bundle:
        labels, bundle_file = bundle_team_labels(Path(args.bundle))
    check_names(desk, rules, labels, bundle_file)
    return desk


def bundle_team_labels(bundle: Path) -> tuple[list[str], str]:
    """The team head's classes as the bundle's manifest lists them (none: no team head)."""
    manifest = bundle / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    head = (data.get("heads") or {}).get("team") or {}
    return [str(c) for c in head.get("labels") or head.get("classes") or []], str(manifest)


def run_apply(args) -> int:
    from triage.store import desk as store_desk
    from triage_cli.tickets import _store

    desk = _checked(args)
    actor = args.actor or _login()
    with _store(args).session() as session:
        changes = store_desk.apply(
            session, desk, actor=actor, source=str(args.desk_file), dry_run=args.dry_run
        )
        if args.dry_run:
            session.rollback()
    for change in changes:
        print(change)
    verb = "would change" if args.dry_run else "changed"
    print(f"triage desk apply: {verb} {len(changes)} item(s)" if changes else "triage desk apply: no changes")
    return 0


def run_check(args) -> int:
    desk = _checked(args)
    print(
        f"triage desk check: {args.desk_file}: {len(desk.teams)} teams, {len(desk.agents)} "
        f"agents, {len(desk.queues)} queues; every team name is known"
    )
    return 0


def run_show(args) -> int:
    from triage.store import desk as store_desk
    from triage_cli.tickets import _store

    with _store(args).session() as session:
        print(json.dumps(store_desk.current(session), indent=1, sort_keys=True))
    return 0


def run_log(args) -> int:
    from triage.store import desk as store_desk
    from triage_cli.tickets import _store

    with _store(args).session() as session:
        for row in store_desk.changes_log(session, limit=args.limit):
            print(
                f"{row['at']}  {row['actor']:<16} {row['source']:<24} {row['kind']} "
                f"{row['name']}: {row['field']} {row['old']} -> {row['new']}"
            )
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"
