"""The attachment file store of the app (where the bytes live and the limits), from the settings.

A resource shared by several blueprints (the API, the e-mail intake, portal and agent
pages), so it lives here rather than in any one of them.
"""

from __future__ import annotations

from pathlib import Path

from flask import current_app

from triage.store import attachments as store_files


def files() -> store_files.Files:
    config = current_app.config
    return store_files.Files(
        root=Path(config["TRIAGE_ATTACHMENTS_DIR"]),
        max_file_bytes=int(config["TRIAGE_ATTACHMENT_MAX_BYTES"]),
        max_ticket_bytes=int(config["TRIAGE_ATTACHMENT_TICKET_MAX_BYTES"]),
    )
