"""``triage escalate``, ``triage breaches``, ``triage db upgrade``, ``triage mail poll``, ``triage webhooks``.

The database is ``--database URL``, else ``TRIAGE_DATABASE_URL``, else the
SQLite file ``var/triage.db``. The escalation loop is what a deployment runs
beside the service workers (or the service's own scheduler thread, see
``TRIAGE_ESCALATION_INTERVAL``); running several is safe: each level fires once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading

log = logging.getLogger("triage.tickets")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "escalate",
        help="escalation sweep + mail and webhook delivery",
        description="Find tickets approaching or past SLA breach, record "
        "each escalation level once, queue pending reminders, "
        "deliver the outbox: mail (TRIAGE_SMTP_* or the mail "
        "folder) and signed webhooks.",
    )
    _db(p)
    p.add_argument("--once", action="store_true", help="one sweep, print what fired, exit")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between sweeps (60)")
    p.set_defaults(func=run_escalate)

    p = subparsers.add_parser("breaches", help="SLA breach report (over-time tickets)")
    _db(p)
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--all", action="store_true", help="include resolved/closed tickets")
    p.set_defaults(func=run_breaches)

    p = subparsers.add_parser("db", help="database maintenance")
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = sub.add_parser("upgrade", help="apply the Alembic migrations (idempotent)")
    _db(up)
    up.set_defaults(func=run_upgrade)

    p = subparsers.add_parser(
        "webhooks",
        help="add, list, disable and test webhooks",
        description="Signed webhooks (escalations). URLs must be http(s); "
        "at delivery the host must resolve to public "
        "addresses unless TRIAGE_WEBHOOK_ALLOW names it.",
    )
    sub = p.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add URL; the secret is read from TRIAGE_WEBHOOK_SECRET")
    _db(add)
    add.add_argument("url", help="the http(s) URL to POST signed events to")
    add.add_argument("--event", action="append", default=[], help="event name (default: all)")
    add.set_defaults(func=run_webhook_add)
    ls = sub.add_parser("list", help="every webhook with its delivery counts (no secrets)")
    _db(ls)
    ls.set_defaults(func=run_webhook_list)
    off = sub.add_parser("disable", help="stop sending to webhook ID")
    _db(off)
    off.add_argument("id", type=int, help="the webhook's number, as 'triage webhooks list' shows it")
    off.set_defaults(func=run_webhook_disable)
    test = sub.add_parser("test", help="send one signed webhook.test to webhook ID now")
    _db(test)
    test.add_argument("id", type=int, help="the webhook's number, as 'triage webhooks list' shows it")
    test.set_defaults(func=run_webhook_test)

    p = subparsers.add_parser("mail", help="e-mail intake")
    sub = p.add_subparsers(dest="mail_command", metavar="ACTION", required=True)
    poll = sub.add_parser(
        "poll",
        help="poll a Maildir/mbox/IMAP mailbox into tickets",
        description="Read every unhandled message (whatever Status/flags it "
        "carries) into a new ticket, a follow-up, a duplicate of "
        "one stored before, or a refusal kept with its raw bytes "
        "(auto-replies, empty mail; replay them on /admin/mail/"
        "refused). Ends with the counts of each.",
    )
    _db(poll)
    src = poll.add_mutually_exclusive_group(required=True)
    src.add_argument("--maildir", metavar="FOLDER", help="a Maildir folder (with new/, cur/, tmp/)")
    src.add_argument("--mbox", metavar="FILE", help="an mbox file (messages after 'From ' lines)")
    src.add_argument("--imap", metavar="HOST", help="IMAP host; TRIAGE_IMAP_USER/PASSWORD")
    poll.add_argument("--once", action="store_true", help="one pass, then exit")
    poll.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="between passes without --once (default 60)",
    )
    poll.add_argument("--bundle", help="model bundle to classify with (default: rules only)")
    poll.set_defaults(func=run_mail_poll)


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database", default=None, help="SQLAlchemy URL (default TRIAGE_DATABASE_URL, else var/triage.db)"
    )


def _store(args):
    from triage.store import Store

    if not getattr(args, "verbose", False):
        logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise
    from . import workspace

    store = Store(workspace.database_url(args.database))
    store.upgrade()
    return store


def sweep_once(store) -> list[dict]:
    """One pass: escalations in one transaction, then mail and webhook delivery outside it."""
    from triage.store import clocks

    from service import settings
    from service.mailer import Rules, build, deliver_due

    fired = [f.to_dict() for f in clocks.sweep_all(store)]
    config = settings.resolve()
    # batch after batch while full, as the service's loop
    delivery = deliver_due(store, build(config), Rules.from_config(config))
    if any(delivery.values()):
        log.info("outbox (mail, webhooks): %s", delivery)
    return fired


def run_escalate(args) -> int:
    store = _store(args)
    while True:
        for item in sweep_once(store):
            print(
                f"ticket {item['ticket_id']}: {item['clock']} level {item['level']} "
                f"({item['name']}), due {item['due_at']}",
                flush=True,
            )
        if args.once:
            return 0
        if threading.Event().wait(args.interval):  # pragma: no cover - never set
            return 0


def run_breaches(args) -> int:
    from triage.store import clocks

    with _store(args).session() as session:
        rows = clocks.breaches(session, include_closed=args.all)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'ticket':>7}  {'clock':<15} {'priority':>8}  {'overdue min':>11}  team / assignee")
    for r in rows:
        print(
            f"{r['ticket_id']:>7}  {r['clock']:<15} {str(r['priority']):>8}  "
            f"{r['overdue_minutes']:>11.0f}  {r['team'] or '-'} / {r['assignee'] or '-'}"
        )
    print(f"{len(rows)} breached clock(s)")
    return 0


def run_upgrade(args) -> int:
    store = _store(args)
    print(f"database at head: {store.engine.url.render_as_string(hide_password=True)}")
    return 0


def run_webhook_add(args) -> int:
    from triage.errors import ConfigError
    from triage.store import webhooks

    secret = os.environ.get("TRIAGE_WEBHOOK_SECRET")
    if not secret:
        raise ConfigError("set TRIAGE_WEBHOOK_SECRET (kept out of the shell history)")
    with _store(args).session() as session:
        hook = webhooks.register(session, args.url, secret, args.event)
        print(f"webhook {hook.id}: {args.url} events={args.event or 'all'}")
    return 0


def run_webhook_list(args) -> int:
    from triage.store import webhooks

    with _store(args).session() as session:
        for hook in webhooks.listing(session):
            print(json.dumps(hook))
    return 0


def run_webhook_disable(args) -> int:
    from triage.store import webhooks

    with _store(args).session() as session:
        webhooks.disable(session, args.id)
    print(f"webhook {args.id}: disabled")
    return 0


def run_webhook_test(args) -> int:
    from triage import egress
    from triage.store import webhooks

    allow = egress.AllowList.parse(os.environ.get("TRIAGE_WEBHOOK_ALLOW", ""))
    with _store(args).session() as session:
        outcome = webhooks.send_test(session, args.id, allow=allow)
    print(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


def run_mail_poll(args) -> int:
    """Every message ends as created / threaded / duplicate / refused; the summary counts them."""
    from collections import Counter
    from pathlib import Path

    from triage.mail import pollers as mailboxes
    from triage.rules import RuleSet
    from triage.store import attachments, inbox

    from service import settings

    store, rules = _store(args), RuleSet.load(os.environ.get("TRIAGE_RULES_PATH") or None)
    files = attachments.Files(Path(settings.value("TRIAGE_ATTACHMENTS_DIR")))  # follows TRIAGE_VAR_DIR
    triager = None
    if args.bundle:
        from triage.predict import Triager

        triager = Triager.from_bundle(args.bundle)
    counts: Counter = Counter()

    def handle_many(messages: list[dict]) -> list:
        # a poll's messages share write transactions (group commit); each is acked by the
        # poller only once the commit holding it is done
        received = inbox.receive_many(store, messages, triager=triager, ruleset=rules, files=files)
        for message, got in zip(messages, received):
            counts[got.outcome] += 1
            where = f"ticket {got.ticket.id}" if got.ticket is not None else f"refusal {got.refusal_id}"
            note = f" ({got.reason})" if got.reason else ""
            print(
                f"{message.get('message_id') or '(no Message-ID)'}: {got.outcome} {where}{note}", flush=True
            )
        return received

    poller = mailboxes.MailboxPoller(_source(args, mailboxes), handle_many=handle_many)
    if args.once:
        report = poller.poll_once()
        print(
            ", ".join(f"{counts[k]} {k}" for k in inbox.OUTCOMES)
            + f"; {report.failed} left unread for a retry"
        )
        return 1 if report.failed else 0
    poller.run(args.interval, threading.Event())
    return 0


def _source(args, mailboxes):
    if args.maildir:
        _check_maildir(args.maildir)
        return mailboxes.MaildirSource(args.maildir)
    if args.mbox:
        _check_mbox(args.mbox)
        return mailboxes.MboxSource(args.mbox)
    return mailboxes.ImapSource(
        args.imap, os.environ.get("TRIAGE_IMAP_USER", ""), os.environ.get("TRIAGE_IMAP_PASSWORD", "")
    )


_EML_HINT = "a single .eml message goes into a Maildir's new/ folder: mkdir -p box/{new,cur,tmp}"


def _check_maildir(path: str) -> None:
    """A missing or wrong folder said in one line (was mailbox.NoSuchMailboxError's traceback)."""
    from pathlib import Path

    from triage.errors import ConfigError

    folder = Path(path)
    if folder.is_file():
        raise ConfigError(
            f"--maildir {path} is a file, not a Maildir folder (use --mbox for an mbox file; {_EML_HINT})"
        )
    missing = [d for d in ("new", "cur") if not (folder / d).is_dir()]  # tmp/ is not read
    if missing:
        raise ConfigError(
            f"--maildir {path}: no Maildir there (expected a folder with new/, cur/ and tmp/; "
            f"missing {', '.join(d + '/' for d in missing)})"
        )


def _check_mbox(path: str) -> None:
    """A missing file, a folder, or a file that is not an mbox (it would read as no message)."""
    from pathlib import Path

    from triage.errors import ConfigError

    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"--mbox {path} is a folder (use --maildir for a Maildir)")
    if not file.is_file():
        raise ConfigError(f"--mbox {path}: no such file")
    with open(file, "rb") as fh:
        start = fh.read(5)
    if start and start != b"From ":
        raise ConfigError(
            f"--mbox {path} is not an mbox: an mbox starts each message with a 'From ' line, "
            f"this file starts with {start!r} ({_EML_HINT})"
        )
