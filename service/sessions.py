"""The pages' signing key and server-side sessions.

Signing key: ``TRIAGE_SECRET_KEY`` when set; otherwise a key generated once and
kept in ``TRIAGE_SECRET_KEY_FILE`` (mode 0600). Every gunicorn worker, and the
next start, reads the same file, so a session or a sign-in link signed by one
worker is good in all of them. The file is created with ``O_EXCL`` through a
hard link, so two workers starting at the same instant still agree on one key.

Sessions: the cookie is signed, but a signed cookie alone cannot be taken
back. So each sign-in opens a row in ``page_sessions`` whose id the cookie
carries; every page request checks the row, and signing out revokes it: a
captured cookie stops working in every worker at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from flask import session

from triage.store import signin as signin_store
from triage.store.tables import utcnow

log = logging.getLogger("service.sessions")


def load_or_create_key(path: str | Path) -> str:
    """The key in ``path``, made (once, 0600, atomically) when the file does not exist yet."""
    path = Path(path)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if another worker won the race: then use theirs
            log.warning("generated a secret key in %s (set TRIAGE_SECRET_KEY to choose one)", path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: expected a secret key of at least 16 characters, got {len(key)}")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; chmod 600 it", path)
    return key


def secret_key(config) -> str:
    return config.get("TRIAGE_SECRET_KEY") or load_or_create_key(
        config.get("TRIAGE_SECRET_KEY_FILE") or "var/secret_key"
    )


def open_session(store, role: str, ident: str, name: str) -> None:
    """A fresh cookie session (no fixation), a fresh CSRF token and its server-side row."""
    with store.session() as s:
        sid = signin_store.open_session(s, role, ident, utcnow())
    session.clear()
    session["user"] = {"role": role, "id": ident, "name": name}
    session["sid"] = sid
    session["csrf"] = secrets.token_urlsafe(32)


def alive(store) -> bool:
    """Whether the cookie's session is still open on the server (False: treat as signed out)."""
    sid = session.get("sid")
    if not sid:
        return False
    with store.session(readonly=True) as s:
        return signin_store.session_alive(s, sid)


def close_session(store) -> None:
    sid = session.get("sid")
    if sid:
        with store.session() as s:
            signin_store.revoke(s, sid, utcnow())
    session.clear()
