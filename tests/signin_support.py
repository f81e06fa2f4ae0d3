"""Signing a customer in the way a customer does: ask for a link, take it from the outbox, use it.

Tests that need a signed-in customer go through the one-time link (the
default sign-in), reading the link from the mail queued in the outbox, so the
real path is what every page test exercises.
"""

from __future__ import annotations

import re

from sqlalchemy import select

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def latest_signin_path(store, address: str) -> str:
    """The sign-in path of the newest link mailed to ``address``."""
    from triage.store.tables import OutboxMessage

    with store.session() as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event == "mail.signin")
            .order_by(OutboxMessage.id.desc())
        ).all()
        for row in rows:
            if row.payload["to"] == [address]:
                return row.payload["context"]["signin_path"]
    raise AssertionError(f"no sign-in mail for {address}")


def request_link(client, address: str, next_path: str = ""):
    token = TOKEN.search(client.get("/signin").text).group(1)
    return client.post(
        "/signin", data={"csrf_token": token, "kind": "customer", "email": address, "next": next_path}
    )


def use_link(client, path: str):
    page = client.get(path)
    if page.status_code != 200:
        return page
    token = TOKEN.search(page.text).group(1)
    return client.post(path, data={"csrf_token": token})


def customer_client(app, address: str):
    """A test client signed in as ``address`` through a one-time link; (client, final response)."""
    from service.store import get_store

    client = app.test_client()
    sent = request_link(client, address)
    assert sent.status_code == 200, sent.text
    with app.app_context():
        path = latest_signin_path(get_store(), address)
    return client, use_link(client, path)
