"""The desk as data: teams, agents and queues described in ``desk.yaml``.

``spec`` reads and validates the file (every error names its line); ``names``
checks that the rules and the served bundle only name teams the desk has. The
store side (``triage.store.desk``) applies a spec to the database and records
who changed what; nothing here touches a database.
"""

from .names import check_names, unknown_teams
from .spec import SENIORITY, AgentSpec, Desk, QueueSpec, TeamSpec, load_desk, parse_desk

__all__ = [
    "AgentSpec",
    "Desk",
    "QueueSpec",
    "SENIORITY",
    "TeamSpec",
    "check_names",
    "load_desk",
    "parse_desk",
    "unknown_teams",
]
