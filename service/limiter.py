"""Rate limits (Flask-Limiter over the ``limits`` library): named, declared, one error shape.

Each limit has a name, a ``TRIAGE_RATELIMIT_*`` setting holding its rate (a
``limits`` string such as ``"10 per minute"``; several separated by ``;``) and a
key saying *whose* budget a request spends:

=================  ==============================  ==================================
name               setting                          counted per
=================  ==============================  ==================================
``signin``         TRIAGE_RATELIMIT_SIGNIN         client address (every sign-in POST,
                                                   link requests included)
``bad_api_key``    TRIAGE_RATELIMIT_BAD_API_KEY    client address (failed keys only)
``suggest``        TRIAGE_RATELIMIT_SUGGEST        caller: API key + requester / session
``ticket_create``  TRIAGE_RATELIMIT_TICKET_CREATE  requester (else the API key / client)
=================  ==============================  ==================================

One-time sign-in links have, besides ``signin``, their own per-address and
per-client budget kept in the store (``TRIAGE_SIGNIN_LINKS_PER_*``,
``triage/store/signin.py``).

Over the limit the answer is 429 in the one error shape with ``Retry-After``
(seconds). Counters live in memory by default (per process: each gunicorn
worker counts alone) and in Redis when ``TRIAGE_RATELIMIT_STORAGE`` is a
``redis://`` URL, so limits hold across workers and machines.

Other areas use the decorator (``@limiter.limited("signin", key=...)``) or
:func:`spend` inside a view when the key is only known after parsing the body.
Behind a proxy set ``TRIAGE_PROXY_HOPS`` so the client address is the client's.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

from flask import current_app, g, request, session
from flask_limiter import Limiter
from limits import parse_many

from .errors import ApiError
from .limiter_storage import storage_uri

log = logging.getLogger("service.limiter")
EXTENSION = "triage.limiter"
SPENT = "triage.limiter.spent"


@dataclass(frozen=True)
class Named:
    setting: str
    doc: str


LIMITS: dict[str, Named] = {
    "signin": Named("TRIAGE_RATELIMIT_SIGNIN", "sign-in attempts per client address"),
    "bad_api_key": Named(
        "TRIAGE_RATELIMIT_BAD_API_KEY", "failed API keys per client address (then even a good key waits)"
    ),
    "suggest": Named("TRIAGE_RATELIMIT_SUGGEST", "KB suggestions per caller / session"),
    "ticket_create": Named("TRIAGE_RATELIMIT_TICKET_CREATE", "new tickets per requester"),
}


def client_address() -> str:
    """The client's address (ProxyFix has put the real one here behind a trusted proxy)."""
    return request.remote_addr or "unknown"


def caller() -> str:
    """Who is calling: API key name (+ the requester it speaks for), else the page session."""
    key = g.get("api_key")
    if key is not None:
        return f"key:{key.name}:{request.headers.get('X-Requester', '')}"
    user = session.get("user") if session else None
    if isinstance(user, dict) and user.get("id"):
        return f"user:{user.get('role')}:{user.get('id')}"
    return f"addr:{client_address()}"


def init_app(app) -> None:
    """One Limiter per app (tests build many apps; counters must not leak between them)."""
    storage = str(app.config.get("TRIAGE_RATELIMIT_STORAGE") or "memory://")
    limiter = Limiter(
        client_address,
        storage_uri=storage_uri(storage),  # memory://: without a timer thread per hit
        strategy="moving-window" if storage.startswith("memory") else "fixed-window",
        key_prefix=str(app.config.get("TRIAGE_RATELIMIT_PREFIX") or "triage"),
        headers_enabled=False,
        enabled=bool(app.config.get("TRIAGE_RATELIMIT_ENABLED", True)),
    )
    limiter.init_app(app)
    _drop_request_hooks(app, limiter)
    app.extensions[EXTENSION] = limiter
    # limits spent in this process, when the counters live only in it (see check())
    app.extensions[SPENT] = set() if storage.startswith("memory") else None
    for name in LIMITS:  # a malformed rate stops the start, not a request
        _items(app.config, name)


def _drop_request_hooks(app, limiter: Limiter) -> None:
    """Flask-Limiter's own before/after/teardown hooks out of every request.

    They resolve the endpoint's decorated and default limits, which this service never
    declares (every limit is spent here, by name): on each request, /livez and classify
    included, they found nothing to do at a measurable cost (bench/profile_classify.py).
    Its storage and strategy (``limiter.limiter``) stay; they are all :func:`spend` uses.
    """
    ours = {
        "before_request_funcs": limiter._check_request_limit,
        "teardown_request_funcs": limiter._Limiter__release_context,  # type: ignore[attr-defined]
    }
    for attr, hook in ours.items():
        funcs = getattr(app, attr).get(None, [])
        funcs[:] = [f for f in funcs if f != hook]
    after = app.after_request_funcs.get(None, [])
    after[:] = [f for f in after if not (isinstance(f, functools.partial) and f.args == (limiter,))]


def _items(config, name: str):
    named = LIMITS[name]
    return _parsed(named.setting, str(config.get(named.setting) or "").strip())


@functools.lru_cache(maxsize=64)
def _parsed(setting: str, raw: str) -> tuple:
    """The rate items of one setting's text, parsed once (every API call checks a limit)."""
    if not raw:
        return ()
    try:
        return tuple(parse_many(raw))
    except ValueError as exc:
        from triage.errors import ConfigError

        raise ConfigError(
            f"{setting}: expected rates like '10 per minute; 100 per hour', got {raw!r} ({exc})"
        ) from None


def _ident(name: str, key: str) -> str:
    # keys may hold e-mail addresses: hashed, so the shared store holds no personal data
    return f"{name}:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


def _limiter() -> Limiter | None:
    limiter = current_app.extensions.get(EXTENSION)
    return limiter if limiter is not None and limiter.enabled else None


def _refuse(name: str, item, limiter: Limiter, ident: str):
    reset = limiter.limiter.get_window_stats(item, ident).reset_time
    wait = max(1, math.ceil(reset - time.time()))
    log.info("rate limit %s reached (%s) for %s", name, item, ident)
    raise ApiError(
        429,
        f"too many requests ({LIMITS[name].doc}: {item}); retry in {wait} s",
        [{"field": name, "message": "rate limit reached", "expected": f"at most {item}", "got": "more"}],
        headers={"Retry-After": str(wait)},
    )


def spend(name: str, key: str, *, cost: int = 1) -> None:
    """Count one request against limit ``name`` for ``key``; 429 (ApiError) when over it."""
    limiter = _limiter()
    if limiter is None:
        return
    spent = current_app.extensions.get(SPENT)
    if spent is not None:
        spent.add(name)
    ident = _ident(name, key)
    for item in _items(current_app.config, name):
        if not limiter.limiter.hit(item, ident, cost=cost):
            _refuse(name, item, limiter, ident)


def check(name: str, key: str) -> None:
    """429 if ``key`` has already spent limit ``name``; counts nothing (see :func:`spend`)."""
    limiter = _limiter()
    if limiter is None:
        return
    spent = current_app.extensions.get(SPENT)
    if spent is not None and name not in spent:
        # in-memory counters are this process's own: none was ever spent here, so none is
        # over (every API call checks "bad_api_key": ~20 µs of hashing and window reading)
        return
    ident = _ident(name, key)
    for item in _items(current_app.config, name):
        if not limiter.limiter.test(item, ident):
            _refuse(name, item, limiter, ident)


def limited(name: str, key: Callable[[], str] = client_address):
    """Decorator: every call spends one of limit ``name`` for ``key()`` before the view runs."""
    if name not in LIMITS:
        raise KeyError(f"unknown rate limit {name!r}; declare it in service.limiter.LIMITS")

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            spend(name, key())
            return view(*args, **kwargs)

        inner.rate_limit = name
        return inner

    return wrap
