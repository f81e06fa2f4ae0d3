"""Plots and the self-contained HTML page of an evaluation report.

The ``*_figure`` functions return matplotlib figures (the notebooks show them inline);
:func:`write_report` saves them. Why a separate module: matplotlib is slow to import and only needed when a report
is written, and :mod:`training.evaluation` stays a set of pure metric functions.

Safety: labels come from a customer's export, so every string that reaches the page
goes through :func:`html.escape`, and plots are embedded as base64 ``data:`` URIs in
``<img>`` tags (an SVG shown through ``<img>`` cannot run script, whatever text it holds).
Matplotlib would read ``$...$`` in a label as mathtext, so labels are escaped for it too.
No CDN, no external fetch: the page works offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from .apply_reason import no_apply_reason

_MAX_TICK_CHARS = 28
_ANNOTATE_MAX_CLASSES = 20


def _figure(**kwargs):
    """A figure outside pyplot: no backend is chosen or forced (a notebook keeps its inline
    one, a headless run needs none) and nothing is kept in pyplot's list of open figures."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _mpl_text(text: object, limit: int | None = None) -> str:
    """A label matplotlib draws literally (no mathtext), shortened for tick labels."""
    s = str(text)
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("\\", "\\\\").replace("$", r"\$")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "head"


def _save(fig, out_dir: Path, stem: str) -> dict[str, Path]:
    paths = {}
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(
            path, format=ext, dpi=110, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None
        )
        paths[ext] = path
    return paths


def _apply_levels(thresholds: Mapping) -> list[float]:
    return sorted(
        {
            float(t["apply"])
            for t in (thresholds or {}).values()
            if t and t.get("apply") is not None and math.isfinite(float(t["apply"]))
        }
    )


def reliability_figure(head: str, metrics: Mapping, thresholds: Mapping | None = None):
    """Accuracy vs confidence per bin against the diagonal; bar widths show bin counts."""
    fig = _figure(figsize=(5.5, 6))
    ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    bins = [b for b in metrics.get("reliability", []) if b["count"]]
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    if bins:
        centres = [b["mean_confidence"] for b in bins]
        ax.plot(centres, [b["accuracy"] for b in bins], marker="o", label="model")
        axc.bar(
            [(b["lower"] + b["upper"]) / 2 for b in bins],
            [b["count"] for b in bins],
            width=bins[0]["upper"] - bins[0]["lower"],
            color="tab:blue",
            alpha=0.6,
        )
    for i, level in enumerate(_apply_levels(thresholds)):
        for a in (ax, axc):
            a.axvline(
                level,
                color="tab:red",
                alpha=0.35,
                lw=1,
                label="apply thresholds" if (i == 0 and a is ax) else None,
            )
    ece = metrics.get("ece_15")
    ax.set_title(
        _mpl_text(
            f"Reliability — {head} (ECE {ece:.3f})"
            if ece is not None and not math.isnan(ece)
            else f"Reliability — {head}"
        )
    )
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    axc.set_xlabel("top-1 confidence")
    axc.set_ylabel("tickets")
    return fig


def precision_coverage_figure(head: str, metrics: Mapping):
    """Precision vs coverage of a global confidence threshold, with the per-class operating point."""
    fig = _figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    curve = metrics.get("precision_coverage", [])
    if curve:
        ax.plot(
            [p["coverage"] for p in curve], [p["precision"] for p in curve], label="global threshold sweep"
        )
    applied = (metrics.get("at_thresholds") or {}).get("applied") or {}
    if applied.get("n"):
        ax.scatter(
            [applied["coverage"]],
            [applied["precision"]],
            color="tab:red",
            zorder=3,
            label=f"apply thresholds ({100 * applied['coverage']:.0f}% at {applied['precision']:.3f})",
        )
    ax.set_title(_mpl_text(f"Precision vs coverage — {head}"))
    ax.set_xlabel("coverage (share of tickets above threshold)")
    ax.set_ylabel("precision (top-1 accuracy)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(max(0.0, min([p["precision"] for p in curve] + [0.5]) - 0.05), 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def confusion_figure(head: str, metrics: Mapping):
    """Row-normalised heatmap (colour) with counts written in when the matrix is small."""
    conf = metrics.get("confusion") or {"labels": [], "matrix": []}
    labels, m = (
        conf["labels"],
        np.asarray(conf["matrix"], dtype=float).reshape(len(conf["labels"]), len(conf["labels"])),
    )
    k = len(labels)
    size = min(4 + 0.35 * k, 22)
    fig = _figure(figsize=(size, size * 0.85))
    ax = fig.subplots()
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    ticks = [_mpl_text(lab, _MAX_TICK_CHARS) for lab in labels]
    ax.set_xticks(range(k), ticks, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), ticks, fontsize=8)
    if k <= _ANNOTATE_MAX_CLASSES:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(m[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_mpl_text(f"Confusion matrix — {head}"))
    return fig


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _clean_nan(obj):
    """JSON has no NaN: write null so every parser reads report.json."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_nan(v) for v in obj]
    return obj


def write_report(report: Mapping, out_dir) -> dict[str, Path]:
    """report.json, three plots per head (PNG + SVG) and report.html; returns {name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    data = json.loads(json.dumps(report, default=_json_default))
    paths["json"] = out_dir / "report.json"
    paths["json"].write_text(
        json.dumps(_clean_nan(data), indent=2, sort_keys=False, allow_nan=False), encoding="utf-8"
    )
    plots: dict[str, dict[str, dict]] = {}
    for head, h in (report.get("heads") or {}).items():
        m = h.get("metrics") or {}
        stem = _slug(head)
        plots[head] = {
            "reliability": _save(
                reliability_figure(head, m, h.get("thresholds")), out_dir, f"{stem}-reliability"
            ),
            "precision_coverage": _save(
                precision_coverage_figure(head, m), out_dir, f"{stem}-precision-coverage"
            ),
            "confusion": _save(confusion_figure(head, m), out_dir, f"{stem}-confusion"),
        }
        for kind, files in plots[head].items():
            for ext, path in files.items():
                paths[f"{head}.{kind}.{ext}"] = path
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(render_html(report, plots), encoding="utf-8")
    return paths


# ---- the HTML page --------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.plots img{max-width:32%;vertical-align:top;margin-right:1%}.chosen{font-weight:bold}
.muted{color:#777}table.meta td{text-align:left}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}"""


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(x, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)) and not pct:
        return str(int(x))
    return f"{100 * float(x):.1f}%" if pct else f"{float(x):.3f}"


def _table(headers: list[str], rows: list[list[str]], *, raw: bool = False) -> str:
    """Cells are escaped here unless ``raw`` (then the caller escaped them)."""
    cell = (lambda c: c) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def svg_data_uri(path: Path) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _head_section(head: str, h: Mapping, plots: Mapping, report: Mapping) -> str:
    m = h.get("metrics") or {}
    ref = h.get("reference") or {}
    at = m.get("at_thresholds") or {}
    parts = [
        f"<h2>{esc(head)}</h2>",
        _table(
            ["", "n", "accuracy", "macro-F1", "ECE (15 bins)"],
            [
                [
                    f"project model ({h.get('chosen', '?')})",
                    _num(m.get("n")),
                    _num(m.get("accuracy")),
                    _num(m.get("macro_f1")),
                    _num(m.get("ece_15")),
                ],
                [
                    f"reference {ref.get('name', 'tfidf+linearsvc')} (same run)",
                    _num(ref.get("n")),
                    _num(ref.get("accuracy")),
                    _num(ref.get("macro_f1")),
                    "–",
                ],
            ],
        ),
    ]
    why = no_apply_reason(h, report.get("config") or {})
    if why:
        parts.append(f"<p><b>Applies nothing:</b> {esc(why)}</p>")
    cands, held = h.get("candidates") or {}, h.get("candidates_holdout") or {}
    if cands:
        rows = [
            [
                ("<span class=chosen>" + esc(k) + " (chosen)</span>") if k == h.get("chosen") else esc(k),
                esc(_num(v)),
            ]
            + ([esc(_num(held.get(k)))] if held else [])
            for k, v in cands.items()
        ]
        parts += [
            "<h3>Candidates (macro-F1; the winner is chosen on the calibration split)</h3>",
            _table(["candidate", "calibration"] + (["holdout"] if held else []), rows, raw=True),
        ]
    parts += [
        "<h3>At the chosen thresholds (holdout)</h3>",
        _table(
            ["decision", "tickets", "coverage", "precision"],
            [
                [
                    k,
                    _num((at.get(k) or {}).get("n")),
                    _num((at.get(k) or {}).get("coverage"), True),
                    _num((at.get(k) or {}).get("precision")),
                ]
                for k in ("applied", "suggested", "abstained")
            ],
        ),
    ]
    imgs = "".join(
        f'<img alt="{esc(kind)} plot for {esc(head)}" src="{svg_data_uri(files["svg"])}">'
        for kind, files in plots.items()
    )
    parts.append(f'<div class="plots">{imgs}</div>')
    thr = h.get("thresholds") or {}
    per_at = at.get("per_class") or {}
    rows = [
        [
            lab,
            _num(v.get("support")),
            _num(v.get("precision")),
            _num(v.get("recall")),
            _num(v.get("f1")),
            _num((thr.get(lab) or {}).get("apply")),
            _num((thr.get(lab) or {}).get("suggest")),
            _num((per_at.get(lab) or {}).get("applied_n")),
            _num((per_at.get(lab) or {}).get("applied_precision")),
        ]
        for lab, v in (m.get("per_class") or {}).items()
    ]
    parts += [
        "<h3>Per class</h3>",
        _table(
            [
                "class",
                "support",
                "precision",
                "recall",
                "F1",
                "apply ≥",
                "suggest ≥",
                "applied",
                "precision when applied",
            ],
            rows,
        ),
    ]
    return "\n".join(parts)


def render_html(report: Mapping, plots: Mapping) -> str:
    """One offline page: summary, then per head tables and plots; every data string escaped."""
    data = report.get("data") or {}
    fields = [
        ("bundle", report.get("bundle_id")),
        ("created", report.get("created_at")),
        ("git", report.get("git_sha")),
        *((k, v) for k, v in data.items() if k != "warnings"),
    ]
    meta = _table(
        ["field", "value"],
        [
            [k, json.dumps(v, default=str) if isinstance(v, (dict, list)) else v]
            for k, v in fields
            if v not in (None, "", {}, [])
        ],
    ).replace("<table>", "<table class=meta>", 1)
    dropped = report.get("dropped_rows") or {}
    drop_html = (
        _table(["reason", "rows"], [[k, _num(v)] for k, v in dropped.items()])
        if dropped
        else "<p class=muted>No rows dropped.</p>"
    )
    notes = data.get("warnings") or []
    notes_html = (
        "<h3>Warnings about the export</h3><ul>"
        + "".join(f"<li>{esc(n.get('message', ''))}</li>" for n in notes)
        + "</ul>"
        if notes
        else ""
    )
    heads = "\n".join(
        _head_section(head, h, plots.get(head, {}), report) for head, h in (report.get("heads") or {}).items()
    )
    title = f"Evaluation report — {report.get('bundle_id', '')}"
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"
        "<p class=muted>All numbers are on the held-out split: no fitting or threshold choice "
        "saw these rows.</p>"
        f"{meta}{notes_html}<h3>Dropped rows</h3>{drop_html}{heads}</body></html>"
    )
