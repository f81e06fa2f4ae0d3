"""The tables of the ticketing core (SQLAlchemy 2 typed declarative).

One rule shapes the schema: what happened is never overwritten. Ticket rows
hold the current state, ``ticket_events`` the append-only history, and every
"exactly once" promise (intake idempotency, one escalation per level, one
watcher per address) is a unique constraint, because only the database can
keep it across several service workers.

Times are stored as naive UTC and handed back timezone-aware (``UTCDateTime``)
so SQLite and PostgreSQL compare them the same way.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Ids are PostgreSQL ``integer`` columns; SQLite would take up to 2^63, but the two stores
# must answer the same id alike, so both treat anything beyond this as "no such row".
ID_MAX = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; naive UTC on disk."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {value!r}")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


agent_teams = Table(
    "agent_teams",
    Base.metadata,
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # desk.yaml: the rules' calendar the team works on, who is paged, and whether the
    # team is still in the desk file (a removed team keeps its tickets' history)
    calendar: Mapped[str | None] = mapped_column(String(100))
    escalation_contacts: Mapped[list[Any] | None] = mapped_column(default=list)
    description: Mapped[str | None] = mapped_column(Text, default="")
    active: Mapped[bool | None] = mapped_column(Boolean, default=True)  # NULL reads as true
    agents: Mapped[list["Agent"]] = relationship(secondary=agent_teams, back_populates="teams")


class Agent(Base):
    """A person who works tickets; ``capacity`` bounds their open tickets."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    skills: Mapped[list[Any]] = mapped_column(default=list)
    capacity: Mapped[int] = mapped_column(default=10)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[str | None] = mapped_column(String(320))
    seniority: Mapped[str | None] = mapped_column(String(20), default="regular")
    active: Mapped[bool | None] = mapped_column(Boolean, default=True)  # in the desk; NULL: yes
    teams: Mapped[list[Team]] = relationship(secondary=agent_teams, back_populates="agents")


class DeskQueue(Base):
    """A named queue beyond the one every team has (e.g. ``major-incidents``)."""

    __tablename__ = "desk_queues"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    team: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DeskChange(Base):
    """Who changed which desk object, how (file apply or admin API): append-only."""

    __tablename__ = "desk_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # team | agent | queue
    name: Mapped[str] = mapped_column(String(100), index=True)
    field: Mapped[str] = mapped_column(String(100))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketRow(Base):
    """The current state of one ticket (its past is in ``ticket_events``)."""

    __tablename__ = "tickets"
    # who opened what when: a requester's tickets of a time range (the outbox's mail-loop
    # guard, a portal's "my tickets") read as one index range each, not every ticket of the
    # range filtered by requester (migration 0013)
    __table_args__ = (Index("ix_tickets_requester_created_at", "requester", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(20), default="api")
    requester: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    category: Mapped[str | None] = mapped_column(String(100))
    # ITIL ticket type (incident, service request, ...): the "type" head's field
    ticket_type: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[int | None] = mapped_column(Integer)
    affected_service: Mapped[str | None] = mapped_column(String(200))
    customer_tier: Mapped[str | None] = mapped_column(String(50))
    team: Mapped[str | None] = mapped_column(String(100), index=True)
    queue: Mapped[str] = mapped_column(String(100), default="triage", index=True)
    assignee: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), index=True)
    resolution: Mapped[str | None] = mapped_column(String(50))
    message_id: Mapped[str | None] = mapped_column(String(500), unique=True)  # e-mail intake
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    escalation_level: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class TicketEvent(Base):
    """One change to one field: append-only, never updated or deleted."""

    __tablename__ = "ticket_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(100))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))  # user id or "model:<bundle id>"
    at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketVector(Base):
    """The embedding of a ticket's text, for near-duplicate and burst detection at intake.

    ``encoder`` names the encoder (vectors of two encoders never compare);
    ``vector`` is float32 bytes; ``created_at`` is copied for the window query.
    """

    __tablename__ = "ticket_vectors"
    __table_args__ = (Index("ix_ticket_vectors_recent", "encoder", "created_at"),)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    encoder: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comment(Base):
    """A follow-up: agent reply, customer message or e-mail; ``moved_from`` remembers merges."""

    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text, default="")
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    channel: Mapped[str] = mapped_column(String(20), default="api")
    message_id: Mapped[str | None] = mapped_column(String(500), unique=True)
    moved_from: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Watcher(Base):
    __tablename__ = "watchers"
    __table_args__ = (UniqueConstraint("ticket_id", "address"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    moved_from: Mapped[int | None] = mapped_column(Integer)


class Prediction(Base):
    """What a model bundle said about one head of one ticket."""

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    head: Mapped[str] = mapped_column(String(100))
    label: Mapped[str | None] = mapped_column(String(200))
    probability: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(20))
    bundle_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Feedback(Base):
    """An agent's correction of a predicted field: a label for the next retrain."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    head: Mapped[str] = mapped_column(String(100))
    predicted: Mapped[str | None] = mapped_column(String(200))
    corrected: Mapped[str | None] = mapped_column(String(200))
    decision: Mapped[str | None] = mapped_column(String(20))
    bundle_id: Mapped[str] = mapped_column(String(200))
    confidence: Mapped[float | None] = mapped_column(Float)
    by: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SlaClockRow(Base):
    """One SLA clock of one ticket; ``state`` holds ``triage.sla.Clock`` serialised.

    ``due_at`` (breach instant) and ``next_level_at`` (when the next escalation
    level is reached; NULL while paused or stopped) are copies kept so the
    escalation sweep reads an index instead of every clock.
    """

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "kind"),
        Index("ix_sla_clocks_sweep", "running", "next_level_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))  # first_response | resolution
    policy: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    running: Mapped[bool] = mapped_column(Boolean, default=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    next_level_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    breached: Mapped[bool] = mapped_column(Boolean, default=False)


class Escalation(Base):
    """A level reached by a clock: the unique constraint makes it happen once."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "clock", "level"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    clock: Mapped[str] = mapped_column(String(30))
    level: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(50), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Link(Base):
    """duplicate_of (a merge, undoable) or parent_incident; ``undone_at`` keeps the record."""

    __tablename__ = "links"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    """A retried intake with the same key answers the ticket created the first time."""

    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[Any]] = mapped_column(default=list)  # empty = every event
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class OutboxMessage(Base):
    """Something to send, written in the same transaction as its cause, sent later.

    ``kind`` says what: a ``webhook`` delivery (``webhook_id``) or a ``mail``
    (``message_id`` is its Message-ID, fixed at queue time so a retry resends the
    same mail and a customer's answer threads back to ``ticket_id``).
    ``dedupe_key`` makes a notice happen once (``received:42``, ``reply:17``...).
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="webhook")
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    event: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The rows still to send, and only those (migration 0013): a delivered or failed row is never
# due again. Before, (delivered_at, next_attempt_at) kept every failed row (a bounce, the
# mail-loop guard's) in the ``delivered_at IS NULL`` range for good, so each delivery pass and
# the doorbell's oldest-due read walked all of them: more server CPU per intake the longer a
# desk ran (round 8, ``pgserver``). On ``id``: the claims take the due rows in id order, which
# PostgreSQL, with statistics that see many unsent rows, reads by walking an id index from the
# oldest row (the primary key's: every row ever queued); this one holds only the unsent. The
# predicate is written as the due queries write theirs (``failed IS false``; ``IS 0`` on
# SQLite), which both databases need to use a partial index.
_DUE = and_(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed.is_(False))
Index("ix_outbox_due", OutboxMessage.id, postgresql_where=_DUE, sqlite_where=_DUE)
# The same rows by when they are due (migration 0014): the doorbell's oldest-due read and the
# claims' "due now" are one range of it, not every unsent row (a backlog of retries and leases
# waiting for later: the mail claim's lease read 92 -> 192 pages per pass over 3,000 intakes
# with ix_outbox_due alone).
Index("ix_outbox_due_at", OutboxMessage.next_attempt_at, postgresql_where=_DUE, sqlite_where=_DUE)
