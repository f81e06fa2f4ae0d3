"""The admins' decision policy applied to every classification the service makes.

The served :class:`~triage.predict.Triager` is wrapped in :class:`PolicyTriager`
when it is loaded, so every caller (``POST /v1/classify``, ticket intake from the
API, the portal and e-mail) classifies under the policy in force, without each
of them having to remember to pass it. The policy lives in the database
(``triage.store.policies``): a change saved through one gunicorn worker is seen
by all of them on their next classification, because each call compares the
newest change id with its cached one (one indexed query, asked through
``policies.probe``: no pooled connection or transaction around it).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from flask import current_app, has_app_context

from triage.store import policies
from triage.store.policies import PolicyCache

from .store import get_store

log = logging.getLogger("service.policy")
CACHE_KEY = "triage.policy_cache"


def current_policy() -> dict[str, dict[str, Any]]:
    """The effective policy of this app's store; ``{}`` outside an app (e.g. a CLI import)."""
    if not has_app_context():
        return {}
    cache = current_app.extensions.get(CACHE_KEY)
    if cache is None:
        cache = current_app.extensions.setdefault(CACHE_KEY, PolicyCache())
    try:
        engine = get_store().engine
        # this runs before every classification: the newest change id on the probe's own
        # autocommit connection; the policy itself is read only when that id moved
        return cache.at(policies.probe(engine).version(), lambda: _read_policy(engine))
    except Exception as exc:  # noqa: BLE001 - classify must not fail because the store did
        log.warning("policy not read, using the last one known: %s", exc)
        return cache.last


def _read_policy(engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:  # (on SQLite a plain BEGIN: no write lock)
        return policies.effective(conn.execution_options(triage_readonly=True))


class PolicyTriager:
    """A Triager whose ``classify`` applies the admins' policy unless one is passed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def classify(
        self, tickets: Sequence[Any], policy: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[dict]:
        if policy is None:
            policy = current_policy()
        return self.inner.classify(tickets, policy=policy or None, **kwargs)

    def __getattr__(self, name: str) -> Any:  # manifest, heads, bundle_id, models, ...
        return getattr(self.inner, name)
