"""Knowledge-base endpoints: ``GET /v1/kb/suggest`` (every keystroke) and article lookup.

Suggest is on the typing path, so it does the least possible: one embedding of
a short text (memoised, since typing repeats prefixes after a backspace), one
mat-vec over the index, no rules, no classifier heads. Below the relevance
threshold nothing is returned, which is a valid answer; the threshold is in every
response. A query longer than the encoder's window is cut by a documented rule
(:func:`triage.kb.query_window`: whole sentences from the start, up to 100 words), not
refused; only a query above ``TRIAGE_SUGGEST_MAX_CHARS`` (a guard on request size) is.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from triage.kb import QUERY_WORDS, kb_query

from . import limiter
from .auth import require_role
from .classify import jsonable
from .errors import ApiError, field_error
from .validation import ASCII_INT, Text, summary

bp = Blueprint("kb", __name__)
SUGGEST_PARAMS = {"q", "k"}


@bp.get("/v1/kb/suggest")
@require_role("intake", "agent")
@limiter.limited("suggest", key=limiter.caller)
def suggest():
    config = current_app.config
    query, k = _suggest_params(int(config["TRIAGE_SUGGEST_MAX_CHARS"]), int(config["TRIAGE_SUGGEST_MAX_K"]))
    loaded = current_app.extensions["triage.state"].snapshot()
    # the same normalisation as tickets (and training), then the encoder's window
    text, truncated = kb_query(None, query)
    suggestions = []
    if text:
        vec = loaded.encoder.encode([text])[0]
        suggestions = loaded.kb.search(text, vec, k=k)
    current_app.extensions["triage.metrics"].kb_suggestions.labels(
        "suggest", str(bool(suggestions)).lower()
    ).inc()
    return jsonify(
        ok=True,
        request_id=g.request_id,
        bundle_id=loaded.bundle_id,
        query=query,
        threshold=loaded.kb.config.threshold,
        query_window={"words": QUERY_WORDS, "truncated": truncated},
        suggestions=[jsonable(s) for s in suggestions],
    )


def _suggest_params(max_chars: int, max_k: int) -> tuple[str, int]:
    """Strict query parameters: q (required, bounded), k (1..max); nothing else."""
    errs = [
        field_error(name, "unknown query parameter", expected="q or k", got=name)
        for name in request.args
        if name not in SUGGEST_PARAMS
    ]
    query = request.args.get("q")
    if query is None:
        errs.append(field_error("q", "missing query parameter", expected="text", got=None))
    else:
        query = Text(max_len=max_chars).check(query, "q", {}, errs)
    k = 5
    raw_k = request.args.get("k")
    if raw_k is not None:  # ASCII digits only: "²".isdigit() is True but int("²") fails
        if not ASCII_INT.fullmatch(raw_k) or not 1 <= int(raw_k) <= max_k:
            errs.append(field_error("k", "out of range", expected=f"integer 1..{max_k}", got=raw_k))
        else:
            k = int(raw_k)
    if errs:
        raise ApiError(422, summary(errs), errs)
    return query, k


@bp.get("/v1/kb/articles/<article_id>")
@require_role("intake", "agent")
def article(article_id: str):
    loaded = current_app.extensions["triage.state"].snapshot()
    found = _article_index(loaded).get(article_id)
    if found is None:
        raise ApiError(404, f"no KB article with id {article_id!r}")
    return jsonify(ok=True, request_id=g.request_id, article=jsonable(found.to_dict()))


def _article_index(loaded) -> dict:
    """id → Article, built once per loaded state (the snapshot is immutable)."""
    index = loaded.extra.get("articles_by_id")
    if index is None:
        index = {a.id: a for a in loaded.kb.articles}
        loaded.extra["articles_by_id"] = index  # benign race: both writers build the same dict
    return index
