"""API keys with roles: ``intake`` (the intake pipeline), ``agent`` (people), ``admin``.

Keys live outside git: a JSON file named by ``TRIAGE_API_KEYS_FILE`` holding only
SHA-256 digests, plus ``TRIAGE_API_KEYS`` (``key:role,…``) for tests and
development. A plain fast hash is enough because keys are long random tokens, not
passwords a person chose: there is nothing to brute-force from a digest. Digests
are compared with ``hmac.compare_digest`` so timing says nothing about a key.

A missing or unknown key is 401 (with ``WWW-Authenticate``); a known key whose
role is not allowed on the endpoint is 403. ``admin`` may call everything.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from flask import current_app, g, request

from triage.errors import ConfigError

from .errors import ApiError

ROLES = ("intake", "agent", "admin")
log = logging.getLogger("service.auth")


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    sha256: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _checked(entry: ApiKey, where: str) -> ApiKey:
    if entry.role not in ROLES:
        raise ConfigError(
            f"API key {entry.name!r}: role must be one of {', '.join(ROLES)}, got {entry.role!r}", file=where
        )
    if len(entry.sha256) != 64:
        raise ConfigError(f"API key {entry.name!r}: sha256 must be 64 hex digits", file=where)
    return entry


def load_keys_file(path: str | Path) -> list[ApiKey]:
    """Read ``[{"name", "role", "sha256"}, …]``; a malformed file stops the service."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read API keys: {exc}", file=str(path)) from exc
    if not isinstance(data, list):
        raise ConfigError("expected a JSON array of key entries", file=str(path))
    keys = []
    for i, item in enumerate(data):
        try:
            keys.append(
                ApiKey(str(item.get("name", f"key{i}")), str(item["role"]), str(item["sha256"]).lower())
            )
        except (AttributeError, KeyError) as exc:
            raise ConfigError(
                f"entry {i}: expected an object with role and sha256 ({exc})", file=str(path)
            ) from exc
    return [_checked(k, str(path)) for k in keys]


def parse_plain_keys(spec: str) -> list[ApiKey]:
    """``key:role,key:role`` → hashed entries (the plain text is dropped here)."""
    keys = []
    for i, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        key, sep, role = part.rpartition(":")
        if not sep or not key:
            raise ConfigError(f"TRIAGE_API_KEYS entry {i}: expected key:role")
        keys.append(_checked(ApiKey(f"env{i}", role.strip(), digest(key)), "TRIAGE_API_KEYS"))
    return keys


class KeyRing:
    """The configured keys, looked up by digest."""

    def __init__(self, keys: list[ApiKey], required: bool = True) -> None:
        self.required = required
        self._by_digest = {k.sha256: k for k in keys}

    @classmethod
    def from_config(cls, config: dict) -> "KeyRing":
        keys: list[ApiKey] = []
        if config.get("TRIAGE_API_KEYS_FILE"):
            keys += load_keys_file(config["TRIAGE_API_KEYS_FILE"])
        if config.get("TRIAGE_API_KEYS"):
            keys += parse_plain_keys(config["TRIAGE_API_KEYS"])
        required = bool(config.get("TRIAGE_AUTH", True))
        if required and not keys:
            log.warning("TRIAGE_AUTH is on but no API keys are configured: every /v1 call gets 401")
        return cls(keys, required)

    def lookup(self, presented: str) -> ApiKey | None:
        wanted = digest(presented)
        found = None
        for known, entry in self._by_digest.items():  # constant work whatever matches
            if hmac.compare_digest(known, wanted):
                found = entry
        return found


def presented_key() -> str | None:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def require_role(*roles: str):
    """Decorator: the caller's key must carry one of ``roles`` (admin always passes)."""
    allowed = set(roles) | {"admin"}

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            ring: KeyRing = current_app.extensions["triage.auth"]
            if ring.required:
                g.api_key = _authenticate(ring)
                if g.api_key.role not in allowed:
                    raise ApiError(
                        403,
                        f"API key {g.api_key.name!r} has role {g.api_key.role!r}; "
                        f"this endpoint needs one of {sorted(allowed)}",
                    )
            return view(*args, **kwargs)

        inner.required_roles = sorted(allowed)
        return inner

    return wrap


def _authenticate(ring: KeyRing) -> ApiKey:
    key = presented_key()
    challenge = {"WWW-Authenticate": 'Bearer realm="triage"'}
    if key is None:
        message = "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'"
        if request.headers.get("Authorization", "").strip():  # a key sent without its scheme
            message += " (the Authorization header needs the word Bearer before the key)"
        raise ApiError(401, message, headers=challenge)
    from . import limiter

    client = limiter.client_address()
    limiter.check("bad_api_key", client)  # a client guessing keys waits, even with a good one
    entry = ring.lookup(key)
    if entry is None:
        limiter.spend("bad_api_key", client)
        raise ApiError(401, "unknown API key", headers=challenge)
    return entry


def main(argv: list[str]) -> int:
    """``python -m service.auth [KEY] ROLE NAME``: print a keys-file entry (and a new key)."""
    if len(argv) not in (2, 3) or argv[-2] not in ROLES:
        print("usage: python -m service.auth [KEY] {intake|agent|admin} NAME", file=sys.stderr)
        return 2
    key = argv[0] if len(argv) == 3 else secrets.token_urlsafe(32)
    if len(argv) == 2:
        print(f"# new key (store it now; only its digest is kept): {key}", file=sys.stderr)
    print(json.dumps({"name": argv[-1], "role": argv[-2], "sha256": digest(key)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
