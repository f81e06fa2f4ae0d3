"""The promotion gate of a retrain: is the challenger at least as good as the champion?

One place decides, from the side-by-side table that :mod:`training.retrain` builds on the
SAME frozen holdout (so the numbers are comparable without any re-keying):

* macro-F1 (what routing quality means for a help desk: a rare team counts like a big one)
  may not drop by more than ``margin`` on any head the champion has (default 0.01);
* calibration may not get worse: ECE (15 bins) may not rise by more than ``ece_tolerance``
  (a "0.9" that stops meaning 90 % breaks every auto-apply threshold); the default 0.02
  is about one standard error of ECE on a holdout of ~150 tickets (the demo corpus):
  smaller tolerances refuse challengers for noise;
* coverage at the target precision (the share of tickets the model could auto-apply at
  that precision, read off the precision–coverage curve) may not fall by more than
  ``coverage_tolerance``: that is the work the model takes off agents.

This is the only gate. :func:`training.tracking.promote` moves the MLflow alias: a retrain
hands it the decision taken here on the frozen holdout, and ``triage promote`` (no retrain
table) has tracking gather both versions' macro-F1 on a common holdout and judge them with
:func:`decide` too (ECE and coverage are then unknown and cannot regress).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class GateConfig:
    margin: float = 0.01
    ece_tolerance: float = 0.02
    coverage_tolerance: float = 0.03

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, dict] = field(default_factory=dict)  # head -> metric -> {champion, challenger, ok}
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _check(
    champ: float | None, chall: float | None, *, higher_is_better: bool, tolerance: float
) -> tuple[bool, float | None]:
    """(ok, delta challenger - champion). A metric the champion lacks cannot regress."""
    if champ is None:
        return True, None
    if chall is None:
        return False, None
    delta = chall - champ
    return (delta >= -tolerance if higher_is_better else delta <= tolerance), delta


def decide(table: Mapping[str, Mapping], config: GateConfig = GateConfig()) -> GateDecision:
    """``table``: head -> {"champion": metrics, "challenger": metrics} on the frozen holdout,
    metrics holding ``macro_f1``, ``ece_15`` and ``coverage_at_target`` (None when missing).
    """
    decision = GateDecision(True, config=config.to_dict())
    rules = (
        ("macro_f1", True, config.margin, "macro-F1"),
        ("ece_15", False, config.ece_tolerance, "ECE"),
        ("coverage_at_target", True, config.coverage_tolerance, "coverage at target precision"),
    )
    for head, row in table.items():
        champ, chall = row.get("champion"), row.get("challenger")
        if champ is None:
            continue  # a new head: nothing to regress against
        if chall is None:
            decision.reasons.append(f"{head}: the champion has this head, the challenger does not")
            continue
        checks = decision.checks.setdefault(head, {})
        for key, higher, tol, name in rules:
            ok, delta = _check(champ.get(key), chall.get(key), higher_is_better=higher, tolerance=tol)
            checks[key] = {
                "champion": champ.get(key),
                "challenger": chall.get(key),
                "delta": delta,
                "tolerance": tol,
                "ok": ok,
            }
            if not ok:
                decision.reasons.append(_reason(head, name, champ.get(key), chall.get(key), tol, higher))
    decision.passed = not decision.reasons
    return decision


def _reason(head: str, name: str, champ, chall, tol: float, higher: bool) -> str:
    if chall is None:
        return f"{head}: {name} missing for the challenger (champion {champ:.4f})"
    word = "drops" if higher else "rises"
    return f"{head}: {name} {word} from {champ:.4f} to {chall:.4f} (tolerance {tol:g})"


__all__ = ["GateConfig", "GateDecision", "decide"]
