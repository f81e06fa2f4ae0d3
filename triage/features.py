"""Context features: what a ticket says besides its text, built the same way for training and service.

A help desk knows more than the words: the channel a ticket came in on, the customer's tier,
the service it names, and what the same requester asked before. These reach the model as
*context tokens* (``channel=email``, ``history.team=Network``), one short string per ticket,
which the heads read through their own binary bag-of-tokens block beside the TF-IDF text
(see :class:`triage.classifiers.TextHead`). One builder, :func:`context_strings`, serves
training (from an export's mapped ``metadata`` columns) and the service (from a
:class:`~triage.ticket.Ticket` and the requester's earlier tickets in the store).

Requester history is the one feature that can leak: a ticket's own label, or a later
ticket's, must never describe it. :func:`requester_history` therefore looks only at tickets
created strictly *before* the one being described (ties in time are not "before"), and the
service passes only tickets already stored when the new one arrives.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

# Feature groups, in the order an ablation reports them. ``history`` = the labels (per head
# in HISTORY_HEADS) of the requester's earlier tickets.
GROUPS = ("channel", "customer_tier", "affected_service", "history")
HISTORY_HEADS = ("team", "category", "type")
HISTORY_DEPTH = 5  # the requester's last N earlier tickets: old habits fade
_TOKEN_SAFE = re.compile(r"\s+")


def _tok(name: str, value: Any) -> str:
    return f"{name}={_TOKEN_SAFE.sub('_', str(value).strip().lower())}"


def requester_history(
    requesters: Sequence[str | None],
    times: Sequence[datetime | None],
    labels: Mapping[str, Sequence[str | None]],
    heads: Iterable[str] = HISTORY_HEADS,
    depth: int = HISTORY_DEPTH,
) -> list[dict[str, list[str]]]:
    """Per row: ``{head: [labels of the requester's earlier tickets, newest first]}``.

    Only rows with a known requester and time take part; a row's history holds rows of the
    same requester whose time is strictly earlier, so neither its own label nor a later
    ticket's can reach its features.
    """
    heads = [h for h in heads if h in labels]
    by_requester: dict[str, list[int]] = defaultdict(list)
    for i, (who, when) in enumerate(zip(requesters, times)):
        if who and when is not None:
            by_requester[str(who).strip().lower()].append(i)
    out: list[dict[str, list[str]]] = [{} for _ in requesters]
    for rows in by_requester.values():
        rows.sort(key=lambda i: times[i])
        for pos, i in enumerate(rows):
            earlier = [j for j in rows[:pos] if times[j] < times[i]][::-1][:depth]
            out[i] = {h: [str(labels[h][j]) for j in earlier if labels[h][j] is not None] for h in heads}
    return out


def context_tokens(
    *,
    channel: Any = None,
    customer_tier: Any = None,
    affected_service: Any = None,
    history: Mapping[str, Sequence[str]] | None = None,
    groups: Iterable[str] = GROUPS,
) -> str:
    """The context string of one ticket: space-separated ``group=value`` tokens."""
    groups = set(groups)
    out = []
    for name, value in (
        ("channel", channel),
        ("customer_tier", customer_tier),
        ("affected_service", affected_service),
    ):
        if name in groups and value not in (None, ""):
            out.append(_tok(name, value))
    if "history" in groups and history:
        for head, values in history.items():
            counts = Counter(values)
            out += [_tok(f"history.{head}", v) for v in sorted(counts)]
            if values:
                out.append(_tok(f"history.{head}.last", values[0]))
    return " ".join(out)


def context_strings(
    metadata: Mapping[str, Sequence[Any]],
    n: int,
    history: Sequence[Mapping[str, Sequence[str]]] | None = None,
    groups: Iterable[str] = GROUPS,
) -> list[str]:
    """Context strings for ``n`` rows from mapped metadata columns (missing ones are blank)."""
    groups = tuple(groups)
    col = {k: metadata.get(k) or [None] * n for k in ("channel", "customer_tier", "affected_service")}
    return [
        context_tokens(
            channel=col["channel"][i],
            customer_tier=col["customer_tier"][i],
            affected_service=col["affected_service"][i],
            history=history[i] if history else None,
            groups=groups,
        )
        for i in range(n)
    ]


def ticket_context(ticket: Any, history: Mapping[str, Sequence[str]] | None, groups: Iterable[str]) -> str:
    """The service's side of :func:`context_strings`, for one :class:`~triage.ticket.Ticket`."""
    return context_tokens(
        channel=_value(getattr(ticket, "channel", None)),
        customer_tier=getattr(ticket, "customer_tier", None),
        affected_service=getattr(ticket, "affected_service", None),
        history=history,
        groups=groups,
    )


def available_groups(metadata: Mapping[str, Sequence[Any]]) -> tuple[str, ...]:
    """The groups an export can feed: a metadata column with at least one value.

    History needs both a requester and a time.
    """

    def has(key: str) -> bool:
        return any(v not in (None, "") for v in metadata.get(key) or [])

    out = [g for g in GROUPS[:3] if has(g)]
    if has("requester") and has("created_at"):
        out.append("history")
    return tuple(out)


def _value(v: Any) -> Any:
    return getattr(v, "value", v)  # enums (Channel) → their value
