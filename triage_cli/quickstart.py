"""``triage quickstart``: what ./start.sh runs on a fresh clone.

Trains the demo bundle if models/ holds none (and shows its report), then serves
it on localhost. A help desk with its own export uses ``triage train`` and
``triage serve`` instead; this command only chains them for a first look.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quickstart",
        help="train the demo bundle if there is none, show its report, serve it",
        description="First run on a fresh clone: if models/ holds no bundle, train one on the "
        "demo corpus (data/demo/) with the MiniLM encoder and print its evaluation "
        "report; then serve the API and pages on http://HOST:PORT under gunicorn.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        help="bundle folder (default: TRIAGE_MODELS_DIR, else models/ under TRIAGE_HOME "
        "or the working directory)",
    )
    p.add_argument(
        "--encoder",
        choices=["minilm-onnx", "minilm", "hashing"],
        default="minilm-onnx",
        help="encoder for a newly trained demo bundle (default minilm-onnx: the int8 "
        "ONNX MiniLM, trained and served on the same vectors)",
    )
    p.add_argument("--no-serve", action="store_true", help="train and report only; do not serve")
    p.add_argument(
        "--no-history",
        action="store_true",
        help="do not seed the demo's few weeks of desk history into an empty store",
    )
    p.add_argument(
        "--no-control-group",
        action="store_true",
        help="show article suggestions to every portal visit (the default keeps "
        "10%% as a control group, which the knowledge report needs)",
    )
    p.set_defaults(func=run)


def existing_bundles(models: Path) -> list[Path]:
    if not models.is_dir():
        return []
    return sorted(p for p in models.iterdir() if (p / "manifest.json").is_file())


def run(args: argparse.Namespace) -> int:
    from triage.errors import ConfigError

    from . import workspace

    args.models = workspace.models_dir(args.models)
    if not args.no_serve:  # before minutes of training, not after
        from .serve import check_port_free

        check_port_free(args.host, args.port, "./start.sh")
    if not (workspace.demo_dir() / "tickets.csv").exists():
        raise ConfigError(
            f"the demo corpus is not at {workspace.demo_dir()}: run quickstart from "
            "the project folder (the checkout) or set TRIAGE_HOME to it"
        )
    bundles = existing_bundles(args.models)
    if bundles:
        print(
            f"triage quickstart: using the bundles in {args.models} (newest {bundles[-1].name}); "
            "delete them to retrain the demo"
        )
    else:
        _train_demo(args)
    if args.no_serve:
        return 0
    import os

    from triage_cli import serve

    os.environ["TRIAGE_MODELS_DIR"] = str(args.models.resolve())
    _demo_secrets(workspace.var_dir())
    if _demo_desk() and not args.no_history:
        _demo_history()
    if args.no_control_group:
        os.environ["TRIAGE_PORTAL_CONTROL_SHARE"] = "0"
    print(
        f"triage quickstart: starting the service on http://{args.host}:{args.port}/ "
        "(loading the bundle; it says when it is serving)",
        flush=True,
    )
    _announce_when_ready(args.host, args.port)
    return serve.run(
        argparse.Namespace(
            host=args.host,
            port=args.port,
            workers=None,
            bundle=None,
            encoder=None,
            no_prepare=False,
            dev=False,
        )
    )


def _demo_secrets(var: Path) -> None:
    """API keys and a session secret for a first look, made once and kept in var/ (git-ignored).

    The service refuses requests without a key; a stranger needs one to try the API and to
    sign in as an agent or admin. A deployment configures its own (docs/SERVICE.md).
    """
    import json
    import os
    import secrets

    from service.auth import digest

    var.mkdir(parents=True, exist_ok=True)
    keys_json, keys_txt, secret = var / "demo-keys.json", var / "demo-keys.txt", var / "secret_key"
    if not keys_json.exists():
        plain = {role: secrets.token_urlsafe(24) for role in ("intake", "agent", "admin")}
        entries = [{"name": f"demo-{role}", "role": role, "sha256": digest(k)} for role, k in plain.items()]
        keys_json.write_text(json.dumps(entries, indent=1))
        keys_txt.write_text("".join(f"{role}\t{k}\n" for role, k in plain.items()))
        keys_txt.chmod(0o600)
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(32))
        secret.chmod(0o600)
    os.environ.setdefault("TRIAGE_API_KEYS_FILE", str(keys_json))
    os.environ.setdefault("TRIAGE_SECRET_KEY", secret.read_text().strip())
    if os.environ["TRIAGE_API_KEYS_FILE"] == str(keys_json):
        print(f"triage quickstart: demo API keys (role, key) are in {keys_txt}:")
        print(keys_txt.read_text(), end="", flush=True)


def _announce_when_ready(host: str, port: int, timeout: float = 900.0) -> None:
    """Say "serving" only once a worker answers /readyz (from a thread: serve.run blocks)."""
    import os
    import threading
    import time
    import urllib.request

    def wait() -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/readyz"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        print(
                            f"triage quickstart: serving on http://{host}:{port}/ (portal at "
                            "/portal, agents at /agent, API docs at /openapi.json; Ctrl-C "
                            "stops)",
                            flush=True,
                        )
                        if not os.environ.get("TRIAGE_SMTP_HOST"):
                            print(
                                "triage quickstart: no SMTP server is set, so mail (customer "
                                "sign-in links too) goes to var/mail-out: sign in as admin "
                                "and open /admin/mail to read it and follow its links",
                                flush=True,
                            )
                        return
            except OSError:
                pass
            time.sleep(0.5)
        print("triage quickstart: no worker answered /readyz yet; see the log above", flush=True)

    threading.Thread(target=wait, name="announce-ready", daemon=True).start()


def _demo_history() -> None:
    """A few weeks of desk history in an empty store, so queues and reports show something."""
    from triage.store import Store
    from triage_cli.demo_seed import seed

    from . import workspace

    store = Store(workspace.database_url())
    made = seed(store)
    if made:
        _demo_mail_history(store)
    store.dispose()
    if made:
        print(
            f"triage quickstart: seeded {made} demo tickets of the last 3 weeks "
            "(triage quickstart --no-history skips this)",
            flush=True,
        )


def _demo_mail_history(store) -> None:
    """Seeded history is not mailed (its notices are dropped), and a share of its resolved
    tickets carry a customer rating, so the satisfaction report has something to show."""
    import random

    from sqlalchemy import select

    from triage.store import outbound, satisfaction

    rng = random.Random(10)
    with store.session() as session:
        outbound.discard_unsent(session, satisfaction.utcnow())  # seeding ran on an empty store
        for survey in session.scalars(select(satisfaction.Survey).order_by(satisfaction.Survey.id)):
            if rng.random() < 0.4:  # about the share of customers who answer
                rating = rng.choices([5, 4, 3, 2, 1], weights=[45, 30, 12, 8, 5])[0]
                satisfaction.answer(session, survey, rating, now=survey.requested_at)


def _demo_desk() -> bool:
    """The demo's teams and agents in the store (idempotent), and the service checks against them.

    Returns whether the demo desk is the one in use (a desk of your own is left alone).
    """
    import os

    from triage.desk import load_desk
    from triage.store import Store
    from triage.store import desk as store_desk

    from . import workspace

    demo_desk = workspace.demo_dir() / "desk.yaml"
    os.environ.setdefault("TRIAGE_DESK_PATH", str(demo_desk))
    if os.environ["TRIAGE_DESK_PATH"] != str(demo_desk):
        return False  # a desk of your own: apply it with 'triage desk apply'
    store = Store(workspace.database_url())
    store.upgrade()
    with store.session() as session:
        changes = store_desk.apply(
            session, load_desk(demo_desk), actor="quickstart", source="data/demo/desk.yaml"
        )
    store.dispose()
    print(
        f"triage quickstart: demo desk {demo_desk}: "
        + (f"{len(changes)} change(s) applied" if changes else "up to date"),
        flush=True,
    )
    return True


def _train_demo(args: argparse.Namespace) -> None:
    from triage_cli.train import register, run_train

    from . import workspace

    print("triage quickstart: no bundle yet: training the demo bundle on data/demo/tickets.csv", flush=True)
    # parsed by `triage train`'s own parser, so every option it gains has its default here too
    # (a hand-built Namespace missed --max-rows and broke ./start.sh)
    parser = argparse.ArgumentParser(prog="triage")
    register(parser.add_subparsers())
    demo = workspace.demo_dir()
    run_train(
        parser.parse_args(
            [
                "train",
                "--data",
                str(demo / "tickets.csv"),
                "--mapping",
                str(demo / "mapping.yaml"),
                "--out",
                str(args.models),
                "--encoder",
                args.encoder,
            ]
        )
    )
    _stop_fit_workers()


def _stop_fit_workers() -> None:
    """Stop the worker processes the training's cross-fits ran in (joblib's loky keeps them
    for reuse): this process goes on to become the service's gunicorn master, and the idle
    workers (~250 MB each) lived beside it, and outlived it when it stopped."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)
