"""Intake: one path from any channel to a stored, classified, routed, timed ticket.

The API, the web form, the e-mail poller and the chat/phone/social bridges
all end here, so every ticket gets the same treatment: store it
(idempotently), let the model fill the fields it is sure of (decision
``apply``), let the rules adjust priority, team and SLA policy, route it,
start its SLA clocks. Fields the model only suggests or abstains on stay open
and the ticket waits in the triage queue for a person.

The order is what makes intake fast under concurrency (bench/bench_store.py):

1. :func:`assess` runs the model and the encoder on the payload alone: no
   database, no lock; the text is encoded once, for the heads and the
   duplicate search alike;
2. :func:`find_similar` reads the recent open tickets (a read transaction:
   under SQLite WAL it waits for no writer and no writer waits for it);
3. only then the write transaction opens (``BEGIN IMMEDIATE`` on SQLite) and
   does nothing but inserts and updates, flushed together at commit.

A caller that already holds a transaction on the session (a test writing
several tickets in one unit of work, an e-mail that is also a reply) keeps
it: the reads then run inside it and see its uncommitted tickets.

The Triager and RuleSet are passed in (the service holds them); both are
optional so the store works, and is tested, without a model bundle.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Collection, Iterator

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.htmltext import as_text  # the model reads what the store keeps
from triage.rule_input import rule_input, team_of, ticket_known, with_desk_teams
from triage.store import clocks, event_log, feedback, incidents, notices, routing, similar, tickets
from triage.store.read_only import read_options
from triage.store.tables import TicketRow, utcnow
from triage.features import HISTORY_DEPTH
from triage.text import model_text
from triage.ticket import Ticket

GIVEN_FIELDS = ("ticket_type", "category", "priority", "affected_service", "customer_tier", "team")


@dataclass
class IntakeResult:
    ticket: TicketRow
    created: bool
    prediction: dict[str, Any] | None = None
    rules: dict[str, Any] | None = None
    team_source: str | None = None
    open_fields: list[str] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    incident: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket": tickets.to_dict(self.ticket),
            "created": self.created,
            "prediction": self.prediction,
            "rules": self.rules,
            "team_source": self.team_source,
            "open_fields": self.open_fields,
            "duplicate_candidates": self.duplicates,
            "incident_proposal": self.incident,
        }


@dataclass
class Assessment:
    """What the model and the encoder say about a payload, before anything is stored."""

    prediction: dict[str, Any] | None = None
    vector: np.ndarray | None = None
    encoder: str | None = None


def intake(
    session: Session,
    payload: dict[str, Any],
    *,
    actor: str,
    triager=None,
    ruleset=None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    encoder=None,
    auto_assign: bool = True,
    team_map: dict[str, str] | None = None,
) -> IntakeResult:
    """Create (or, for a retried key, find) the ticket and run the whole triage on it.

    With an ``encoder`` the ticket's vector is kept and similar open tickets
    are offered as duplicates (and a burst proposed as a major incident).
    ``team_map`` (the desk's) renames the model's team labels to desk teams.
    The writes go into ``session``; the caller commits. :func:`intake_grouped` is the
    same, committed together with the intakes of other threads (group commit).
    """
    item = prepare(
        session, payload, triager=triager, encoder=encoder, idempotency_key=idempotency_key, now=now
    )
    return write(session, item, actor=actor, ruleset=ruleset, auto_assign=auto_assign, team_map=team_map)


def intake_many(
    store,
    payloads: list[dict[str, Any]],
    *,
    actor: str,
    keys: list[str | None] | None = None,
    triager=None,
    ruleset=None,
    now: datetime | None = None,
    encoder=None,
    auto_assign: bool = True,
    team_map: dict[str, str] | None = None,
) -> list[IntakeResult | Exception]:
    """Many tickets at once (a mail poll, a bulk import, or one request among concurrent ones).

    Each payload is prepared (model, encoder, reads) outside any write transaction,
    then the writes go through the store's group committer (``triage.store.group``):
    up to ``MAX_GROUP`` tickets per transaction, with those of other threads. An entry
    is the ticket's result once its transaction committed, or the exception that
    ticket alone raised (nothing of it stored; the others are). ``keys``: one
    idempotency key (or None) per payload.
    """
    keys = keys if keys is not None else [None] * len(payloads)
    if len(keys) != len(payloads):
        raise ValueError("one idempotency key (or None) per payload")
    out: list[IntakeResult | Exception | None] = [None] * len(payloads)
    works, where = [], []
    reads = encoder is not None or getattr(triager, "uses_history", False)
    with store.session() if reads else nullcontext(None) as session:  # reads only, if any
        for i, (payload, key) in enumerate(zip(payloads, keys)):
            try:
                item = prepare(
                    session, payload, triager=triager, encoder=encoder, idempotency_key=key, now=now
                )
            except Exception as exc:  # noqa: BLE001 - this payload fails alone
                out[i] = exc
                continue
            works.append(_Writer(item, actor, ruleset, auto_assign, team_map))
            where.append(i)
    for i, job in zip(where, store.committer.run_all(works)):
        out[i] = job.error if job.error is not None else job.result
    return [r for r in out if r is not None]


def intake_grouped(
    store, payload: dict[str, Any], *, idempotency_key: str | None = None, **kwargs
) -> IntakeResult:
    """:func:`intake` of one ticket, committed with the concurrent intakes of this process."""
    (result,) = intake_many(store, [payload], keys=[idempotency_key], **kwargs)
    if isinstance(result, Exception):
        raise result
    return result


class _Writer:
    """One ticket's write job for the group committer. The committer first hands every
    writer of a group to :meth:`create_group` (the group's tickets: one statement per table),
    then calls each, which writes the rest of its ticket."""

    __slots__ = ("item", "actor", "ruleset", "auto_assign", "team_map", "made")

    def __init__(self, item: Prepared, actor: str, ruleset, auto_assign: bool, team_map) -> None:
        self.item, self.actor, self.ruleset = item, actor, ruleset
        self.auto_assign, self.team_map = auto_assign, team_map
        self.made: tuple[TicketRow, bool] | Exception | None = None

    @staticmethod
    def create_group(session: Session, writers: list[_Writer]) -> None:
        made = tickets.create_many(
            session,
            [(w.item.payload, w.actor, w.item.idempotency_key, w.item.now) for w in writers],
            defer=True,  # the rows go in with the fields the jobs set: one write each, not two
        )
        for writer, entry in zip(writers, made):
            writer.made = entry

    def __call__(self, session: Session) -> IntakeResult:
        made, self.made = self.made, None  # a rerun creates again (its group's hook runs again)
        if isinstance(made, Exception):
            raise made
        return write(
            session,
            self.item,
            actor=self.actor,
            ruleset=self.ruleset,
            auto_assign=self.auto_assign,
            team_map=self.team_map,
            made=made,
        )


@dataclass
class Prepared:
    """One payload with everything intake decides before its write transaction opens."""

    payload: dict[str, Any]
    assessed: Assessment
    found: similar.Found
    now: datetime
    idempotency_key: str | None = None


def prepare(
    session: Session | None,
    payload: dict[str, Any],
    *,
    triager=None,
    encoder=None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Prepared:
    """The model, the encoder and the reads (history, similar tickets): no write, no write lock.

    ``session`` is read only with an ``encoder`` or a triager that ``uses_history`` (else None
    will do: intake_many then opens none)."""
    now = now or utcnow()
    history = None
    if getattr(triager, "uses_history", False) and payload.get("requester"):
        assert session is not None, "a triager that uses history needs a session to read it"
        with _reading(session):  # heads trained with the requester's earlier tickets
            history = requester_history(session, str(payload["requester"]), now)
    assessed = assess(payload, triager=triager, encoder=encoder, now=now, history=history)
    found = similar.Found()
    if assessed.vector is not None:
        assert session is not None, "duplicate search needs a session to read"
        with _reading(session):
            found = find_similar(
                session,
                similar.Probe(
                    assessed.vector,
                    assessed.encoder,
                    payload.get("requester"),
                    _text(payload.get("subject")),
                    now,
                ),
            )
    return Prepared(payload, assessed, found, now, idempotency_key)


def write(
    session: Session,
    item: Prepared,
    *,
    actor: str,
    ruleset=None,
    auto_assign: bool = True,
    team_map: dict[str, str] | None = None,
    made: tuple[TicketRow, bool] | None = None,
) -> IntakeResult:
    """The write half of intake: store, fields, rules, route, clocks, notice (the caller commits).

    ``made``: the ticket already stored by :func:`tickets.create_many` (group commit)."""
    payload, assessed, found, now = item.payload, item.assessed, item.found, item.now
    # the write transaction starts with the first statement below
    with event_log.batched(session):  # the ticket's events: one multi-row INSERT
        ticket, created = made or tickets.create(
            session, payload, actor=actor, idempotency_key=item.idempotency_key, now=now
        )
        result = IntakeResult(ticket, created)
        if not created:
            return result
        with session.no_autoflush:  # predictions, clocks, vector: written together
            outcome, due = _triage(
                session, ticket, payload, assessed, found, result, ruleset, actor, team_map, now
            )
    attached = False
    if ruleset is not None and incidents.is_vip(ticket):
        with event_log.unbatched(session):  # the rules run again on the stored clocks
            attached = _vip_in_major_incident(session, ticket, ruleset, team_map, now)
    if auto_assign and not attached and ticket.queue != tickets.TRIAGE_QUEUE:
        with event_log.unbatched(session):  # an attempt's savepoint may roll back its events
            _try_assign(
                session,
                ticket,
                actor,
                now,
                senior=bool(outcome and outcome.senior),
                incomplete_ok=bool(outcome and outcome.escalate),
            )
    # after the clocks: the mail says when to expect us (as just started, unless a major
    # incident's rules moved them: then as stored)
    notices.received(session, ticket, now, due=None if attached else due)
    return result


def _triage(
    session: Session,
    ticket: TicketRow,
    payload: dict[str, Any],
    assessed: Assessment,
    found: similar.Found,
    result: IntakeResult,
    ruleset,
    actor: str,
    team_map: dict[str, str] | None,
    now: datetime,
):
    """Given fields, model, rules, route, clocks, vector: the writes of a new ticket.

    Returns the rules' outcome and the due time of each clock started."""
    given = {k: payload[k] for k in GIVEN_FIELDS if payload.get(k) not in (None, "")}
    tickets.set_fields(session, ticket, given, actor=actor, now=now, retime=False)
    _classify(session, ticket, assessed.prediction, result, now)
    seen = with_desk_teams(result.prediction, team_map)
    model_fields = (seen or {}).get("fields") or {}
    outcome = _apply_rules(session, ticket, ruleset, seen, result, now)
    rules_team = (
        outcome.team
        if outcome is not None and (_rule_did(ruleset, outcome, "route_to") or "team" in outcome.accepted)
        else None
    )
    choice = routing.choose_team(model_fields, rules_team or ticket.team)
    if choice.source == "rules" and ticket.team and not rules_team:
        choice.source = "given"
    result.team_source = choice.source
    urgent = bool(outcome is not None and outcome.escalate)
    _route(session, ticket, choice, result, actor, now, urgent=urgent)
    due = {row.kind: row.due_at for row in _start_clocks(session, ticket, ruleset, outcome, now)}
    if assessed.vector is not None:
        similar.remember(session, ticket, assessed.vector, assessed.encoder)
        found = found.for_ticket(ticket.id)
        result.duplicates, result.incident = found.duplicates, found.incident
        from triage.store import proposals

        proposals.record(session, result.incident, now=now)  # listed for agents to decide
    return outcome, due


def assess(
    payload: dict[str, Any],
    *,
    triager=None,
    encoder=None,
    now: datetime | None = None,
    history: dict[str, list[str]] | None = None,
) -> Assessment:
    """Classify and encode the payload: CPU only, so it runs before any transaction opens.

    The text is encoded once: when the triager's heads read vectors of the same
    encoder, they get this vector instead of encoding the text again.
    """
    out = Assessment()
    subject, body = _text(payload.get("subject")), as_text(_text(payload.get("body")))
    takes_texts = getattr(triager, "takes_texts", False)
    # once, for the encoder and the heads; not at all when neither reads it (no model)
    text = model_text(subject, body) if encoder is not None or takes_texts else ""
    if encoder is not None:
        out.vector = np.asarray(encoder.encode([text])[0], dtype=np.float32)
        out.encoder = similar.encoder_name(encoder)
    if triager is not None:
        shape = Ticket(
            subject=subject,
            body=body,
            channel=str(payload.get("channel") or "api"),
            customer_tier=payload.get("customer_tier"),
            affected_service=payload.get("affected_service"),
            requester=payload.get("requester"),
            created_at=now,
        )
        shared = out.vector is not None and _same_space(triager, encoder)
        extra: dict[str, Any] = {"histories": [history]} if history is not None else {}
        if takes_texts:  # spares the heads normalising it again
            extra["texts"] = [text]
        out.prediction = (
            triager.classify([shape], vectors=out.vector[None, :], **extra)
            if shared
            else triager.classify([shape], **extra)
        )
        out.prediction = out.prediction[0]
    return out


def find_similar(session: Session, probe: similar.Probe) -> similar.Found:
    """Duplicate candidates and a burst for the probe (reads only; the one search intake makes)."""
    return similar.search(session, probe)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _same_space(triager, encoder) -> bool:
    """Does the triager read vectors from this encoder (so ours can be handed to it)?"""
    reference = getattr(triager, "encoder_reference", None)
    if not callable(reference):
        return False
    try:
        return reference() == encoder.reference()
    except Exception:  # noqa: BLE001 - when in doubt, let the triager encode for itself
        return False


@contextmanager
def _reading(session: Session) -> Iterator[None]:
    """Run reads in their own read transaction unless the caller already holds one.

    On SQLite a session's transaction starts with ``BEGIN IMMEDIATE`` (the write
    lock); reads done before the write get a plain ``BEGIN`` and end before the
    write begins, so concurrent intakes do not queue behind each other's reads.
    """
    own = not session.in_transaction() and not (session.new or session.dirty or session.deleted)
    if not own:
        yield
        return
    session.connection(execution_options=read_options(session.get_bind().dialect.name))
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    session.commit()  # nothing was written: this only ends the read transaction


def requester_history(
    session: Session, requester: str | None, before: datetime, *, exclude_id: int | None = None
) -> dict[str, list[str]]:
    """The requester's earlier tickets as the model's history feature (triage.features):
    team, category and type of up to ``HISTORY_DEPTH`` tickets created strictly before
    ``before``, newest first. Only stored, earlier tickets: the one being classified is not."""
    if not requester:
        return {}
    stmt = (
        select(TicketRow.team, TicketRow.category, TicketRow.ticket_type)
        .where(func.lower(TicketRow.requester) == requester.strip().lower(), TicketRow.created_at < before)
        .order_by(TicketRow.created_at.desc())
        .limit(HISTORY_DEPTH)
    )
    if exclude_id is not None:
        stmt = stmt.where(TicketRow.id != exclude_id)
    rows = session.execute(stmt).all()
    return {
        "team": [r[0] for r in rows if r[0]],
        "category": [r[1] for r in rows if r[1]],
        "type": [r[2] for r in rows if r[2]],
    }


def _classify(
    session: Session, ticket: TicketRow, out: dict[str, Any] | None, result: IntakeResult, now: datetime
) -> dict[str, Any]:
    """Store the model's view; set the fields it may set; remember the open ones."""
    if out is None:
        return {}
    result.prediction = out
    feedback.store_predictions(session, ticket, out, now)
    actor = f"model:{out.get('bundle_id')}"
    for head, pred in (out.get("fields") or {}).items():
        name = feedback.field_of(head)
        if name not in tickets.EDITABLE or getattr(ticket, name) not in (None, ""):
            continue  # the requester or an agent already said; the model does not overrule
        if pred.get("decision") == "apply" and pred.get("label") is not None and name != "team":
            tickets.set_fields(session, ticket, {name: pred["label"]}, actor=actor, now=now, retime=False)
        elif pred.get("decision") != "apply":
            result.open_fields.append(name)
    return out.get("fields") or {}


def _rule_did(ruleset, outcome, action: str) -> bool:
    fired = set(outcome.fired)
    return any(action in rule.actions for rule in getattr(ruleset, "rules", []) if rule.name in fired)


def _apply_rules(
    session: Session, ticket: TicketRow, ruleset, prediction, result: IntakeResult, now: datetime
):
    if ruleset is None:
        return None
    known = ticket_known(ticket)
    outcome = ruleset.evaluate(
        rule_input(known, prediction, _team_state(session, ruleset, known, prediction, now)), now
    )
    result.rules = outcome.to_dict()
    act_on_outcome(session, ticket, ruleset, outcome, now, open_fields=result.open_fields)
    return outcome


def _vip_in_major_incident(session: Session, ticket: TicketRow, ruleset, team_map, now: datetime) -> bool:
    """A VIP's ticket during an open major incident: link, rules again, a senior owner."""
    if incidents.attach_vip(session, ticket, now=now) is None:
        return False
    session.flush()
    rerun_rules(session, ticket, ruleset, actor="rules", now=now, team_map=team_map)
    if ticket.team and ticket.queue == tickets.TRIAGE_QUEUE:
        tickets.set_fields(session, ticket, {"queue": ticket.team}, actor="rules", now=now, retime=False)
    if ticket.team and ticket.assignee is None:
        _try_assign(session, ticket, "rules", now, senior=True, incomplete_ok=True)
    return True


def _team_state(session: Session, ruleset, known, prediction, now: datetime):
    """The team's queue depth and backlog age, read only when a rule uses them."""
    if not getattr(ruleset, "reads_team_state", False):
        return None
    return routing.team_state(session, team_of(known, prediction), now)


def act_on_outcome(
    session: Session,
    ticket: TicketRow,
    ruleset,
    outcome,
    now: datetime,
    *,
    open_fields: list[str] | None = None,
    keep: Collection[str] = (),
) -> list[str]:
    """Write what the rules decided onto the ticket: priority, accepted fields, tags, escalation.

    Team and queue are left to routing (intake) or to the caller (a re-run keeps
    the team an agent chose unless a rule routes). Fields in ``keep`` (what a person just
    set) are never overwritten. Returns the changed fields.
    """
    actor = "rules:" + ",".join(outcome.fired) if outcome.fired else "rules"
    changes: dict[str, Any] = {}
    if (
        _rule_did(ruleset, outcome, "set_priority")
        or _rule_did(ruleset, outcome, "raise_priority")
        or "priority" in outcome.accepted
    ):
        changes["priority"] = outcome.fields.get("priority")
    for name in outcome.accepted:
        store_name = "ticket_type" if name == "type" else name
        if name not in ("priority", "team") and getattr(ticket, store_name) in (None, ""):
            changes[store_name] = outcome.fields.get(name)
    for name in list(changes):
        if open_fields is not None and name in open_fields:
            open_fields.remove(name)
    for name in keep:
        changes.pop(name, None)
    if outcome.tags and not set(outcome.tags) <= set(ticket.tags or []):
        changes["tags"] = sorted(set(ticket.tags or []) | set(outcome.tags))
    changed = tickets.set_fields(session, ticket, changes, actor=actor, now=now, retime=False)
    if outcome.escalate and not _escalated(session, ticket):
        tickets.record(session, ticket, "escalate", None, "rules", actor, now)
        changed.append("escalate")
    return changed


def _escalated(session: Session, ticket: TicketRow) -> bool:
    from sqlalchemy import select

    from triage.store.tables import TicketEvent

    return (
        session.scalars(
            select(TicketEvent.id).where(TicketEvent.ticket_id == ticket.id, TicketEvent.field == "escalate")
        ).first()
        is not None
    )


def rerun_rules(
    session: Session,
    ticket: TicketRow,
    ruleset,
    *,
    actor: str,
    now: datetime | None = None,
    team_map: dict[str, str] | None = None,
    keep: Collection[str] = (),
) -> dict[str, Any] | None:
    """A person changed a field: the rules run again on the ticket as it is now.

    Accepting a suggested P1 thus escalates, tags and re-targets the SLA (on the
    policy the rules pick) exactly as if the ticket had arrived as P1. The fields the
    person just set (``keep``) are theirs: a re-run neither rewrites nor re-routes them,
    or an agent's correction of the team would be undone by the rule that first routed
    it (and the correction lost as a training label).
    """
    if ruleset is None:
        return None
    now = now or utcnow()
    prediction = with_desk_teams(_stored_prediction(session, ticket), team_map)
    known = ticket_known(ticket)
    outcome = ruleset.evaluate(
        rule_input(known, prediction, _team_state(session, ruleset, known, prediction, now)), now
    )
    changed = act_on_outcome(session, ticket, ruleset, outcome, now, keep=keep)
    if "priority" in changed:
        clocks.retarget(session, ticket, now)
    if outcome.sla is not None:
        clocks.change_policy(session, ticket, ruleset.policies[outcome.sla.policy], now)
    if (
        _rule_did(ruleset, outcome, "route_to")
        and outcome.team
        and outcome.team != ticket.team
        and "team" not in keep
    ):
        tickets.set_fields(
            session,
            ticket,
            {"team": outcome.team, "queue": outcome.team},
            actor="rules:" + ",".join(outcome.fired),
            now=now,
        )
    if outcome.senior and ticket.team and ticket.status in tickets.OPEN_STATUSES:
        _try_assign(session, ticket, "rules", now, senior=True, incomplete_ok=outcome.escalate)
    return {**outcome.to_dict(), "changed": changed}


def _stored_prediction(session: Session, ticket: TicketRow) -> dict[str, Any]:
    """The model's stored view of the ticket, in the Triager's result shape."""
    preds = feedback.latest_predictions(session, ticket.id)
    return {
        "fields": {
            head: {"label": p.label, "decision": p.decision, "probability": p.probability}
            for head, p in preds.items()
        }
    }


def _route(
    session: Session,
    ticket: TicketRow,
    choice: routing.TeamChoice,
    result: IntakeResult,
    actor: str,
    now: datetime,
    *,
    urgent: bool = False,
) -> None:
    """Team queue when the ticket is complete, else the triage queue (team kept as a hint).

    An escalated ticket (``urgent``) with a team skips the triage queue even with
    fields missing: an outage must reach people now; its owner fills the gaps.
    """
    team_actor = (
        actor
        if choice.source in ("given", "triage")
        else f"model:{(result.prediction or {}).get('bundle_id')}"
        if choice.source == "model"
        else "rules"
    )
    if choice.team and choice.team != ticket.team:
        tickets.set_fields(session, ticket, {"team": choice.team}, actor=team_actor, now=now, retime=False)
    complete = choice.team and (urgent or not tickets.missing_mandatory(ticket))
    queue = choice.team if complete else tickets.TRIAGE_QUEUE
    tickets.set_fields(session, ticket, {"queue": queue}, actor=team_actor, now=now, retime=False)
    if choice.team:
        routing.ensure_team_once(session, choice.team)


def _start_clocks(session: Session, ticket: TicketRow, ruleset, outcome, now: datetime) -> list:
    if ruleset is None or outcome is None or outcome.sla is None:
        return []
    policy = ruleset.policies[outcome.sla.policy]
    return clocks.start(
        session,
        ticket,
        policy,
        now,
        priority=outcome.sla.priority,
        tier=outcome.sla.tier,
        levels=ruleset.escalation_levels,
        fresh=True,
    )


def _try_assign(
    session: Session,
    ticket: TicketRow,
    actor: str,
    now: datetime,
    *,
    senior: bool = False,
    incomplete_ok: bool = False,
) -> None:
    """Give it an owner if someone in the team has room; otherwise it waits in the queue.

    ``senior``: a rule asked for experience (a P1, a VIP in a major incident), so
    the most senior available agent of the team goes first.
    """
    from triage.errors import TransitionError

    try:
        with session.begin_nested():
            routing.assign(
                session, ticket.id, actor="routing", now=now, senior=senior, incomplete_ok=incomplete_ok
            )
    except TransitionError:
        session.refresh(ticket)
