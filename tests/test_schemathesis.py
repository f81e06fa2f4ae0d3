"""Schema-driven fuzzing of the served API: every operation, every role, every check.

gunicorn serves the app on loopback (two workers, the small test bundle, SQLite);
schemathesis reads ``/openapi.json`` and runs all its phases once per role (an
``intake``, an ``agent`` and an ``admin`` key) with every check schemathesis 4
enables by default: all of them except ``max_response_time``, which needs a
threshold (timing on a shared CI machine is not the contract). ``--checks all``
is not passed because it would override the one per-operation exception below. The contract: no server
error, no answer outside the documented statuses and schemas, valid requests
accepted, invalid ones refused. A fixed seed keeps CI stable; set
``TRIAGE_SCHEMATHESIS_SEED`` to explore others (``random`` picks one and prints it).
``TRIAGE_SCHEMATHESIS_EXAMPLES`` sets the cases per operation (default 12), and
``TRIAGE_SCHEMATHESIS_STORE=postgresql`` serves from the PostgreSQL test database instead.

Rate limits stay on, set high enough that the run measures the contract rather
than the limits (their own tests are in test_rate_limits.py).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service_fixtures import KEYS, KEYS_SPEC
from store_support import postgres_or_skip
from serving import GUNICORN, free_port, server_env, serving

ROLES = ("intake", "agent", "admin")
MIN_CASES = 2000

# The desk's agent and team bodies pass the schema but must also name teams and calendars
# that exist, which no schema can know: valid-looking bodies may be refused there.
CONFIG = """
# 414 (a request line past gunicorn's limit) is a refusal too, and documented as such
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422",
                     "428", "429", "5xx"]

[[operations]]
include-path-regex = "^/v1/admin/desk/(agents|teams)/"
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture(scope="module")
def served(service_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    high = "100000 per minute"
    settings = {
        "TRIAGE_BIND": f"127.0.0.1:{port}",
        "TRIAGE_WORKERS": "2",
        "TRIAGE_THREADS": "4",
        "TRIAGE_LOAD": "sync",
        "TRIAGE_API_KEYS": KEYS_SPEC,
        "TRIAGE_MODELS_DIR": str(service_env["models"]),
        "TRIAGE_KB_PATH": str(service_env["kb"]),
        "TRIAGE_KB_THRESHOLD": "0.2",
        "TRIAGE_DATABASE_URL": _database_url(tmp),
        "TRIAGE_CACHE_DIR": str(tmp / "cache"),
        "TMPDIR": str(tmp),
        "TRIAGE_RATELIMIT_BAD_API_KEY": high,
        "TRIAGE_RATELIMIT_SUGGEST": high,
        "TRIAGE_RATELIMIT_TICKET_CREATE": high,
        "TRIAGE_RATELIMIT_SIGNIN": high,
        "TRIAGE_MAIL_DIR": str(tmp / "mail"),
        "TRIAGE_ATTACHMENTS_DIR": str(tmp / "files"),
        "TRIAGE_VAR_DIR": str(tmp / "var"),  # a module fixture runs before the autouse one
    }
    env = server_env(settings, unset=("TRIAGE_RUN_DIR", "TRIAGE_BUNDLE"))
    base = f"http://127.0.0.1:{port}"
    with serving(GUNICORN, env, tmp / "serve.log", base, seconds=180):
        yield base, tmp


def _database_url(tmp: Path) -> str:
    if os.environ.get("TRIAGE_SCHEMATHESIS_STORE", "sqlite") == "postgresql":
        return postgres_or_skip()
    return f"sqlite:///{tmp / 'fuzz.db'}"


def _seed() -> int:
    raw = os.environ.get("TRIAGE_SCHEMATHESIS_SEED", "20261201")
    seed = random.randrange(1, 2**31) if raw == "random" else int(raw)
    print(f"schemathesis seed {seed}")
    return seed


def _run(base: str, tmp: Path, role: str, seed: int, examples: int) -> tuple[int, str, int]:
    key = next(k for k, r in KEYS.items() if r == role)
    (tmp / "schemathesis.toml").write_text(CONFIG, encoding="utf-8")
    cmd = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(tmp / "schemathesis.toml"),
        "run",
        f"{base}/openapi.json",
        "--mode",
        "all",
        "-n",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--no-color",
        "--header",
        f"Authorization: Bearer {key}",
        "--request-timeout",
        "30",
    ]
    if os.environ.get("TRIAGE_SCHEMATHESIS_SEED", "20261201") != "random":
        cmd.append("--generation-deterministic")  # implies no example database
    else:
        cmd += ["--generation-database", "none"]
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=1500)
    out = done.stdout + done.stderr
    match = re.search(r"(\d+) generated", out)
    return done.returncode, out, int(match.group(1)) if match else 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_operation_and_role_under_schemathesis(served):
    base, tmp = served
    seed = _seed()
    examples = int(os.environ.get("TRIAGE_SCHEMATHESIS_EXAMPLES", "12"))
    total, failures = 0, []
    for role in ROLES:
        code, out, cases = _run(base, tmp, role, seed, examples)
        total += cases
        print(f"{role}: {cases} cases, exit {code}")
        if code != 0:
            failures.append(f"--- role {role} (exit {code})\n{out[-40000:]}")
    assert not failures, "\n".join(failures)
    assert total >= MIN_CASES, f"only {total} cases generated (want at least {MIN_CASES})"
