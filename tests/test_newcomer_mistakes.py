"""A newcomer's typical mistakes with the ``triage`` command get a message that says what to do.

Each case was a SQLAlchemy or driver traceback before: a misspelt scheme (``postgress://``),
a driver this project does not install (``postgresql+psycopg2://``, ``mysql://``), a URL
without a scheme, a database server that is not there (wrong port) or a database that
does not exist.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from serving import ROOT, free_port, server_env
from store_support import postgres_or_skip


def _db_upgrade(url: str, tmp_path) -> subprocess.CompletedProcess:
    env = server_env({"TRIAGE_DATABASE_URL": url, "TRIAGE_VAR_DIR": str(tmp_path / "var")})
    return subprocess.run(
        [sys.executable, "-m", "triage_cli", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgress://ann:hunter2@127.0.0.1:5432/desk",
        "postgresql+psycopg2://ann:hunter2@127.0.0.1:5432/desk",
        "mysql://ann:hunter2@127.0.0.1/desk",
        "127.0.0.1:5432/desk",
    ],
)
def test_a_database_url_of_no_installed_driver_names_the_setting_and_the_forms(url, tmp_path):
    done = _db_upgrade(url, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "TRIAGE_DATABASE_URL" in done.stderr and "postgresql+psycopg://" in done.stderr
    assert "hunter2" not in done.stderr  # a password is never echoed


def test_a_database_server_that_is_not_there_says_to_check_the_url(tmp_path):
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/desk"
    done = _db_upgrade(url, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot use the database" in done.stderr and "TRIAGE_DATABASE_URL" in done.stderr
    assert "hunter2" not in done.stderr


@pytest.mark.postgres
def test_a_database_that_does_not_exist_says_so(tmp_path):
    base = postgres_or_skip().rsplit("/", 1)[0]
    done = _db_upgrade(f"{base}/no_such_database_here", tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert 'database "no_such_database_here" does not exist' in done.stderr


# ---------------------------------------------------------------------------- the API
def test_a_key_sent_without_bearer_is_told_the_scheme_is_missing(client):
    r = client.post("/v1/classify", json={"subject": "VPN down"}, headers={"Authorization": "intake-key"})
    assert r.status_code == 401
    assert "Bearer" in r.get_json()["error"] and "needs the word Bearer" in r.get_json()["error"]


def test_an_intake_key_listing_tickets_is_told_about_x_requester_and_staff_keys(client):
    # before: "a requester must say who they are (X-Requester)"
    r = client.get("/v1/tickets", headers={"Authorization": "Bearer intake-key"})
    assert r.status_code == 403
    assert "X-Requester: <their e-mail>" in r.json["error"] and "agent or admin key" in r.json["error"]


def test_the_wrong_method_names_the_allowed_one(client):
    r = client.get("/v1/classify", headers={"Authorization": "Bearer intake-key"})
    assert r.status_code == 405
    assert r.get_json()["error"] == "method GET is not allowed on /v1/classify (allowed: POST)"
    assert "POST" in r.headers["Allow"]


@pytest.mark.parametrize(
    "path, hint",
    [("/v1/ticket", "/openapi.json"), ("/v1/classify/", "without the trailing slash: /v1/classify")],
)
def test_an_unknown_api_path_points_to_the_list_of_paths(client, path, hint):
    r = client.post(path, json={"subject": "x"}, headers={"Authorization": "Bearer intake-key"})
    assert r.status_code == 404
    assert hint in r.get_json()["error"]


# ---------------------------------------------------------------------------- the port
@pytest.mark.parametrize("command", [["serve"], ["quickstart", "--encoder", "hashing", "--no-history"]])
def test_a_second_start_on_a_taken_port_says_so_at_once(tmp_path, command):
    """Before: gunicorn retried for five seconds and said "Can't connect", and quickstart's
    readiness probe found the first server and announced "serving on" for the second."""
    import socket

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = server_env({"TRIAGE_VAR_DIR": str(tmp_path / "var"), "TRIAGE_MODELS_DIR": str(tmp_path / "m")})
        done = subprocess.run(
            [sys.executable, "-m", "triage_cli", *command, "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "serving on" not in done.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "already running" in done.stderr and "--port" in done.stderr


@pytest.mark.parametrize(
    "kind, make, said",
    [
        # before: mailbox.NoSuchMailboxError traceback
        (
            "--maildir",
            lambda p: p / "nowhere",
            "no Maildir there (expected a folder with new/, cur/ and tmp/",
        ),
        (
            "--maildir",
            lambda p: _file(p / "one.eml", b"From: a@b.example\n\nhi\n"),
            "is a file, not a Maildir",
        ),
        ("--mbox", lambda p: p / "nowhere.mbox", "no such file"),
        ("--mbox", lambda p: p, "is a folder (use --maildir"),
        # before: read as no message at all: "0 created, 0 threaded, ..." and exit 0
        ("--mbox", lambda p: _file(p / "one.eml", b"From: a@b.example\n\nhi\n"), "is not an mbox"),
    ],
    ids=["maildir-missing", "maildir-file", "mbox-missing", "mbox-folder", "mbox-eml"],
)
def test_a_mailbox_that_is_not_there_or_not_one_says_so(tmp_path, capsys, kind, make, said):
    from triage_cli import main

    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["db", "upgrade", "--database", url]) == 0
    code = main(["mail", "poll", kind, str(make(tmp_path)), "--once", "--database", url])
    err = capsys.readouterr().err
    assert code != 0 and said in err and "Traceback" not in err, err


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


def test_every_option_of_every_command_says_what_it_is_in_help():
    # before: mail poll's --maildir, --mbox, --interval (seconds? minutes?) and
    # label-quality's --folds, --method were listed with no word
    import argparse

    from triage_cli import build_parser

    bare = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
            elif action.option_strings and action.dest != "help" and not action.help:
                bare.append(" ".join(path + action.option_strings[:1]))

    walk(build_parser(), ["triage"])
    assert bare == []


def test_the_service_log_has_no_alembic_plugin_lines_at_start(tmp_path):
    # before: 9 "INFO alembic.runtime.plugins: setup plugin ..." lines per worker at start
    code = (
        "from service.app import configure_logging; configure_logging('INFO');"
        "from triage.store import Store;"
        f"Store('sqlite:///{tmp_path / 'l.db'}').upgrade()"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "alembic" not in done.stderr, done.stderr[:500]
