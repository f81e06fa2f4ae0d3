"""The ticketing core's storage: tables, migrations and repositories.

``Store(url)`` is the database; the repository modules are functions over a
SQLAlchemy session so one unit of work can span several of them:

- ``tickets``  intake (idempotent), lifecycle transitions, field changes, history
- ``routing``  team and agent selection, concurrency-safe assignment
- ``clocks``   SLA clocks, escalation sweep, signed webhook outbox, breach report
- ``feedback`` corrections of predicted fields
- ``merge``    duplicate merge/unmerge, parent-incident links
- ``access``   who may see which ticket
"""

from __future__ import annotations

from triage.store import portal_events as _portal_events  # noqa: F401  registers its tables on Base
from triage.store import policies as _policies  # noqa: F401  registers its table on Base
from triage.store import attachments as _attachments  # noqa: F401  registers its table on Base
from triage.store import mail_log as _mail_log  # noqa: F401  received_mail, mail_refusals
from triage.store import satisfaction as _satisfaction  # noqa: F401  satisfaction
from triage.store import signin as _signin  # noqa: F401  signin_links, page_sessions
from triage.store import fleet as _fleet  # noqa: F401  fleet_bundles, fleet_champion
from triage.store.engine import Store, database_url

__all__ = ["Store", "database_url"]
