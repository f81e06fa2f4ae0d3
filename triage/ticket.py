"""The ticket shape shared by every layer: stdlib only.

Priority follows ITIL and django-helpdesk: 1 is the most urgent. Status is the
ITIL lifecycle; ``TRANSITIONS`` is the one table that says which moves are
allowed (the store refuses anything else).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Status(str, enum.Enum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.ASSIGNED, Status.RESOLVED, Status.CLOSED}),
    Status.ASSIGNED: frozenset({Status.IN_PROGRESS, Status.PENDING, Status.RESOLVED, Status.ASSIGNED}),
    Status.IN_PROGRESS: frozenset({Status.PENDING, Status.RESOLVED, Status.ASSIGNED}),
    Status.PENDING: frozenset({Status.IN_PROGRESS, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.CLOSED, Status.IN_PROGRESS}),  # back to work = reopen
    Status.CLOSED: frozenset({Status.IN_PROGRESS}),  # reopen
}


def can_transition(old: Status, new: Status) -> bool:
    return new in TRANSITIONS[old]


class Channel(str, enum.Enum):
    EMAIL = "email"
    WEB = "web"
    API = "api"
    CHAT = "chat"
    PHONE = "phone"
    SOCIAL = "social"
    PORTAL = "portal"


class Decision(str, enum.Enum):
    """What the model may do with one predicted field."""

    APPLY = "apply"  # set the field without a human
    SUGGEST = "suggest"  # propose it to an agent
    ABSTAIN = "abstain"  # say nothing


class Priority(int, enum.Enum):
    CRITICAL = 1
    HIGH = 2
    MODERATE = 3
    LOW = 4
    PLANNING = 5


@dataclass
class Ticket:
    """A ticket as the model and the rules see it (not the stored row)."""

    subject: str = ""
    body: str = ""
    channel: str | None = None
    customer_tier: str | None = None
    affected_service: str | None = None
    requester: str | None = None
    created_at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # given or predicted labels

    @property
    def text(self) -> str:
        return f"{self.subject} {self.body}".strip()


# The public name of a ticket in mail subjects: ``TCK-42`` (tag ``[#TCK-42]``).
PREFIX = "TCK"
_REF = re.compile(rf"^{PREFIX}-(\d+)$", re.I)


def reference(ticket_id: int) -> str:
    """The ticket reference used in subjects: ``TCK-42`` (tag ``[#TCK-42]``)."""
    return f"{PREFIX}-{ticket_id}"


def ticket_id_of(ref: str | None) -> int | None:
    match = _REF.match(ref or "")
    return int(match.group(1)) if match else None
