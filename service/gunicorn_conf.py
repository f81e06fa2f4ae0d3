"""gunicorn configuration of ``triage serve`` (``gunicorn -c service/gunicorn_conf.py``).

Choices, measured or reasoned on the 2-core machines this runs on:

* ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` per worker: each worker is one inference
  stream; letting torch / BLAS start a thread per core in every worker made
  throughput fall 2.3x and p99 reach 0.5-0.9 s under load (docs: shared STACK.md).
* The int8 ONNX encoder gets one intra-op thread per worker (``service/components.py``
  reads ``OMP_NUM_THREADS``). ``bench/bench_encoder_threads.py`` (2 workers x 2 threads,
  one shared session per worker, 2 cores, loaded machine): 1 thread 20.7 texts/s, p99
  388 ms, 16.7 CPU ms/text; ONNX Runtime's default (a thread per core in every worker)
  15.1 texts/s, p99 429 ms, 25.9 CPU ms/text: its threads spin-wait against each other.
* ``preload_app = False``: every worker imports the app and loads its own bundle
  *after* the fork. Forking a process whose torch / onnxruntime thread pools are
  already running can deadlock the child, and per-worker loading is what makes
  ``kill -HUP <master>`` a graceful reload: gunicorn starts new workers (which read
  the new CHAMPION) and lets the old ones finish their requests. The price is one
  model copy per worker (~100-300 MB) and a few seconds of start-up, paid in parallel.
* ``gthread`` workers: the sync worker closes the connection after every
  response; clients of a triage service (intake pipelines, a portal backend) keep
  connections alive, and that saves a TCP handshake per call. Measured on the same
  machine (bench/bench_service.py, one client): gthread p50/p99 classify 25/39 ms,
  /livez 0.6 ms; sync 25/54 ms, /livez 1.4 ms. ``TRIAGE_WORKER_CLASS=sync`` remains
  an option: it balances requests across workers per request, not per connection.
* ``gthread`` here is gunicorn's worker with a late accept (service/gunicorn_worker.py,
  ``TRIAGE_ACCEPT_DELAY_MS``): a worker holding more connections than another lets that
  one take the next (counts shared by the workers; no wait when they hold as many). Plain gthread put both keep-alive clients of bench_service.py on one worker in
  22 of 49 rows (the other core idle, the two requests sharing one GIL: ?kb=0 p50 2.6 ->
  6.6-13.4 ms in the same runs); with the late accept 13 of 13 split ~50/50
  (bench/README.md "Round 5, i15k2").
* Prometheus multiprocess mode: a run folder made by the master is shared by the
  workers for metric files and for the admin-reload token (``TRIAGE_RUN_DIR``).
"""

from __future__ import annotations

import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

bind = os.environ.get("TRIAGE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("TRIAGE_WORKERS", "2"))
threads = int(os.environ.get("TRIAGE_THREADS", "2"))
timeout = int(os.environ.get("TRIAGE_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 30
preload_app = False
wsgi_app = "service.wsgi:app"
# gunicorn's control socket has one default path per user: two servers on one machine
# (tests, bench, a developer's own) would fight over it, and nothing here uses it.
control_socket_disable = True
accesslog = None  # the app logs one access line per request, with its request id
loglevel = os.environ.get("TRIAGE_LOG_LEVEL", "info").lower()


def _sibling(name: str):
    """service/<name>.py loaded by path: importing the ``service`` package here would import
    prometheus_client in the master before PROMETHEUS_MULTIPROC_DIR is set, and the forked
    workers would then keep their metrics to themselves."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"triage_{name}", os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_dirs():
    return _sibling("run_dir")


def _worker_class():
    """``gthread`` is gunicorn's threaded worker accepting with a delay when it already holds
    connections (service/gunicorn_worker.py: keep-alive clients spread over the workers)."""
    kind = os.environ.get("TRIAGE_WORKER_CLASS", "gthread")
    return _sibling("gunicorn_worker").BalancedThreadWorker if kind == "gthread" else kind


worker_class = _worker_class()


def on_starting(server):
    """Master, before any worker: the run folder for metrics and reload tokens.

    Folders left by servers that were hard-killed (no ``on_exit``) are swept first.
    """
    run_dirs = _run_dirs()
    run_dirs.sweep()
    run_dir = str(run_dirs.make())
    os.environ["TRIAGE_RUN_DIR"] = run_dir
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(run_dir, "metrics")
    server.log.info("triage run dir %s (metrics and reload tokens)", run_dir)


def post_fork(server, worker):
    from service.app import configure_logging

    configure_logging(os.environ.get("TRIAGE_LOG_LEVEL", "INFO"))


def post_worker_init(worker):
    """Worker, after the app is built: one torch thread, SIGHUP → in-place bundle swap, and
    what it loaded kept out of the garbage collector's full passes."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    app = worker.wsgi
    state = getattr(app, "extensions", {}).get("triage.state")
    if state is not None and app.config.get("TRIAGE_SIGHUP", True):
        state.install_sighup()
    freeze_loaded_objects()


def freeze_loaded_objects():
    """Move everything alive now (the app, its bundle and KB index: ~240,000 objects) out
    of the collector's reach (``gc.freeze``).

    None of it is garbage, yet every generation-2 collection walked all of it: ~160 ms of
    one worker's CPU (measured in-process, load 16), during which its requests wait: the
    100+ ms outliers of ``?kb=0`` runs whose p99 was a few ms. After the freeze a full
    collection walks only what requests left behind. Collected first, so no garbage of the
    start-up is kept for ever.
    """
    import gc

    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    """Drop a dead worker's live gauges (the bundle info) from the aggregated metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get("TRIAGE_RUN_DIR"):
        _run_dirs().remove(os.environ["TRIAGE_RUN_DIR"])


# The API admits a 1,000-character `q` on GET /v1/kb/suggest: percent-encoded multi-byte text
# reaches ~12 kB, past gunicorn's largest finite request line (8,190 bytes), which answered 414
# to a valid request. 0 lifts gunicorn's bound; the shipped proxy (deploy/nginx.conf:
# large_client_header_buffers 4 16k, client_header_timeout 10s) is the bound in production.
limit_request_line = 0
