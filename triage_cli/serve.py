"""``triage serve``: the service under gunicorn (the Flask dev server only with ``--dev``).

The command replaces itself with the gunicorn master (``exec``), so signals sent
to its pid reach gunicorn directly: ``kill -HUP`` = graceful reload onto the
current champion, ``kill -TERM`` = graceful stop. Options become ``TRIAGE_*``
environment variables, the one configuration path the app knows.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP service (gunicorn; --dev for the Flask dev server)",
        description="Serve POST /v1/classify, the KB suggest API, health and metrics. "
        "Every option can also be set as a TRIAGE_* variable (docs/SETTINGS.md).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers", type=int, default=None, help="gunicorn worker processes (default TRIAGE_WORKERS or 2)"
    )
    p.add_argument(
        "--bundle", default=None, help="bundle folder to serve (default: models/CHAMPION, else the newest)"
    )
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PATH",
        help="also load bundles from PATH although it is outside the models dir "
        "(a bundle is code: only folders you control; repeatable)",
    )
    p.add_argument(
        "--encoder", default=None, help="serve with another encoder kind, e.g. minilm-onnx (TRIAGE_ENCODER)"
    )
    p.add_argument(
        "--no-prepare", action="store_true", help="skip the pre-fork check of bundle/rules and KB index build"
    )
    p.add_argument(
        "--dev", action="store_true", help="Flask's development server in one process (never in production)"
    )
    p.set_defaults(func=run)


def _environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env["TRIAGE_BIND"] = f"{args.host}:{args.port}"
    # Each gunicorn worker loads its bundle before it accepts a connection, so no request
    # meets a half-started worker (a 503 from one worker while its sibling says ready).
    # prepare() has already built the KB index cache, so this takes seconds, not minutes;
    # reloads still swap in the background.
    env.setdefault("TRIAGE_LOAD", "sync")
    env.setdefault("TRIAGE_MAIL_INTERVAL", "5")  # a served desk sends its mail (never in a request)
    if args.workers is not None:
        env["TRIAGE_WORKERS"] = str(args.workers)
    if args.bundle:
        env["TRIAGE_BUNDLE"] = str(Path(args.bundle).resolve())
    if getattr(args, "trust", None):
        given = [env["TRIAGE_TRUSTED_BUNDLES"]] if env.get("TRIAGE_TRUSTED_BUNDLES") else []
        env["TRIAGE_TRUSTED_BUNDLES"] = os.pathsep.join(given + [str(Path(p).resolve()) for p in args.trust])
    if args.encoder:
        env["TRIAGE_ENCODER"] = args.encoder
    return env


def check_port_free(host: str, port: int, command: str = "triage serve") -> None:
    """Stop with a message when something already listens on host:port (a second
    ``./start.sh``, say): gunicorn would retry for five seconds and then only say
    "Can't connect", and a readiness probe would find the other server and say "serving"."""
    import socket

    from triage.errors import ConfigError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}): is the service already running "
                f"(another ./start.sh or triage serve)? Stop it, or choose another port: "
                f"{command} --port {port + 1}"
            ) from None


def run(args: argparse.Namespace) -> int:
    check_port_free(args.host, args.port)
    env = _environment(args)
    if args.dev:
        return _run_dev(args, env)
    if not args.no_prepare:
        _prepare(env)
    conf = Path(__file__).resolve().parents[1] / "service" / "gunicorn_conf.py"
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "service.wsgi:app"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def _prepare(env: dict[str, str]) -> None:
    """Validate and warm the caches in this process, before exec'ing gunicorn."""
    from service import settings
    from service.state import prepare

    info = prepare(settings.resolve(environ=env))
    print(
        f"triage serve: bundle {info['bundle']}, KB {info['kb']} ({info['articles']} articles)",
        file=sys.stderr,
        flush=True,
    )


def _run_dev(args: argparse.Namespace, env: dict[str, str]) -> int:
    os.environ.update(env)
    from service.app import configure_logging, create_app

    configure_logging(env.get("TRIAGE_LOG_LEVEL", "INFO"))
    app = create_app()
    app.extensions["triage.state"].install_sighup()
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0
