"""Customer sign-in proves the address: one-time links, revocable sessions, one shared key.

The link comes from the mail queued in the outbox (as the customer gets it);
it works once, within 15 minutes, and is rate-limited per address and client.
Typing an address alone signs in only under the explicit demo setting.
"""

from __future__ import annotations

import stat

import pytest

from service.app import create_app
from signin_support import TOKEN, customer_client, latest_signin_path, request_link, use_link


def make_app(tmp_path, **extra):
    return create_app(
        {
            "TRIAGE_LOAD": "off",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_API_KEYS": "agent-secret:agent",
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'pages.db'}",
            "TRIAGE_SECRET_KEY_FILE": str(tmp_path / "run" / "secret_key"),
            "TRIAGE_PORTAL_CONTROL_SHARE": 0.0,
            **extra,
        }
    )


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


def test_a_typed_address_alone_does_not_sign_in_by_default(app):
    client = app.test_client()
    sent = request_link(client, "alice@example.com")
    assert sent.status_code == 200 and "Check your e-mail" in sent.text
    assert client.get("/portal/").status_code == 302  # still signed out
    with client.session_transaction() as session:
        assert "user" not in session


def test_the_mailed_link_signs_in_once(app):
    client, response = customer_client(app, "alice@example.com")
    assert response.status_code == 302 and response.location.endswith("/portal/")
    assert client.get("/portal/").status_code == 200
    from service.tickets import get_store

    with app.app_context():
        path = latest_signin_path(get_store(), "alice@example.com")
    again = use_link(app.test_client(), path)
    assert again.status_code == 400 and "used already" in again.text


def test_a_tampered_link_is_refused(app):
    client = app.test_client()
    request_link(client, "alice@example.com")
    from service.tickets import get_store

    with app.app_context():
        path = latest_signin_path(get_store(), "alice@example.com")
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert client.get(forged).status_code == 400


def test_links_are_rate_limited_per_address_and_per_client(tmp_path):
    app = make_app(tmp_path, TRIAGE_SIGNIN_LINKS_PER_ADDRESS=2, TRIAGE_SIGNIN_LINKS_PER_CLIENT=3)
    client = app.test_client()
    assert [request_link(client, "a@example.com").status_code for _ in range(3)] == [200, 200, 429]
    assert request_link(client, "b@example.com").status_code == 200  # third from this client
    limited = request_link(client, "c@example.com")
    assert limited.status_code == 429 and limited.headers["Retry-After"]


def test_signing_out_revokes_the_session_on_the_server(app):
    client, _ = customer_client(app, "alice@example.com")
    cookie = client.get_cookie("triage_session").value
    token = TOKEN.search(client.get("/portal/").text).group(1)
    client.post("/signout", data={"csrf_token": token})
    thief = app.test_client()
    thief.set_cookie("triage_session", cookie)  # the cookie captured before signing out
    assert thief.get("/portal/").status_code == 302


def test_the_demo_setting_lets_a_typed_address_sign_in(tmp_path):
    app = make_app(tmp_path, TRIAGE_PORTAL_EMAIL_SIGNIN=True)
    client = app.test_client()
    token = TOKEN.search(client.get("/signin").text).group(1)
    response = client.post(
        "/signin", data={"csrf_token": token, "kind": "customer", "email": "demo@example.com"}
    )
    assert response.status_code == 302 and client.get("/portal/").status_code == 200


def test_the_generated_key_is_kept_once_private_and_shared(tmp_path):
    first, second = make_app(tmp_path), make_app(tmp_path)
    path = tmp_path / "run" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.secret_key == second.secret_key == path.read_text().strip()
    client, _ = customer_client(first, "alice@example.com")
    other = second.test_client()  # "another worker": same key, same session store
    other.set_cookie("triage_session", client.get_cookie("triage_session").value)
    assert other.get("/portal/").status_code == 200
