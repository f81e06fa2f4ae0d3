"""The request bodies of the ticketing API, declared once (``service/validation.py``).

``service/tickets.py`` validates with these and ``service/tickets_openapi.py``
documents them, so a length here is the column's length and the spec and the
code cannot drift apart. Limits that are settings name the setting.
"""

from __future__ import annotations

from triage.store.tickets import PENDING_REASONS
from triage.ticket import Channel, Status

from .validation import ID, ONE_LINE, ONE_LINE_NON_BLANK, Bool, Int, List, Obj, OneOf, Text

CHANNELS = tuple(c.value for c in Channel)
STATUSES = tuple(s.value for s in Status)

# priority: 1 (most urgent) to 5, or a label holding that digit ("P2", "2 - High")
PRIORITY = OneOf(
    (Int(1, 5), Text(max_len=50, pattern="[1-5]")),
    nullable=True,
    doc='1 (most urgent) to 5, or a label such as "P2"',
)
WHO = "an e-mail address or an id on one line (no line break or control character)"
WATCHER = Text(
    max_len=320, required=True, pattern=ONE_LINE_NON_BLANK, form=WHO, doc="e-mail address or user id"
)
TAG = Text(max_len=100, required=True)
TAGS = List(TAG, max_items="TRIAGE_MAX_TAGS")

NEW_TICKET = Obj(
    {
        "subject": Text(max_len="TRIAGE_MAX_SUBJECT_CHARS", nullable=True),
        "body": Text(max_len="TRIAGE_MAX_TEXT_CHARS", nullable=True),
        "channel": Text(enum=CHANNELS, nullable=True),
        "requester": Text(
            max_len=320,
            nullable=True,
            pattern=ONE_LINE,
            form=WHO,
            doc='e-mail address or user id; "Name <address>" is stored as the address',
        ),
        "customer_tier": Text(max_len=50, nullable=True),
        "ticket_type": Text(max_len=100, nullable=True),
        "category": Text(max_len=100, nullable=True),
        "priority": PRIORITY,
        "affected_service": Text(max_len=200, nullable=True),
        "watchers": List(WATCHER, max_items="TRIAGE_MAX_WATCHERS", nullable=True),
        "vip": Bool(nullable=True),
        "major_incident": Bool(nullable=True),
        "tags": List(TAG, max_items="TRIAGE_MAX_TAGS", nullable=True),
    },
    one_required=("subject", "body"),
)

TICKET_PATCH = Obj(
    {
        "subject": Text(max_len="TRIAGE_MAX_SUBJECT_CHARS", required=True),
        "ticket_type": Text(max_len=100, nullable=True),
        "category": Text(max_len=100, nullable=True),
        "priority": PRIORITY,
        "affected_service": Text(max_len=200, nullable=True),
        "customer_tier": Text(max_len=50, nullable=True),
        "team": Text(max_len=100, nullable=True),
        "queue": Text(max_len=100, required=True),
        "tags": TAGS,
        "assignee": Text(max_len=100, required=True, doc='an agent id, or "auto" to route'),
    }
)

TRANSITION = Obj(
    {
        "to": Text(enum=STATUSES),
        "resolution": Text(max_len=50, nullable=True),
        "reason": Text(enum=PENDING_REASONS, nullable=True, doc="why it waits; only with to=pending"),
        "resolve_children": Bool(),
    },
    required=("to",),
    only_with={"reason": ("to", "pending")},
)
COMMENT = Obj(
    {
        "body": Text(max_len="TRIAGE_MAX_TEXT_CHARS", required=True),
        "public": Bool(),
        "channel": Text(enum=CHANNELS),
    },
    required=("body",),
)
MERGE = Obj({"into": ID}, required=("into",))
LINK = Obj({"parent": Int(nullable=True, doc="parent incident id, null to unlink")}, required=("parent",))
