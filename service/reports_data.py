"""The data behind the admin reports, gathered once for the pages, the exports and the CLI.

Kept apart from the blueprint so ``triage report`` builds exactly the dicts the
pages show (the JSON export *is* the dict), and so the charts are made in one
place. Charts are SVG strings from :mod:`triage.plots`, whose text is escaped
there; they are marked safe here, once, and nowhere else.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping

from markupsafe import Markup

from triage import plots
from triage.reports import confidence, desk, knowledge, sla
from triage.reports.drift import JS_ALERT, PSI_ALERT
from triage.store import policies, portal_events
from triage.store.tables import utcnow

DEFAULT_DAYS = 30


def read_manifest(bundle_path: str | Path) -> dict:
    return json.loads((Path(bundle_path) / "manifest.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------- confidence
def confidence_report(
    session,
    bundle_path: str | Path,
    *,
    manifest: Mapping | None = None,
    heads: list[str] | None = None,
    days: int = DEFAULT_DAYS,
    psi_alert: float = PSI_ALERT,
    js_alert: float = JS_ALERT,
    now: datetime | None = None,
) -> dict:
    """The confidence report dict (also the JSON export) for the served bundle."""
    now = now or utcnow()
    manifest = dict(manifest or read_manifest(bundle_path))
    training = confidence.load_training_report(bundle_path)
    heads = heads or list(manifest.get("heads") or {})
    live = confidence.live_from_store(
        session, heads, now - timedelta(days=days), bundle_id=manifest.get("bundle_id")
    )
    policy = policies.effective(session)
    report = confidence.build_report(
        {**manifest, "heads": {h: (manifest.get("heads") or {}).get(h, {}) for h in heads}},
        training,
        live,
        policy,
        generated_at=now.isoformat(timespec="seconds"),
        window_days=days,
        psi_alert=psi_alert,
        js_alert=js_alert,
    )
    for head, section in report["heads"].items():
        scores = ((training.get("heads") or {}).get(head) or {}).get("holdout_scores") or {}
        pol = section["policy"]
        section["in_force"] = (
            confidence.what_if(
                scores, section["thresholds"], mode=pol.get("mode", "auto"), overrides=pol.get("classes")
            )
            if scores.get("predicted")
            else None
        )
    report["history"] = policies.history(session, limit=50)
    return report


def what_if_for(
    bundle_path: str | Path,
    session,
    head: str,
    label: str | None,
    apply: float | None,
    suggest: float | None,
    mode: str | None,
) -> dict:
    """Estimates for a proposed change, next to the estimates of the policy in force."""
    training = confidence.load_training_report(bundle_path)
    h = (training.get("heads") or {}).get(head) or {}
    scores = h.get("holdout_scores") or {}
    thresholds = (
        ((read_manifest(bundle_path).get("heads") or {}).get(head) or {}).get("thresholds")
        or h.get("thresholds")
        or {}
    )
    if not scores.get("predicted"):
        return {
            "available": False,
            "reason": "this bundle keeps no per-ticket holdout scores (retrain to get what-if estimates)",
        }
    pol = policies.effective(session).get(head) or {}
    current = confidence.what_if(
        scores,
        thresholds,
        label,
        *_current(pol, thresholds, label),
        mode=pol.get("mode", "auto"),
        overrides=pol.get("classes"),
    )
    proposed = confidence.what_if(
        scores,
        thresholds,
        label,
        apply,
        suggest,
        mode=mode or pol.get("mode", "auto"),
        overrides=pol.get("classes"),
    )
    return {"available": True, "head": head, "label": label, "current": current, "proposed": proposed}


def _current(pol: Mapping, thresholds: Mapping, label: str | None) -> tuple:
    t = dict(thresholds.get(str(label)) or {})
    t.update((pol.get("classes") or {}).get(str(label)) or {})
    return t.get("apply"), t.get("suggest")


def confidence_charts(report: Mapping) -> dict[str, dict[str, Markup]]:
    """Per head: reliability, precision–coverage (thresholds marked), per-class bars."""
    out = {}
    for head, s in report["heads"].items():
        hold = s.get("holdout") or {}
        per_class = hold.get("per_class") or []
        marks = _marks(s)
        out[head] = {
            "reliability": Markup(
                plots.reliability(hold.get("reliability") or [], f"{head}: reliability (holdout)")
            ),
            "precision_coverage": Markup(
                plots.precision_coverage(
                    hold.get("precision_coverage") or [], f"{head}: precision vs coverage", marks
                )
            ),
            "per_class": Markup(
                plots.grouped_bars(
                    [c["label"] for c in per_class],
                    {
                        "precision": [c.get("precision") for c in per_class],
                        "recall": [c.get("recall") for c in per_class],
                    },
                    f"{head}: precision, recall per class",
                    "share",
                    xlabel="class",
                )
            ),
        }
    return out


def _marks(section: Mapping) -> list[dict]:
    """The operating points at the bundle's thresholds and under the admins' policy."""
    at = ((section.get("holdout") or {}).get("at_thresholds") or {}).get("applied") or {}
    marks = []
    if at.get("precision") is not None:
        marks.append(
            {
                "coverage": at["coverage"],
                "precision": at["precision"],
                "label": "auto-apply at bundle thresholds",
            }
        )
    live = ((section.get("in_force") or {}).get("head") or {}).get("applied") or {}
    policy = section.get("policy") or {}
    if live.get("precision") is not None and (policy.get("classes") or policy.get("mode", "auto") != "auto"):
        marks.append(
            {
                "coverage": live["coverage"],
                "precision": live["precision"],
                "label": "auto-apply under admin policy",
            }
        )
    return marks


# ----------------------------------------------------------------- knowledge
def knowledge_report(
    session,
    kb=None,
    encoder=None,
    *,
    days: int = DEFAULT_DAYS,
    threshold: float | None = None,
    now: datetime | None = None,
) -> dict:
    now = now or utcnow()
    since = now - timedelta(days=days)
    titles = {a.id: a.title for a in getattr(kb, "articles", [])}
    cut = threshold if threshold is not None else getattr(getattr(kb, "config", None), "threshold", None)
    gaps = []
    if kb is not None and encoder is not None:
        recent = knowledge.recent_tickets(session, since)
        known = knowledge.stored_vectors(session, [t["id"] for t in recent], encoder)
        gaps = knowledge.gaps_with_kb(recent, kb, encoder, cut, known=known)
    return knowledge.build_report(
        portal_events.article_counts(session, since),
        portal_events.outcome_counts(session, since),
        gaps,
        titles=titles,
        threshold=cut,
        generated_at=now.isoformat(timespec="seconds"),
        window_days=days,
    )


def knowledge_charts(report: Mapping) -> dict[str, Markup]:
    d = report["deflection"]
    top = report["articles"][:10]
    return {
        "deflection": Markup(
            plots.grouped_bars(
                ["with suggestions", "control (none shown)"],
                {"deflected (no ticket)": [d["treatment"]["rate"], d["control"]["rate"]]},
                "Portal visits ending without a ticket",
                "share of visits",
                xlabel="group",
                empty="no portal visits yet",
            )
        ),
        "articles": Markup(
            plots.grouped_bars(
                [a["article_id"] for a in top],
                {
                    "opened": [a["open_rate"] for a in top],
                    "solved": [a["solve_rate"] for a in top],
                    "ticket anyway": [a["ticket_anyway_rate"] for a in top],
                },
                "Most shown articles: what visitors did",
                "share of times shown",
                xlabel="article",
                width=560,
            )
        ),
    }


# ----------------------------------------------------------------- SLA
def sla_report(session, *, days: int = DEFAULT_DAYS, now: datetime | None = None) -> dict:
    now = now or utcnow()
    rows = sla.rows_from_store(session, now - timedelta(days=days), now)
    return sla.build_report(rows, now, days=days)


def sla_charts(report: Mapping) -> dict[str, Markup]:
    all_ = report["sections"]["all"]
    daily = all_["daily"]
    by_prio = all_["priority"]
    return {
        "daily": Markup(
            plots.grouped_bars(
                [d["day"][5:] for d in daily],
                {"breached": [d["breached"] for d in daily], "near-breach": [d["near"] for d in daily]},
                "Breaches and near-breaches per day",
                "clocks",
                xlabel="day (UTC)",
                unit=False,
                width=680,
                colours=("#dc2626", "#d97706"),
                empty="no breach or near-breach in this window",
            )
        ),
        "priority": Markup(
            plots.grouped_bars(
                [f"P{r['priority']}" if r["priority"].isdigit() else r["priority"] for r in by_prio],
                {"compliance": [r["compliance"] for r in by_prio]},
                "SLA compliance per priority",
                "met / (met + breached)",
                xlabel="priority",
                empty="no clock has finished yet",
            )
        ),
    }


# ----------------------------------------------------------------- desk performance
def desk_report(session, *, days: int = DEFAULT_DAYS, now: datetime | None = None) -> dict:
    now = now or utcnow()
    rows, agents = desk.rows_from_store(session, now - timedelta(days=days))
    return desk.build_report(rows, now, days=days, agents=agents)


def desk_charts(report: Mapping) -> dict[str, Markup]:
    vol = report["volume"]
    return {
        "volume": Markup(
            plots.grouped_bars(
                [d["day"][5:] for d in vol],
                {"created": [d["created"] for d in vol], "resolved": [d["resolved"] for d in vol]},
                "Tickets created and resolved per day",
                "tickets",
                xlabel="day (UTC)",
                unit=False,
                width=680,
                colours=("#2563eb", "#16a34a"),
                empty="no tickets in this window",
            )
        )
    }
