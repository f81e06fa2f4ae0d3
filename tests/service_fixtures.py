"""Helpers of the service tests: a small bundle, a small KB, keys, an app config.

The fixtures (``service_env``, ``app``, ``client``) are in ``conftest.py``.

The bundle is trained once per session with the HashingEncoder on a sample of the
demo corpus (seconds, no weights). It goes through ``training.pipeline.train``
when that exists, else through the bundle writer directly with the same heads,
so the service tests do not depend on the training area's schedule.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
KEYS = {"intake-key": "intake", "agent-key": "agent", "admin-key": "admin"}
KEYS_SPEC = ",".join(f"{k}:{r}" for k, r in KEYS.items())

KB_ARTICLES = [
    {
        "id": "kb-vpn",
        "title": "Fix VPN connection drops",
        "description": "What to do when the VPN client disconnects or cannot connect.",
        "body": "Restart the VPN client, check your network, and reinstall the VPN profile. "
        "If the VPN still drops, collect the client log and open a ticket.",
    },
    {
        "id": "kb-password",
        "title": "Reset your password",
        "description": "Reset a forgotten or expired password and unlock your account.",
        "body": "Use the self-service portal to reset your password. Locked accounts unlock after "
        "15 minutes or when the service desk unlocks them.",
    },
    {
        "id": "kb-printer",
        "title": "Printer is offline or jammed",
        "description": "Clear paper jams and bring an offline printer back.",
        "body": "Open the tray, remove jammed paper, power cycle the printer and check the queue.",
    },
    {
        "id": "kb-outlook",
        "title": "Emails stuck in the outbox",
        "description": "Outlook does not send e-mail: messages stay in the outbox.",
        "body": "Check the connection, remove large attachments, restart Outlook in safe mode.",
    },
]


def write_kb(folder: Path) -> Path:
    path = folder / "kb.jsonl"
    path.write_text("\n".join(json.dumps(a) for a in KB_ARTICLES) + "\n", encoding="utf-8")
    return path


def _rows(limit: int = 400) -> list[dict]:
    with open(DEMO / "tickets.csv", newline="", encoding="utf-8") as fh:
        return [r for _, r in zip(range(limit), csv.DictReader(fh))]


def train_small_bundle(models_dir: Path) -> Path:
    """A bundle with the hashing encoder: via training.pipeline when it and the mapping exist."""
    try:
        from training.pipeline import train  # noqa: F401
    except ImportError:
        return _write_bundle_directly(models_dir)
    if not (DEMO / "mapping.yaml").exists():
        return _write_bundle_directly(models_dir)
    return _train_with_pipeline(models_dir)


def _train_with_pipeline(models_dir: Path) -> Path:
    from training.pipeline import train

    result = train(
        DEMO / "tickets.csv",
        DEMO / "mapping.yaml",
        models_dir,
        encoder="hashing",
        candidates=("combined",),
        cv=3,
        progress=False,
    )
    return Path(result.bundle_path)


def _write_bundle_directly(models_dir: Path) -> Path:
    from triage.bundle import write_bundle
    from triage.classifiers import Features, TextHead
    from triage.text import model_text

    rows = _rows()
    X = Features([model_text(r["title"], r["description"]) for r in rows], None)
    heads, manifest_heads = {}, {}
    for head, column in (("type", "kind"), ("team", "assignment_group")):
        model = TextHead("tfidf", cv=3).fit(X, [r[column] for r in rows])
        heads[head] = model
        manifest_heads[head] = {
            "labels": [str(c) for c in model.classes_],
            "thresholds": {str(c): {"apply": 0.9, "suggest": 0.4} for c in model.classes_},
        }
    manifest = {"encoder": {"kind": "hashing", "dim": 256}, "heads": manifest_heads}
    return write_bundle(models_dir, heads, manifest, extras=lambda tmp, *_: None)


def app_config(env: dict, **overrides) -> dict:
    config = {
        "TESTING": True,
        "TRIAGE_MODELS_DIR": str(env["models"]),
        "TRIAGE_KB_PATH": str(env["kb"]),
        "TRIAGE_LOAD": "sync",
        "TRIAGE_API_KEYS": KEYS_SPEC,
        "TRIAGE_KB_THRESHOLD": "0.2",
    }
    config.update(overrides)
    return config


def auth(role: str = "intake") -> dict:
    key = next(k for k, r in KEYS.items() if r == role)
    return {"Authorization": f"Bearer {key}"}


TICKET = {
    "id": "T-1",
    "subject": "VPN keeps disconnecting",
    "body": "Since this morning the VPN client drops every few minutes and I cannot reach the "
    "file shares or the intranet. I restarted the laptop twice and it still happens. "
    "This blocks my work with customers today, please help as soon as possible.",
    "channel": "email",
    "customer_tier": "gold",
}


FIXTURES = ("service_env", "app", "client")


def __getattr__(name: str):
    if name in FIXTURES:  # an import by name made a per-module copy of a session fixture
        raise ImportError(
            f"{name!r} is a fixture defined in tests/conftest.py: use it as an "
            f"argument, do not import it from {__name__}"
        )
    raise AttributeError(name)
