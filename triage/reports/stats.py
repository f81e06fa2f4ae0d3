"""Intervals for proportions and their differences, small enough to check by hand.

Admins act on rates measured on a few dozen visits or overrides; a point estimate
alone invites over-reading noise. Wilson's interval behaves at 0 and 1 and for
small n; Newcombe's method 10 combines two Wilson intervals into one for a
difference of independent proportions (treatment vs control deflection).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Two-sided Wilson score interval of ``k`` successes in ``n``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float | None, float, float]:
    """(p1 - p2, lower, upper) by Newcombe's hybrid score method (his method 10).

    The difference is ``None`` (and the interval (-1, 1)) when either group is empty.
    """
    if n1 <= 0 or n2 <= 0:
        return None, -1.0, 1.0
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, lower), min(1.0, upper)


def rate(k: int, n: int) -> float | None:
    return k / n if n else None
