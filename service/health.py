"""``/livez``, ``/readyz`` and Prometheus ``/metrics``.

Liveness says the process answers; readiness says a bundle *and* the KB index
are loaded, so a load balancer sends no classify call to a worker still loading.

Metrics under gunicorn: each worker is a process with its own counters, so a
scrape would see whichever worker answered. When ``PROMETHEUS_MULTIPROC_DIR`` is
set (``service/gunicorn_conf.py`` sets it in the master before any worker
starts), prometheus_client writes values to per-process files there and
``/metrics`` aggregates all live workers. Without it (Flask dev server, tests)
the metrics are those of this one process.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

bp = Blueprint("health", __name__)

# Buckets around the 30 ms / 60 ms targets: the tail matters more than the mean.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.045, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The service's metrics, registered on a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "triage_http_request_duration_seconds",
            "End-to-end request latency inside the worker, per endpoint",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "triage_http_requests_total",
            "Requests answered, by status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.predictions = Counter(
            "triage_predictions_total",
            "Predicted fields, by head and decision (apply/suggest/abstain)",
            ["head", "decision"],
            registry=self.registry,
        )
        self.kb_suggestions = Counter(
            "triage_kb_suggestions_total",
            "KB searches, by whether any article passed the threshold",
            ["source", "answered"],
            registry=self.registry,
        )
        self.bundle = Gauge(
            "triage_bundle_info",
            "Bundle served (1) by bundle id",
            ["bundle_id"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )

        # label values → child, for the metrics every request touches: prometheus_client's
        # labels() validates and locks on each call (~5 µs); a request bumped 8 of them
        self._children: dict[tuple, Any] = {}

    def child(self, metric, *values: str):
        """``metric.labels(*values)``, looked up once per label tuple (the same child object)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children.setdefault(key, metric.labels(*values))
        return found

    def on_swap(self, old, new) -> None:
        if old is not None and old.bundle_id != new.bundle_id:
            self.bundle.labels(bundle_id=old.bundle_id).set(0)
        self.bundle.labels(bundle_id=new.bundle_id).set(1)

    def count_predictions(self, results: list[dict]) -> None:
        for result in results:
            for head, field in result.get("fields", {}).items():
                self.child(self.predictions, head, field.get("decision", "?")).inc()

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def init_app(app: Flask) -> Metrics:
    """Time every request; label by URL rule (not raw path) to keep cardinality bounded."""
    metrics = Metrics()
    app.extensions["triage.metrics"] = metrics
    app.extensions["triage.state"].on_swap.append(metrics.on_swap)

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.get("started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule else "unmatched"
            elapsed = time.perf_counter() - started
            metrics.child(metrics.latency, rule, request.method).observe(elapsed)
            metrics.child(metrics.requests, rule, request.method, str(response.status_code)).inc()
        return response

    return metrics


@bp.get("/livez")
def livez():
    return jsonify(ok=True, status="alive")


@bp.get("/readyz")
def readyz():
    state = current_app.extensions["triage.state"]
    current = state.current
    ready = current is not None and current.kb is not None
    body = {
        "ok": ready,
        "ready": ready,
        "loading": state.loading,
        "bundle_id": current.bundle_id if current else None,
        "kb_articles": len(current.kb.articles) if ready else 0,
        "error": state.last_error,
    }
    if not ready:  # still the one error shape, plus the status fields above
        body.update(
            error=f"not ready: {state.last_error or 'bundle or KB index still loading'}",
            errors=[],
            status=503,
        )
    return jsonify(body), (200 if ready else 503)


@bp.get("/metrics")
def metrics():
    return Response(current_app.extensions["triage.metrics"].exposition(), content_type=CONTENT_TYPE_LATEST)
