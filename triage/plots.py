"""Small server-side SVG charts (lines, points, grouped bars) with titles and labelled axes.

Hand-built rather than matplotlib so a page renders in milliseconds in a service
worker, with no font cache or backend state, and so every piece of text that
ends up in the SVG (class names come from customer data) goes through one
escaping function. The output is a standalone ``<svg>`` element that can be
inlined in a page or an exported HTML file; it uses no scripts and no inline
``style`` attributes (presentation attributes only), so a strict CSP allows it.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Mapping, Sequence

W, H = 370, 270
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 44, 46
COLOURS = ("#1d4ed8", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#be185d")
FONT = 'font-family="system-ui, sans-serif"'


def _t(text: Any) -> str:
    """SVG-safe text (quotes too: attribute values use the same function)."""
    return escape(str(text), quote=True)


class Frame:
    """Maps data coordinates to the plot area of a ``W``×``H`` chart."""

    def __init__(
        self, xlim: tuple[float, float], ylim: tuple[float, float], width: int = W, height: int = H
    ) -> None:
        self.x0, self.x1 = xlim
        self.y0, self.y1 = ylim
        self.w, self.h = width, height

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return round(PAD_L + (v - self.x0) / span * (self.w - PAD_L - PAD_R), 2)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return round(self.h - PAD_B - (v - self.y0) / span * (self.h - PAD_T - PAD_B), 2)


def _open(frame: Frame, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.w} {frame.h}" '
        f'width="{frame.w}" height="{frame.h}" role="img" class="chart" '
        f'aria-label="{_t(title)}">',
        f"<title>{_t(title)}</title><desc>{_t(desc)}</desc>",
        f'<rect x="0" y="0" width="{frame.w}" height="{frame.h}" fill="#ffffff"/>',
        f'<text x="{frame.w / 2}" y="20" text-anchor="middle" font-size="14" '
        f'font-weight="600" {FONT} fill="#0f172a">{_t(title)}</text>',
    ]


def _axes(
    frame: Frame,
    xlabel: str,
    ylabel: str,
    xticks: Sequence[tuple[float, str]],
    yticks: Sequence[tuple[float, str]],
) -> list[str]:
    left, bottom = PAD_L, frame.h - PAD_B
    out = [
        f'<line x1="{left}" y1="{bottom}" x2="{frame.w - PAD_R}" y2="{bottom}" stroke="#475569"/>',
        f'<line x1="{left}" y1="{PAD_T}" x2="{left}" y2="{bottom}" stroke="#475569"/>',
    ]
    for v, label in xticks:
        x = frame.x(v)
        out.append(
            f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="#475569"/>'
            f'<text x="{x}" y="{bottom + 16}" text-anchor="middle" font-size="10" '
            f'{FONT} fill="#334155">{_t(label)}</text>'
        )
    for v, label in yticks:
        y = frame.y(v)
        out.append(
            f'<line x1="{left}" y1="{y}" x2="{frame.w - PAD_R}" y2="{y}" '
            f'stroke="#e2e8f0"/><text x="{left - 6}" y="{y + 3}" text-anchor="end" '
            f'font-size="10" {FONT} fill="#334155">{_t(label)}</text>'
        )
    out.append(
        f'<text x="{(left + frame.w - PAD_R) / 2}" y="{frame.h - 8}" text-anchor="middle" '
        f'font-size="12" {FONT} fill="#0f172a">{_t(xlabel)}</text>'
    )
    out.append(
        f'<text x="14" y="{(PAD_T + bottom) / 2}" text-anchor="middle" font-size="12" '
        f'{FONT} fill="#0f172a" transform="rotate(-90 14 {(PAD_T + bottom) / 2})">'
        f"{_t(ylabel)}</text>"
    )
    return out


def _unit_ticks() -> list[tuple[float, str]]:
    return [(v / 5, f"{v * 20}%") for v in range(6)]


def _legend(frame: Frame, names: Sequence[str], colours: Sequence[str] = COLOURS) -> list[str]:
    out, x = [], PAD_L + 8
    for i, name in enumerate(names):
        c = colours[i % len(colours)]
        out.append(
            f'<rect x="{x}" y="27" width="10" height="10" fill="{c}"/>'
            f'<text x="{x + 14}" y="36" font-size="10" {FONT} '
            f'fill="#0f172a">{_t(name)}</text>'
        )
        x += 24 + 6 * len(str(name))
    return out


def _empty(frame: Frame, message: str) -> str:
    return (
        f'<text x="{frame.w / 2}" y="{frame.h / 2}" text-anchor="middle" font-size="12" '
        f'{FONT} fill="#64748b">{_t(message)}</text>'
    )


def reliability(bins: Sequence[Mapping[str, Any]], title: str) -> str:
    """Accuracy against mean confidence per bin (dot area ~ count), with the diagonal."""
    f = Frame((0, 1), (0, 1))
    out = _open(f, title, "Reliability diagram: points on the diagonal are well calibrated.")
    out += _axes(f, "mean predicted confidence", "accuracy (share correct)", _unit_ticks(), _unit_ticks())
    out.append(
        f'<line x1="{f.x(0)}" y1="{f.y(0)}" x2="{f.x(1)}" y2="{f.y(1)}" '
        f'stroke="#94a3b8" stroke-dasharray="4 3"/>'
    )
    used = [b for b in bins if b.get("count") and b.get("mean_confidence") is not None]
    biggest = max((b["count"] for b in used), default=1)
    pts = []
    for b in used:
        x, y = f.x(b["mean_confidence"]), f.y(b["accuracy"])
        pts.append(f"{x},{y}")
        r = 3 + 6 * (b["count"] / biggest) ** 0.5
        out.append(
            f'<circle cx="{x}" cy="{y}" r="{r:.1f}" fill="{COLOURS[0]}" '
            f'fill-opacity="0.55"><title>{_t(b["count"])} tickets: confidence '
            f"{b['mean_confidence']:.2f}, accuracy {b['accuracy']:.2f}</title></circle>"
        )
    if pts:
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{COLOURS[0]}"/>')
    else:
        out.append(_empty(f, "no holdout predictions"))
    return "".join(out + ["</svg>"])


def precision_coverage(
    points: Sequence[Mapping[str, Any]], title: str, marks: Sequence[Mapping[str, Any]] = ()
) -> str:
    """Precision against coverage as one global threshold sweeps; ``marks`` are labelled dots
    (``coverage``, ``precision``, ``label``): the thresholds in force."""
    ys = [p["precision"] for p in points if p.get("precision") is not None]
    ys += [m["precision"] for m in marks if m.get("precision") is not None]
    lo = min(0.5, (min(ys) if ys else 0.5) - 0.05)
    lo = max(0.0, round(lo * 10) / 10 - (0.1 if lo * 10 % 1 else 0))
    f = Frame((0, 1), (lo, 1))
    out = _open(f, title, "Precision of the kept predictions against the share kept.")
    yt = [(v, f"{v:.0%}") for v in [lo + i * (1 - lo) / 5 for i in range(6)]]
    out += _axes(f, "coverage (share of tickets decided)", "precision", _unit_ticks(), yt)
    line = " ".join(
        f"{f.x(p['coverage'])},{f.y(p['precision'])}" for p in points if p.get("precision") is not None
    )
    if line:
        out.append(f'<polyline points="{line}" fill="none" stroke="{COLOURS[0]}" stroke-width="2"/>')
    else:
        out.append(_empty(f, "no holdout predictions"))
    for i, m in enumerate(marks):
        if m.get("precision") is None:
            continue
        x, y = f.x(m["coverage"]), f.y(m["precision"])
        right = x > f.w * 0.55  # labels on the right half grow leftwards, inside the chart
        out.append(
            f'<circle cx="{x}" cy="{y}" r="5" fill="{COLOURS[1]}"><title>{_t(m["label"])}'
            f'</title></circle><text x="{x - 7 if right else x + 7}" '
            f'y="{y + 16 + 11 * (i % 3)}" text-anchor="{"end" if right else "start"}" '
            f'font-size="10" {FONT} fill="{COLOURS[1]}">{_t(m["label"])}</text>'
        )
    return "".join(out + ["</svg>"])


def _count_ticks(biggest: float) -> tuple[float, list[tuple[float, str]]]:
    """Whole-number ticks (about four) up to a round top above ``biggest``."""
    step = max(1, math.ceil(biggest / 4))
    top = step * max(1, math.ceil(biggest / step))
    return float(top), [(float(v), str(v)) for v in range(0, top + 1, step)]


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    ylabel: str,
    *,
    xlabel: str = "",
    unit: bool = True,
    width: int = W,
    colours: Sequence[str] = COLOURS,
    empty: str = "no data yet",
) -> str:
    """Bars per category, one colour per series (``unit``: values are shares in [0, 1])."""
    values = [v for vs in series.values() for v in vs if v is not None]
    if unit:
        top, yt = 1.0, _unit_ticks()
    else:
        top, yt = _count_ticks(max(values + [1]))
    f = Frame((0, max(1, len(categories))), (0, top), width=width)
    out = _open(f, title, f"{ylabel} per {xlabel or 'category'}")
    step = max(1, len(categories) // 12)
    xt = [(i + 0.5, _short(c)) for i, c in enumerate(categories) if i % step == 0]
    out += _axes(f, xlabel, ylabel, xt, yt)
    names = list(series)
    slot = 0.8 / max(1, len(names))
    for s, name in enumerate(names):
        for i, v in enumerate(series[name]):
            if v is None:
                continue
            x0, x1 = f.x(i + 0.1 + s * slot), f.x(i + 0.1 + (s + 1) * slot)
            y = f.y(v)
            out.append(
                f'<rect x="{x0}" y="{y}" width="{max(1.0, x1 - x0 - 1):.2f}" '
                f'height="{max(0.0, f.y(0) - y):.2f}" fill="{colours[s % len(colours)]}">'
                f"<title>{_t(categories[i])} · {_t(name)}: "
                f"{_t(f'{v:.0%}' if unit else v)}</title></rect>"
            )
    if not categories or not values or (not unit and not any(values)):
        out.append(_empty(f, empty))
    out += _legend(f, names, colours)
    return "".join(out + ["</svg>"])


def _short(text: Any, limit: int = 12) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
