"""Has what arrives changed since the model was trained? Label and text drift, pure.

A model is only as good as the match between its training data and today's
tickets. Two cheap signals, both computed on distributions so they need no
labels:

* predicted-label drift: the population stability index (PSI) between the
  classes the model predicted on its holdout and the classes it predicts on
  live tickets. PSI > 0.2 is the usual "act on it" level (0.1 "watch it").
* text drift: the Jensen–Shannon divergence between token frequencies of the
  training texts (a compact profile the training report keeps) and of recent
  tickets (base 2, so 0 = same, 1 = disjoint).

Both come with ``alert`` flags past configurable thresholds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Mapping, Sequence

PSI_ALERT = 0.2
JS_ALERT = 0.15
EPS = 1e-4
PROFILE_TOKENS = 300
OTHER = "<other>"
_TOKEN = re.compile(r"[a-zà-ÿ][a-zà-ÿ0-9]{2,}")
_STOP = frozenset(
    "the and for you are not with this that have has was but can our your from "
    "please thanks thank hello any all out get just into them they will would "
    "could when what there which been also its it's via per".split()
)


def _normalise(counts: Mapping[str, float], keys: Sequence[str]) -> list[float]:
    total = sum(max(0.0, float(counts.get(k, 0))) for k in keys)
    if total <= 0:
        return [1.0 / len(keys)] * len(keys) if keys else []
    return [max(0.0, float(counts.get(k, 0))) / total for k in keys]


def psi(expected: Mapping[str, float], actual: Mapping[str, float], eps: float = EPS) -> float:
    """Population stability index over the union of categories (counts or shares)."""
    keys = sorted(set(expected) | set(actual))
    if not keys:
        return 0.0
    e, a = _normalise(expected, keys), _normalise(actual, keys)
    return float(sum((ai - ei) * math.log((ai + eps) / (ei + eps)) for ei, ai in zip(e, a)))


def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two count/share maps."""
    keys = sorted(set(p) | set(q))
    if not keys:
        return 0.0
    pp, qq = _normalise(p, keys), _normalise(q, keys)
    m = [(x + y) / 2 for x, y in zip(pp, qq)]

    def kl(a: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m) if x > 0)

    return float(max(0.0, min(1.0, (kl(pp) + kl(qq)) / 2)))


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of 3+ characters without the commonest function words."""
    return [t for t in _TOKEN.findall((text or "").lower()) if t not in _STOP]


def text_profile(texts: Iterable[str], top: int = PROFILE_TOKENS) -> dict[str, int]:
    """Counts of the ``top`` commonest tokens plus everything else under ``<other>``.

    Small enough to keep in a training report, rich enough to compare with.
    """
    counts = Counter(t for text in texts for t in tokens(text))
    kept = dict(counts.most_common(top))
    kept[OTHER] = int(sum(counts.values()) - sum(kept.values()))
    return kept


def profile_against(reference: Mapping[str, int], texts: Iterable[str]) -> dict[str, int]:
    """Token counts of ``texts`` folded onto the reference's vocabulary (rest → ``<other>``)."""
    vocab = set(reference) - {OTHER}
    out: Counter = Counter()
    for text in texts:
        for t in tokens(text):
            out[t if t in vocab else OTHER] += 1
    return dict(out)


def label_drift(
    reference: Mapping[str, float],
    live: Mapping[str, float],
    threshold: float = PSI_ALERT,
    min_live: int = 30,
) -> dict:
    """PSI of predicted labels; no alert on fewer than ``min_live`` live predictions."""
    n = int(sum(live.values()))
    value = psi(reference, live) if n and reference else None
    return {
        "metric": "psi",
        "value": value,
        "threshold": threshold,
        "n_live": n,
        "min_live": min_live,
        "alert": bool(value is not None and n >= min_live and value > threshold),
        "reference": dict(reference),
        "live": dict(live),
    }


def text_drift(
    reference: Mapping[str, int], texts: Sequence[str], threshold: float = JS_ALERT, min_live: int = 30
) -> dict:
    """JS divergence of token profiles; no alert on fewer than ``min_live`` tickets."""
    texts = list(texts)
    if not reference or not texts:
        return {
            "metric": "js",
            "value": None,
            "threshold": threshold,
            "n_live": len(texts),
            "min_live": min_live,
            "alert": False,
            "top_new": [],
        }
    live = profile_against(reference, texts)
    value = js_divergence(reference, live)
    fresh = Counter(t for text in texts for t in tokens(text) if t not in reference)
    return {
        "metric": "js",
        "value": value,
        "threshold": threshold,
        "n_live": len(texts),
        "min_live": min_live,
        "alert": bool(len(texts) >= min_live and value > threshold),
        "top_new": [w for w, _ in fresh.most_common(8)],
    }
