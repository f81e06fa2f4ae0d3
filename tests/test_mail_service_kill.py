"""Kill the served desk (gunicorn master and workers, SIGKILL) between the commit of a ticket
and the sending of its mail: after a restart the mail goes out once, and only once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller

from serving import free_port, stop, wait_ready
from service_fixtures import KEYS_SPEC

ROOT = Path(__file__).resolve().parents[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


def serve(env, port, log):
    return subprocess.Popen(
        [sys.executable, "-m", "triage_cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_service_sends_the_committed_mail_once_after_restart(service_env, tmp_path):
    handler = Inbox()
    smtp = Controller(handler, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    env = {
        **os.environ,
        "TRIAGE_MODELS_DIR": str(service_env["models"]),
        "TRIAGE_BUNDLE": str(service_env["bundle"]),
        "TRIAGE_KB_PATH": str(service_env["kb"]),
        "TRIAGE_API_KEYS": KEYS_SPEC,
        "TRIAGE_CACHE_DIR": str(tmp_path / "cache"),
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'desk.db'}",
        "TRIAGE_SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        "TRIAGE_ATTACHMENTS_DIR": str(tmp_path / "files"),
        "TRIAGE_SMTP_HOST": "127.0.0.1",
        "TRIAGE_SMTP_PORT": str(smtp.port),
        "TRIAGE_SMTP_SECURITY": "none",
        "TRIAGE_MAIL_INTERVAL": "3600",
        "PYTHONPATH": str(ROOT),
    }  # no delivery before the kill
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    base, log = f"http://127.0.0.1:{port}", open(tmp_path / "serve.log", "wb")
    first = serve(env, port, log)
    try:
        wait_ready(base, first, log=tmp_path / "serve.log")
        made = requests.post(
            f"{base}/v1/tickets",
            headers={"Authorization": "Bearer intake-key"},
            json={"subject": "Printer on fire", "body": "smoke", "requester": "cust@example.com"},
            timeout=30,
        )
        assert made.status_code == 201  # committed: the ticket and its mail in the outbox
        os.killpg(first.pid, signal.SIGKILL)  # master and workers, no clean-up
        first.wait(30)
        assert handler.messages == []
        second = serve({**env, "TRIAGE_MAIL_INTERVAL": "0.5"}, port, log)
        try:
            wait_ready(base, second, log=tmp_path / "serve.log")
            deadline = time.monotonic() + 60
            while not handler.messages and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)  # several more delivery passes in both workers
            assert len(handler.messages) == 1
            assert b"Printer on fire" in handler.messages[0]
        finally:
            stop(second)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        log.close()
        smtp.stop()
