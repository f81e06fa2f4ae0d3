"""Rate limits: 429 in the one error shape with Retry-After; per client, caller or requester.

The fast tests use the in-memory storage through the test client; the slow one
runs gunicorn with two worker processes on Redis (db 11 unless told otherwise)
and shows the limit holds across workers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from triage.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KEYS = "ik:intake,bk:agent,ak:admin"


def make_app(tmp_path, **limits):
    from service.app import create_app

    return create_app(
        {
            "TESTING": True,
            "TRIAGE_LOAD": "off",
            "TRIAGE_API_KEYS": KEYS,
            "TRIAGE_SIGHUP": False,
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
            **limits,
        }
    )


def assert_429(r):
    assert r.status_code == 429, (r.status_code, r.get_data(as_text=True)[:200])
    assert int(r.headers["Retry-After"]) >= 1


def test_failed_api_keys_are_limited_per_client(tmp_path):
    app = make_app(tmp_path, TRIAGE_RATELIMIT_BAD_API_KEY="3 per minute")
    c = app.test_client()
    bad = {"Authorization": "Bearer guess"}
    assert [c.get("/v1/tickets", headers=bad).status_code for _ in range(3)] == [401] * 3
    r = c.get("/v1/tickets", headers=bad)
    assert_429(r)
    body = r.get_json()
    assert body["ok"] is False and body["status"] == 429 and body["errors"][0]["field"] == "bad_api_key"
    assert_429(c.get("/v1/tickets", headers={"Authorization": "Bearer ak"}))  # guessing locks out
    other = c.get(
        "/v1/tickets", headers={"Authorization": "Bearer ak"}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert other.status_code == 200  # another client is not punished
    missing = c.get("/v1/tickets", environ_base={"REMOTE_ADDR": "10.9.9.8"})
    assert missing.status_code == 401  # no key at all is not a guess


def test_ticket_creation_is_limited_per_requester(tmp_path):
    app = make_app(tmp_path, TRIAGE_RATELIMIT_TICKET_CREATE="2 per minute")
    c = app.test_client()

    def post(requester):
        return c.post(
            "/v1/tickets",
            json={"subject": "printer", "requester": requester},
            headers={"Authorization": "Bearer ik"},
        )

    assert [post("ann@x").status_code for _ in range(2)] == [201, 201]
    assert_429(post("ann@x"))
    assert post("bob@x").status_code == 201


def test_signin_is_limited_per_client_and_answers_a_page(tmp_path):
    app = make_app(tmp_path, TRIAGE_RATELIMIT_SIGNIN="2 per minute")
    c = app.test_client()
    page = c.get("/signin").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"kind": "staff", "key": "wrong", "csrf_token": token}
    assert [c.post("/signin", data=form).status_code for _ in range(2)] == [401, 401]
    r = c.post("/signin", data=form)
    assert_429(r)
    assert r.mimetype == "text/html"


def test_suggest_is_limited_per_caller(tmp_path):
    app = make_app(tmp_path, TRIAGE_RATELIMIT_SUGGEST="2 per minute")
    c = app.test_client()
    get = lambda who: c.get(  # noqa: E731
        "/v1/kb/suggest",
        query_string={"q": "vpn"},
        headers={"Authorization": "Bearer ik", "X-Requester": who},
    )
    assert [get("ann@x").status_code for _ in range(2)] == [503, 503]  # no bundle here: 503
    assert_429(get("ann@x"))  # counted before any work is done
    assert get("bob@x").status_code == 503


def test_limits_can_be_turned_off_and_bad_rates_stop_the_start(tmp_path):
    app = make_app(tmp_path, TRIAGE_RATELIMIT_BAD_API_KEY="1 per minute", TRIAGE_RATELIMIT_ENABLED="false")
    c = app.test_client()
    assert {c.get("/v1/tickets", headers={"Authorization": "Bearer x"}).status_code for _ in range(5)} == {
        401
    }
    with pytest.raises(ConfigError, match="TRIAGE_RATELIMIT_SUGGEST"):
        make_app(tmp_path, TRIAGE_RATELIMIT_SUGGEST="lots")


def test_the_limits_are_documented_settings():
    from service.limiter import LIMITS
    from service.settings import BY_NAME

    text = (ROOT / "docs" / "SETTINGS.md").read_text(encoding="utf-8")
    for named in LIMITS.values():
        assert named.setting in BY_NAME and f"`{named.setting}`" in text


# ----------------------------------------------------------------- across workers, on Redis
def _redis_url() -> str:
    return os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_redis_limit_holds_across_gunicorn_workers(tmp_path):
    import redis
    import requests

    from serving import free_port, stop

    url = _redis_url()
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis does not answer at {url}: {exc}")
        pytest.skip(f"Redis does not answer at {url}: {exc}")
    prefix = f"triage-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "TRIAGE_BIND": f"127.0.0.1:{port}",
        "TRIAGE_WORKERS": "2",
        "TRIAGE_WORKER_CLASS": "sync",
        "TRIAGE_LOAD": "off",
        "TRIAGE_API_KEYS": KEYS,
        "TRIAGE_RATELIMIT_STORAGE": url,
        "TRIAGE_RATELIMIT_PREFIX": prefix,
        "TRIAGE_RATELIMIT_BAD_API_KEY": "6 per minute",
        "TMPDIR": str(tmp_path),
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "service" / "gunicorn_conf.py")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        alive = set()
        while len(alive) < 2 and time.time() < deadline:  # both workers booted
            alive = set(
                re.findall(
                    r"Booting worker with pid: (\d+)", (tmp_path / "serve.log").read_text(errors="replace")
                )
            )
            time.sleep(0.3)
        from concurrent.futures import ThreadPoolExecutor

        def live(_):
            try:
                return requests.get(f"{base}/livez", timeout=5, headers={"Connection": "close"}).ok
            except requests.RequestException:
                return False

        while len(_pids(tmp_path, "GET /livez")) < 2 and time.time() < deadline:
            with ThreadPoolExecutor(4) as pool:  # until both workers have answered once
                list(pool.map(live, range(8)))
            time.sleep(0.2)

        def guess(_):  # concurrent, so both (one-request-at-a-time) sync workers take some
            return requests.get(
                f"{base}/v1/tickets",
                timeout=10,
                headers={"Authorization": "Bearer nope", "Connection": "close"},
            ).status_code

        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(guess, range(16)))
        time.sleep(0.5)
        pids = _pids(tmp_path, "GET /v1/tickets")
    finally:
        stop(proc)
        log.close()
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
    assert codes.count(401) == 6 and codes.count(429) == 10, codes
    assert len(pids) == 2, pids  # both workers answered, and they shared one budget


def _pids(tmp_path: Path, what: str) -> set[str]:
    """Worker pids in the access lines for ``what`` (the log format carries ``[pid]``)."""
    text = (tmp_path / "serve.log").read_text(errors="replace")
    return {
        m.group(1)
        for line in text.splitlines()
        if what in line
        for m in [re.search(r"service\.access \[(\d+)\]", line)]
        if m
    }


def test_each_app_keeps_its_own_rate_with_the_parsed_rates_cached(tmp_path):
    """Rates are parsed once per setting text: two apps in one process with different
    texts still each enforce their own (and a third with the first's text, the first's)."""
    bad = {"Authorization": "Bearer guess"}
    for folder, rate, allowed in (
        ("a", "2 per minute", 2),
        ("b", "4 per minute", 4),
        ("c", "2 per minute", 2),
    ):
        (tmp_path / folder).mkdir()
        c = make_app(tmp_path / folder, TRIAGE_RATELIMIT_BAD_API_KEY=rate).test_client()
        codes = [c.get("/v1/tickets", headers=bad).status_code for _ in range(allowed + 1)]
        assert codes == [401] * allowed + [429], (rate, codes)


def test_flask_limiters_own_request_hooks_are_not_run(tmp_path):
    """The service spends every limit by name; Flask-Limiter's per-request resolution of
    decorated/default limits (none declared) is left out of every request."""
    app = make_app(tmp_path, TRIAGE_RATELIMIT_BAD_API_KEY="1 per minute")
    hooks = [
        f
        for funcs in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
        for f in funcs.get(None, [])
    ]
    assert not [f for f in hooks if "flask_limiter" in repr(f) or "Limiter" in repr(f)], hooks
    c = app.test_client()
    assert c.get("/v1/tickets", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert_429(c.get("/v1/tickets", headers={"Authorization": "Bearer guess"}))  # limits still hold


def _memory_storage(app):
    from service.limiter import EXTENSION

    return app.extensions[EXTENSION].limiter.storage


def test_in_memory_counters_start_no_thread_per_hit(tmp_path):
    """limits' MemoryStorage started a Timer thread on nearly every hit (intake's rate): ours
    expires inline, so the storage's timer is the one made at start and no other is started."""
    app = make_app(tmp_path, TRIAGE_RATELIMIT_TICKET_CREATE="100 per minute")
    storage = _memory_storage(app)
    first = storage.timer
    first.join()  # the one made at start has fired
    from service import limiter

    with app.test_request_context("/v1/tickets", method="POST"):
        for i in range(5):
            limiter.spend("ticket_create", f"requester:{i}")
            assert storage.timer is first and not storage.timer.is_alive()
    assert storage.sweeps >= 1


def test_in_memory_counters_still_expire(tmp_path, monkeypatch):
    """Expiry moved inline still drops a spent window's entries (memory stays bounded) and a
    window that passed lets the requester in again."""
    from service import limiter, limiter_storage

    monkeypatch.setattr(limiter_storage, "SWEEP_SECONDS", 0.0)
    app = make_app(tmp_path, TRIAGE_RATELIMIT_TICKET_CREATE="1 per second")
    storage = _memory_storage(app)
    with app.test_request_context("/v1/tickets", method="POST"):
        limiter.spend("ticket_create", "ann@x")
        with pytest.raises(Exception) as refused:
            limiter.spend("ticket_create", "ann@x")
        assert getattr(refused.value, "status", None) == 429
        assert any(storage.events.values())
        time.sleep(1.2)
        limiter.spend("ticket_create", "bob@x")  # sweeps: ann's entry has expired
        assert [k for k, v in storage.events.items() if v] == [
            k for k in storage.events if limiter._ident("ticket_create", "bob@x") in k
        ]
        limiter.spend("ticket_create", "ann@x")  # her window has passed
