"""100 of 100 sign-ins and page loads across 2 gunicorn workers with no secret configured.

Each request goes on a new connection to ``sync`` workers, so consecutive
requests land on different workers: a session or a sign-in link signed by one
must be good in the other. Before the shared key file, 3 of 10 sign-ins and 28
of 50 page loads failed this way.
"""

from __future__ import annotations

import re

import pytest
import requests

from serving import free_port, server_env, serving, triage_serve
from service_fixtures import KEYS_SPEC
from signin_support import latest_signin_path
from triage.store import Store

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sign_ins_and_page_loads_across_two_workers_without_a_secret(service_env, tmp_path):
    port, url = free_port(), f"sqlite:///{tmp_path / 'desk.db'}"
    Store(url).upgrade()  # migrated once, before two workers race to do it
    settings = {
        "TRIAGE_MODELS_DIR": str(service_env["models"]),
        "TRIAGE_KB_PATH": str(service_env["kb"]),
        "TRIAGE_API_KEYS": KEYS_SPEC,
        "TRIAGE_CACHE_DIR": str(tmp_path / "cache"),
        "TRIAGE_DATABASE_URL": url,
        "TRIAGE_SECRET_KEY_FILE": str(tmp_path / "run" / "secret_key"),
        "TRIAGE_MAIL_DIR": str(tmp_path / "mail"),
        "TRIAGE_WORKER_CLASS": "sync",
        "TRIAGE_ATTACHMENTS_DIR": str(tmp_path / "files"),
        "TRIAGE_SIGNIN_LINKS_PER_CLIENT": "1000",  # one test client asks for all 100 links
        "TRIAGE_RATELIMIT_SIGNIN": "1000 per minute",
    }
    env = server_env(settings, unset=("TRIAGE_SECRET_KEY", "TRIAGE_PORTAL_EMAIL_SIGNIN"))  # the shared key
    command = triage_serve(port, "--workers", "2", "--bundle", str(service_env["bundle"]))
    base, store = f"http://127.0.0.1:{port}", Store(url)
    try:
        with serving(command, env, tmp_path / "serve.log", base):
            results = [_sign_in_and_load(base, store, f"user{i}@example.com") for i in range(100)]
    finally:
        store.dispose()
    failures = [r for r in results if r != "ok"]
    assert failures == [] and len(results) == 100


def _sign_in_and_load(base: str, store: Store, address: str) -> str:
    with requests.Session() as http:
        http.headers["Connection"] = "close"  # a new connection, so any worker, every request
        token = TOKEN.search(http.get(f"{base}/signin", timeout=30).text).group(1)
        sent = http.post(
            f"{base}/signin", timeout=30, data={"csrf_token": token, "kind": "customer", "email": address}
        )
        if sent.status_code != 200:
            return f"link request {sent.status_code}"
        path = latest_signin_path(store, address)
        page = http.get(f"{base}{path}", timeout=30)
        if page.status_code != 200:
            return f"link page {page.status_code}"
        used = http.post(
            f"{base}{path}",
            data={"csrf_token": TOKEN.search(page.text).group(1)},
            allow_redirects=False,
            timeout=30,
        )
        if used.status_code != 302:
            return f"link use {used.status_code}"
        portal = http.get(f"{base}/portal/", allow_redirects=False, timeout=30)
        return "ok" if portal.status_code == 200 else f"portal {portal.status_code}"
