"""Why a trained head sets no field without a human, in words (the terminal summary and
report.html both say it beside "applied 0.0%")."""

from __future__ import annotations

import math
from typing import Mapping

from triage.thresholds import MIN_COUNT, TARGET_PRECISION, min_rows_for


def no_apply_reason(head: Mapping, config: Mapping) -> str | None:
    """Why a head applies no label without a human, or None when it applies some: a head
    at accuracy 1.000 reporting "applied 0.0%" looks broken otherwise."""
    applied = ((head.get("metrics") or {}).get("at_thresholds") or {}).get("applied") or {}
    if applied.get("n"):
        return None
    if head.get("apply_disabled"):
        share = (config.get("fractions") or [0, 0.1])[1]
        need = min_rows_for(config.get("target_precision") or TARGET_PRECISION)
        return f"{head['apply_disabled']}; with {share:.0%} of the rows for calibration, that is about {math.ceil(need / share)} labelled rows in the export"
    thresholds = head.get("thresholds") or {}
    if not thresholds:
        return None
    if any(t.get("apply") is not None for t in thresholds.values()):
        return "the holdout had no prediction above a class's apply threshold"
    most = max(thresholds.items(), key=lambda kv: kv[1].get("n_predicted") or 0)
    goal = f"precision {config.get('target_precision') or TARGET_PRECISION:.2f}"
    return (
        f"no class showed {goal} (lower confidence bound) over at least {MIN_COUNT} predictions "
        f"on the calibration and out-of-fold rows (most predicted: {most[0]!r}, "
        f"{most[1].get('n_predicted', 0)}); more labelled rows, or a lower --target-precision, let it apply"
    )
