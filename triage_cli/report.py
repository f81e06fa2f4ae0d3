"""``triage report confidence|knowledge|sla``: the admin reports without a browser.

The same dicts as the pages (``service/reports_data.py``): ``--json`` prints them,
``confidence --html FILE`` writes the self-contained HTML export, and without
either a short text summary is printed. Settings come from the usual ``TRIAGE_*``
variables (database, models dir, bundle); options override them.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="admin reports: model confidence, knowledge, SLA",
        description="Print or export the reports the admin pages show.",
    )
    sub = p.add_subparsers(dest="report", metavar="REPORT")
    conf = sub.add_parser(
        "confidence", help="per head: holdout calibration, live decisions, overrides, drift"
    )
    conf.add_argument("--html", type=Path, default=None, help="write the HTML export here")
    conf.add_argument(
        "--psi-alert", type=float, default=None, help="label-drift alert above this PSI (default 0.2)"
    )
    conf.add_argument(
        "--js-alert",
        type=float,
        default=None,
        help="text-drift alert above this JS divergence (default 0.15)",
    )
    know = sub.add_parser("knowledge", help="articles, deflection vs control, knowledge gaps")
    know.add_argument(
        "--no-gaps",
        action="store_true",
        help="skip the knowledge gaps (they load the bundle's encoder and KB)",
    )
    know.add_argument(
        "--gap-threshold",
        type=float,
        default=None,
        help="a ticket is a gap below this best-article score (default: the KB's relevance threshold)",
    )
    sla = sub.add_parser("sla", help="SLA compliance per priority, team and tier; daily trend")
    desk = sub.add_parser(
        "desk",
        help="desk performance per team, agent, category, priority",
        description="Mean and median time to first response and to resolve, first-contact "
        "resolution, reopen rate, backlog size and age, volume per day and agent "
        "load, for tickets created in the window. Every rate is printed with its n; "
        "rates on fewer than 30 tickets are marked 'few'.",
    )
    for q in (conf, know, sla, desk):
        q.add_argument("--json", action="store_true", help="print the report as JSON")
        q.add_argument("--days", type=int, default=30, help="window in days (default 30)")
        q.add_argument("--database", default=None, help="database URL (TRIAGE_DATABASE_URL)")
        q.add_argument("--bundle", default=None, help="bundle folder (default: the served one)")
        q.add_argument("--models-dir", default=None, help="models folder (TRIAGE_MODELS_DIR)")
        q.set_defaults(func=run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


@contextmanager
def _app(args: argparse.Namespace, load: bool) -> Iterator:
    """The service app (loaded only when the report needs the model), in a request context."""
    from service.app import create_app

    config = {"TRIAGE_LOAD": "sync" if load else "off", "TRIAGE_SIGHUP": False}
    for key, value in (
        ("TRIAGE_DATABASE_URL", args.database),
        ("TRIAGE_BUNDLE", args.bundle),
        ("TRIAGE_MODELS_DIR", args.models_dir),
    ):
        if value:
            config[key] = str(Path(value).resolve()) if key != "TRIAGE_DATABASE_URL" else value
    app = create_app(config)
    with app.test_request_context("/admin/reports/"):
        yield app


def run(args: argparse.Namespace) -> int:
    handler = {"confidence": _confidence, "knowledge": _knowledge, "sla": _sla, "desk": _desk}[args.report]
    return handler(args)


def _confidence(args: argparse.Namespace) -> int:
    from flask import render_template

    from service import reports_data as data
    from service.reports import export_css
    from service.state import resolve_bundle
    from service.store import get_store
    from triage.reports.drift import JS_ALERT, PSI_ALERT

    with _app(args, load=False) as app:
        bundle = resolve_bundle(app.config)
        with get_store().session(readonly=True) as s:
            report = data.confidence_report(
                s,
                bundle,
                days=args.days,
                psi_alert=PSI_ALERT if args.psi_alert is None else args.psi_alert,
                js_alert=JS_ALERT if args.js_alert is None else args.js_alert,
            )
        if args.html:
            page = render_template(
                "reports/confidence_export.html",
                report=report,
                charts=data.confidence_charts(report),
                css=export_css(),
            )
            args.html.write_text(page, encoding="utf-8")
            print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    elif not args.html:
        print(confidence_text(report))
    return 0


def confidence_text(report: dict) -> str:
    lines = [
        f"bundle {report['bundle_id']}  (live: last {report['window_days']} days)",
        "",
        f"{'head':<14}{'mode':<14}{'preds':>7}{'applied':>9}{'suggest':>9}{'abstain':>9}"
        f"{'label PSI':>11}{'text JS':>9}  alert",
    ]
    for head, s in report["heads"].items():
        d, dr = s["live"]["decisions"], s["drift"]
        lines.append(
            f"{head[:13]:<14}{s['policy'].get('mode', 'auto'):<14}{d['n']:>7}"
            + "".join(f"{_pct(d[k]['share']):>9}" for k in ("apply", "suggest", "abstain"))
            + f"{_num(dr['labels']['value']):>11}{_num(dr['text']['value']):>9}"
            + f"  {'DRIFT' if s['alert'] else ''}"
        )
    return "\n".join(lines)


def _knowledge(args: argparse.Namespace) -> int:
    from service import reports_data as data
    from service.store import get_store

    with _app(args, load=not args.no_gaps) as app:
        loaded = app.extensions["triage.state"].current
        with get_store().session(readonly=True) as s:
            report = data.knowledge_report(
                s,
                getattr(loaded, "kb", None),
                getattr(loaded, "encoder", None),
                days=args.days,
                threshold=args.gap_threshold,
            )
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
        return 0
    d = report["deflection"]
    diff = d["difference"]
    print(
        f"deflection: with suggestions {_pct(d['treatment']['rate'])} of "
        f"{d['treatment']['visits']} visits, control {_pct(d['control']['rate'])} of "
        f"{d['control']['visits']}; difference "
        + (
            "n/a"
            if diff["value"] is None
            else f"{_pct(diff['value'])} [{_pct(diff['ci_low'])}, {_pct(diff['ci_high'])}]"
        )
    )
    print(f"\n{'article':<30}{'shown':>7}{'opened':>8}{'solved':>8}{'anyway':>8}")
    for a in report["articles"]:
        print(
            f"{str(a['article_id'])[:29]:<30}{a['shown']:>7}{a['opened']:>8}{a['solved']:>8}"
            f"{a['ticket_anyway']:>8}"
        )
    for g in report["gaps"]:
        print(
            f"\ngap: {g['label']} ({g['size']} tickets): "
            + "; ".join(f"#{e['id']} {e['subject']}" for e in g["examples"])
        )
    return 0


def _sla(args: argparse.Namespace) -> int:
    from service import reports_data as data
    from service.store import get_store

    with _app(args, load=False):
        with get_store().session(readonly=True) as s:
            report = data.sla_report(s, days=args.days)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
        return 0
    for kind in ["all"] + report["kinds"]:
        sec = report["sections"][kind]
        print(f"\n{kind}")
        for group in ("priority", "team", "customer_tier"):
            for r in sec[group]:
                print(
                    f"  {group:<14}{r[group][:20]:<21}met {r['met']:>4}  breached "
                    f"{r['breached']:>4}  open {r['open']:>4}  near {r['near']:>4}  "
                    f"compliance {_pct(r['compliance'])}"
                )
    return 0


def _desk(args: argparse.Namespace) -> int:
    from service import reports_data as data
    from service.tickets import get_store

    with _app(args, load=False):
        with get_store().session(readonly=True) as s:
            report = data.desk_report(s, days=args.days)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
        return 0
    print(desk_text(report))
    return 0


def desk_text(report: dict) -> str:
    """The desk report as a table per group; n beside every figure, 'few' under 30."""

    def hrs(x):
        return "-" if x is None else f"{x:.1f}h"

    def share(r):
        if not r["n"]:
            return "- (n=0)"
        return f"{_pct(r['rate'])} (n={r['n']}{', few' if r['small'] else ''})"

    lines = [f"desk performance, tickets created in the last {report['days']} days"]
    for group in ["overall", "team", "agent", "category", "priority"]:
        rows = [{"overall": "all", **report["overall"]}] if group == "overall" else report["by"][group]
        lines.append(f"\n{group}")
        for r in rows:
            fr, rs, bl = r["first_response"], r["resolve"], r["backlog"]
            lines.append(
                f"  {str(r[group])[:20]:<21}tickets {r['tickets']:>5}  first response "
                f"{hrs(fr['mean_h'])}/{hrs(fr['median_h'])} (n={fr['n']})  resolve "
                f"{hrs(rs['mean_h'])}/{hrs(rs['median_h'])} (n={rs['n']})  FCR {share(r['fcr'])}"
                f"  reopen {share(r['reopen'])}  backlog {bl['n']} (oldest {hrs(bl['max_age_h'])})"
            )
    lines.append("\nagent load")
    for a in report["agents"]:
        lines.append(f"  {a['agent']:<21}open {a['open']:>3} / capacity {a['capacity']:>3}")
    return "\n".join(lines)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"
