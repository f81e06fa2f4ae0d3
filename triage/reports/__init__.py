"""Reports for admins: model confidence, knowledge-base effect, SLA compliance (issue 5).

Each module has pure functions over plain rows and arrays (what the tests pin
down) and thin ``*_from_store`` functions that read those rows from a session.
No Flask here: the service renders these dicts, the CLI prints or exports them.
"""

from __future__ import annotations
