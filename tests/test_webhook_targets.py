"""Webhooks cannot be aimed inward: http(s) only, addresses checked at delivery, no redirects."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest

from triage import egress
from triage.store import webhooks
from triage.store.tables import OutboxMessage, Webhook, utcnow


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list = []
    redirect_to: str | None = None

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).got.append(self.path)
        if type(self).redirect_to:
            self.send_response(302)
            self.send_header("Location", type(self).redirect_to)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(handler):
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receivers():
    first = type("First", (_Receiver,), {"got": [], "redirect_to": None})
    second = type("Second", (_Receiver,), {"got": [], "redirect_to": None})
    servers = [_serve(first), _serve(second)]
    yield [(f"http://127.0.0.1:{s.server_port}/hook", h) for s, h in zip(servers, (first, second))]
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://x/",
        "ftp://example.com/",
        "http://",
        "http:///path",
        "http://user:pw@example.com/",
        "http://exa mple.com/",
        "http://example.com/\x00",
        "",
        "http://[::1/",
    ],
)
def test_registration_takes_http_and_https_urls_only(store, url):
    with store.session() as s, pytest.raises(egress.Refused):
        webhooks.register(s, url, "k")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.8.8",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "100.100.100.200",
        "168.63.129.16",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1 (was taken as public)
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:a00:5::",  # 6to4 of 10.0.0.5
        "240.0.0.1",
        "255.255.255.255",
    ],
)
def test_inward_addresses_are_not_public(address):
    assert not egress.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1"])
def test_public_addresses_are(address):
    assert egress.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:22/",
        "http://localhost:8000/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/",
        "http://10.1.2.3/",
        "http://0.0.0.0:80/",
        "http://2130706433/",
    ],
)
def test_delivery_refuses_inward_targets_without_the_allow_list(url):
    with pytest.raises(egress.Refused):
        egress.post(url, b"{}", {}, 2.0)


def test_the_allow_list_names_hosts_or_networks():
    allow = egress.AllowList.parse("127.0.0.1, hooks.internal ,10.2.0.0/16")
    assert allow.allows("127.0.0.1", ipaddress.ip_address("127.0.0.1"))
    assert allow.allows("hooks.internal", ipaddress.ip_address("192.168.9.9"))
    assert allow.allows("x", ipaddress.ip_address("10.2.3.4"))
    assert not allow.allows("localhost", ipaddress.ip_address("127.0.0.2"))


def _queue_one(store, url):
    with store.session() as s:
        webhooks.register(s, url, "s3cret")
        webhooks.queue(s, "ticket.escalated", {"ticket_id": 1})


def test_loopback_is_refused_at_delivery_and_allowed_by_the_list(store, receivers):
    (url, handler), _ = receivers
    _queue_one(store, url)
    assert webhooks.deliver(store)["retry"] == 1  # refused: nothing sent
    assert handler.got == []
    with store.session() as s:
        msg = s.query(OutboxMessage).one()
        assert "TRIAGE_WEBHOOK_ALLOW" in msg.last_error
        msg.next_attempt_at = utcnow()
    assert webhooks.deliver(store, allow="127.0.0.1")["sent"] == 1
    assert handler.got == ["/hook"]


def test_redirects_are_not_followed(store, receivers):
    (first_url, first), (second_url, second) = receivers
    first.redirect_to = second_url  # a 302 with the signature would carry it elsewhere
    _queue_one(store, first_url)
    assert webhooks.deliver(store, allow="127.0.0.1") == {"sent": 0, "retry": 1, "failed": 0}
    assert first.got == ["/hook"] and second.got == []
    with store.session() as s:
        assert s.query(OutboxMessage).one().last_error == "HTTP 302"


def test_a_stored_file_url_is_never_opened(store):
    with store.session() as s:  # a row from before the check (or written by hand)
        s.add(Webhook(url="file:///etc/passwd", secret="k", events=[], active=True))
        s.flush()
        webhooks.queue(s, "ticket.escalated", {"ticket_id": 1})
    assert webhooks.deliver(store, allow="127.0.0.1")["retry"] == 1
    with store.session() as s:
        assert "http or https" in s.query(OutboxMessage).one().last_error


# ----------------------------------------------------------------- admin API
@pytest.fixture
def admin(store):
    from service.app import create_app

    app = create_app(
        {
            "TESTING": True,
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "ak:admin,bk:agent",
            "TRIAGE_WEBHOOK_ALLOW": "127.0.0.1",
        }
    )
    app.extensions["triage.store"] = store
    app.extensions["triage.state"].current = SimpleNamespace(triager=None, rules=None)
    return app.test_client()


def test_admin_api_lists_adds_disables_and_tests(admin, receivers, store):
    (url, handler), _ = receivers
    h = {"Authorization": "Bearer ak"}
    for bad in ("file:///etc/passwd", "http://user:pw@x.example/", "javascript:x"):
        r = admin.post("/v1/admin/webhooks", json={"url": bad}, headers=h)
        assert r.status_code == 422 and r.get_json()["ok"] is False
    assert (
        admin.post(
            "/v1/admin/webhooks", json={"url": url}, headers={"Authorization": "Bearer bk"}
        ).status_code
        == 403
    )
    r = admin.post("/v1/admin/webhooks", json={"url": url, "events": ["ticket.escalated"]}, headers=h)
    assert r.status_code == 201 and len(r.get_json()["secret"]) >= 32
    hook = r.get_json()["webhook"]
    listed = admin.get("/v1/admin/webhooks", headers=h).get_json()["webhooks"]
    assert listed[0]["url"] == url and "secret" not in listed[0]
    tested = admin.post(f"/v1/admin/webhooks/{hook['id']}/test", headers=h).get_json()
    assert tested["delivery"] == {"ok": True, "status": 204, "error": None}
    assert handler.got == ["/hook"]
    r = admin.post(f"/v1/admin/webhooks/{hook['id']}/disable", headers=h)
    assert r.status_code == 200 and r.get_json()["webhook"]["active"] is False
    with store.session() as s:
        assert webhooks.queue(s, "ticket.escalated", {"ticket_id": 1}) == []
    assert admin.post("/v1/admin/webhooks/99999/test", headers=h).status_code == 404
    assert admin.post(f"/v1/admin/webhooks/{2**31}/disable", headers=h).status_code == 404


def test_admin_test_reports_a_refused_target(store):
    from service.app import create_app

    app = create_app(
        {"TESTING": True, "TRIAGE_LOAD": "off", "TRIAGE_SIGHUP": False, "TRIAGE_API_KEYS": "ak:admin"}
    )
    app.extensions["triage.store"] = store
    c = app.test_client()
    h = {"Authorization": "Bearer ak"}
    hook = c.post("/v1/admin/webhooks", json={"url": "http://169.254.169.254/latest/"}, headers=h).get_json()[
        "webhook"
    ]
    out = c.post(f"/v1/admin/webhooks/{hook['id']}/test", headers=h).get_json()["delivery"]
    assert out["ok"] is False and "169.254.169.254" in out["error"]


def test_backoff_still_applies_to_refused_targets(store):
    _queue_one(store, "http://127.0.0.1:9/")
    t0 = utcnow()
    webhooks.deliver(store, now=lambda: t0)
    with store.session() as s:
        assert s.query(OutboxMessage).one().next_attempt_at == t0 + timedelta(seconds=2)
