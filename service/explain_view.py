"""Why the model said what it said, for the agent's ticket page.

Predictions are stored without their reasons (a reason list per head per ticket would
grow the table for little use), so the page asks the served bundle again: the terms
behind each head, the nearest training tickets for heads that read sentence vectors, and
the impact and urgency behind a derived priority. Shown beside the stored predictions,
labelled with the bundle that explains them.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from triage.ticket import Ticket


def explain_ticket(row: Any) -> dict[str, Any] | None:
    """``{"bundle_id", "heads": {head: {label, explanation, neighbours, derived_from}}}`` or
    None while no bundle is loaded (or it fails: an explanation never breaks the page)."""
    loaded = getattr(current_app.extensions.get("triage.state"), "current", None)
    triager = getattr(loaded, "triager", None)
    if triager is None:
        return None
    shape = Ticket(
        subject=row.subject or "",
        body=row.body or "",
        channel=row.channel,
        customer_tier=row.customer_tier,
        affected_service=row.affected_service,
        requester=row.requester,
        created_at=row.created_at,
    )
    try:
        out = triager.classify([shape], policy={})[0]
    except Exception:  # noqa: BLE001 - the page must render without its explanation
        current_app.logger.exception("explanation failed for ticket %s", getattr(row, "id", "?"))
        return None
    heads = {
        name: {
            "label": f.get("label"),
            "explanation": f.get("explanation") or [],
            "neighbours": f.get("neighbours") or [],
            "derived_from": f.get("derived_from"),
        }
        for name, f in (out.get("fields") or {}).items()
    }
    return {"bundle_id": out.get("bundle_id"), "heads": heads}
