"""MLflow: log every training run, register its bundle, and gate the ``champion`` alias.

MLflow lives here and nowhere else (the service never imports it: the fluent API is not
thread-safe, and serving must not depend on a tracking store). Only :class:`MlflowClient`
is used, with explicit run ids, so nothing relies on MLflow's global "active run".

Where things go
    Tracking store: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<project>/mlflow.db``
    (the old file store errors on this MLflow). Artifacts: an explicit location next to the
    SQLite file (``<project>/mlruns``), or MLflow's choice for a remote server, so they never
    land in whatever the working directory happens to be.

What a run holds
    params (config, data sha256/rows, chosen candidate per head), metrics flattened per head
    (``team.macro_f1``, ``team.applied.precision``, ``team.class.<label>.f1``, ...), the report
    (JSON, HTML, plots) under ``report/`` and the whole bundle folder under ``bundle/``.
    The registered model version's source is that ``bundle/`` artifact folder:
    ``registered_bundle()`` (the champion by default) gives a folder that
    ``Triager.from_bundle`` loads. (Registering the folder, not a pyfunc wrapper, keeps one copy
    of the bundle and works with ``mlflow-skinny`` offline.) Version tags carry ``bundle_id``,
    ``bundle_path``, ``holdout_key`` and ``holdout.<head>.macro_f1`` for the promotion gate.

The champion pointer ``<models dir>/CHAMPION`` (models dir: ``TRIAGE_MODELS_DIR`` or
``<project>/models``) lets the service find its bundle without MLflow. JSON, replaced atomically::

    {"bundle_id": "...", "path": "<bundle id, relative to the models dir, or an absolute path>",
     "mlflow": {"model": "triage", "version": "3", "run_id": "...", "tracking_uri": "..."},
     "promoted_at": "2026-...Z", "promoted_by": "user", "forced": false, "reason": null,
     "previous": {"bundle_id", "path", "version"} | null}

Gate: a challenger is refused when, on any head the champion has, its holdout macro-F1 is
below the champion's minus ``margin``. The comparison is only made on the same holdout
(``holdout_key``: a hash of the holdout tickets); for different holdouts the caller passes
``evaluate`` (scores both bundles on tickets neither has seen, :mod:`training.holdout`) or
the promotion is refused. ``force=True``
overrides and is recorded (who, when, why) on the version and in ``CHAMPION``.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from triage.champion import POINTER_NAME, read_pointer, write_pointer
from triage.errors import NotFound, TriageError

from .gate import GateConfig, GateDecision, decide
from .tracking_fields import flat_metrics, flat_params, holdout_key, holdout_scores

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "triage"
DEFAULT_EXPERIMENT = "triage"
CHAMPION_ALIAS = "champion"

# (challenger bundle folder, champion bundle folder) -> ({head: macro-F1}, {head: macro-F1})
Evaluator = Callable[[str, str], tuple[Mapping[str, float], Mapping[str, float]]]


class PromotionRefused(TriageError):
    """The challenger is worse than the champion on the same holdout (and not forced)."""

    status = 409

    def __init__(self, message: str, result: "PromotionResult") -> None:
        super().__init__(message)
        self.result = result


@dataclass
class PromotionResult:
    promoted: bool
    version: str
    bundle_id: str | None
    previous: str | None = None
    forced: bool = False
    comparison: dict[str, dict[str, float | None]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    champion_file: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# ---- store location ---------------------------------------------------------------------------


def default_tracking_uri(home: str | Path | None = None) -> str:
    """``sqlite:///<home>/mlflow.db`` (home: the working directory). The ``triage`` command
    passes ``MLFLOW_TRACKING_URI`` or ``TRIAGE_HOME`` from the settings; nothing here reads
    the environment."""
    return f"sqlite:///{Path(home) if home else Path.cwd()}/mlflow.db"


def artifact_location_for(tracking_uri: str) -> str | None:
    """``mlruns`` beside a SQLite store; ``None`` (the server decides) for anything else."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :])
        return (db.resolve().parent / "mlruns").as_uri()
    return None


def client(tracking_uri: str | None = None):
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def _experiment_id(mc, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    exp = mc.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mc.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # another training run created it in between
        exp = mc.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# ---- logging a training run -------------------------------------------------------------------


def _unpack(result_or_report, bundle_path, config, report_dir):
    """Accept a TrainResult-like object (``.report``, ``.bundle_path``, ...) or a report dict."""
    obj = result_or_report
    report = obj if isinstance(obj, Mapping) else obj.report
    bundle = bundle_path or getattr(obj, "bundle_path", None) or getattr(obj, "bundle_dir", None)
    if bundle is None:
        raise TriageError("log_training_run needs the bundle folder (bundle_path=...)")
    config = config if config is not None else getattr(obj, "config", None)
    if config is None and isinstance(report.get("config"), Mapping):
        config = report["config"]  # report.json of a pipeline run carries its config
    if config is not None and not isinstance(config, Mapping):
        config = asdict(config) if hasattr(config, "__dataclass_fields__") else vars(config)
    report_dir = report_dir or getattr(obj, "report_dir", None)
    return dict(report), Path(bundle), dict(config or {}), report_dir


def _log_report(mc, run_id: str, report: Mapping, report_dir) -> None:
    if report_dir and Path(report_dir).is_dir():
        mc.log_artifacts(run_id, str(report_dir), "report")
        return
    from .evaluation import write_report

    with tempfile.TemporaryDirectory(prefix="triage-report-") as tmp:
        write_report(report, tmp)
        mc.log_artifacts(run_id, tmp, "report")


def _log_batched(mc, run_id: str, metrics: dict[str, float], params: dict[str, str]) -> None:
    """MLflow caps a batch at 1000 metrics / 100 params."""
    import time
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    ms = [Metric(k, v, now, 0) for k, v in metrics.items()]
    ps = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(ms), 1000):
        mc.log_batch(run_id, metrics=ms[i : i + 1000])
    for i in range(0, len(ps), 100):
        mc.log_batch(run_id, params=ps[i : i + 100])


def log_training_run(
    result_or_report,
    bundle_path=None,
    *,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    experiment: str = DEFAULT_EXPERIMENT,
    config: Mapping | None = None,
    report_dir=None,
    register: bool = True,
) -> str:
    """Log one training run (params, metrics, report, bundle) and register it; returns the run id."""
    report, bundle, config, report_dir = _unpack(result_or_report, bundle_path, config, report_dir)
    if not (bundle / "manifest.json").exists():
        raise TriageError(f"{bundle}: expected a bundle folder with manifest.json")
    mc, uri = client(tracking_uri)
    exp_id = _experiment_id(mc, experiment, artifact_location_for(uri))
    bundle_id = str(report.get("bundle_id") or bundle.name)
    tags = {"mlflow.runName": bundle_id, "bundle_id": bundle_id, "holdout_key": holdout_key(report)}
    commit = (report.get("git") or {}).get("sha") if isinstance(report.get("git"), Mapping) else None
    if commit or report.get("git_sha"):
        tags["mlflow.source.git.commit"] = str(commit or report.get("git_sha"))
    run = mc.create_run(exp_id, tags=tags)
    run_id = run.info.run_id
    try:
        _log_batched(mc, run_id, flat_metrics(report), flat_params(config, report))
        mc.log_dict(run_id, config, "config.json")
        _log_report(mc, run_id, report, report_dir)
        mc.log_artifacts(run_id, str(bundle), "bundle")
        if register:
            _register(mc, model_name, run, bundle, bundle_id, report)
    except Exception:
        mc.set_terminated(run_id, status="FAILED")
        raise
    mc.set_terminated(run_id)
    log.info("logged run %s for bundle %s to %s", run_id, bundle_id, uri)
    return run_id


def _register(mc, model_name: str, run, bundle: Path, bundle_id: str, report: Mapping):
    from mlflow.exceptions import MlflowException

    try:
        mc.create_registered_model(
            model_name,
            description="Help-desk triage bundles (type, priority, team heads). Source = bundle folder.",
        )
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    tags = {"bundle_id": bundle_id, "bundle_path": str(bundle.resolve()), "holdout_key": holdout_key(report)}
    tags.update({f"holdout.{h}.macro_f1": repr(v) for h, v in holdout_scores(report).items()})
    return mc.create_model_version(
        model_name, source=f"{run.info.artifact_uri}/bundle", run_id=run.info.run_id, tags=tags
    )


# ---- champion alias ---------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _user(user: str | None) -> str:
    if user:
        return user
    try:
        return getpass.getuser()  # the command passes TRIAGE_USER as ``user``
    except Exception:  # no passwd entry in some containers
        return "unknown"


def find_version(mc, model_name: str, version_or_bundle) -> Any:
    """A version number, ``models:/name/3``, ``models:/name@alias``, a bundle id or bundle path."""
    from mlflow.exceptions import MlflowException

    ref = str(version_or_bundle).rstrip("/")
    m = re.fullmatch(r"(?:models:/[^/@]+[/@])?(\w[\w.-]*)", ref)
    try:
        if m and m.group(1).isdigit():
            return mc.get_model_version(model_name, m.group(1))
        if ref.startswith("models:/") and "@" in ref:
            return mc.get_model_version_by_alias(model_name, ref.rsplit("@", 1)[1])
    except MlflowException as exc:
        raise NotFound(f"model {model_name!r} has no version {ref!r}: {exc.message}") from None
    bundle_id = Path(ref).name
    for mv in mc.search_model_versions(f"name='{model_name}'"):
        if mv.tags.get("bundle_id") == bundle_id:
            return mv
    raise NotFound(
        f"no version of model {model_name!r} for {ref!r}: expected a version "
        "number or the id/path of a bundle logged with 'triage train'"
    )


def current_champion(mc, model_name: str = DEFAULT_MODEL_NAME):
    from mlflow.exceptions import MlflowException

    try:
        return mc.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def _scores(mv) -> dict[str, float]:
    return {
        k.split(".", 1)[1].rsplit(".", 1)[0]: float(v)
        for k, v in mv.tags.items()
        if k.startswith("holdout.") and k.endswith(".macro_f1")
    }


def bundle_local_path(mv) -> str:
    """The registered bundle as a local folder (the original if it still exists)."""
    original = mv.tags.get("bundle_path")
    if original and Path(original).is_dir():
        return original
    src = mv.source
    return src[len("file://") :] if src.startswith("file://") else src


def compare(challenger, champion, *, margin: float = 0.0, evaluate: Evaluator | None = None):
    """Per-head macro-F1 of both on a common holdout, judged by :func:`training.gate.decide`;
    returns (comparison, reasons).

    Same holdout key: the stored scores are comparable as they are. Otherwise ``evaluate``
    (challenger folder, champion folder → their {head: macro-F1} on tickets neither has
    seen) scores both; without it nothing fair can be said, so the promotion is refused.
    This function only gathers the numbers: the rule is the gate's.
    """
    if challenger.tags.get("holdout_key") == champion.tags.get("holdout_key"):
        mine, theirs = _scores(challenger), _scores(champion)
    elif evaluate is not None:
        mine, theirs = (dict(x) for x in evaluate(bundle_local_path(challenger), bundle_local_path(champion)))
        if not theirs:
            return {}, [
                "too few tickets are in both bundles' holdouts to compare them: "
                "pass an export with more unseen tickets, or force"
            ]
    else:
        return {}, [
            "the champion was evaluated on another holdout: pass an export to score "
            "both on tickets neither has seen, or force"
        ]
    table = {
        head: {
            "champion": {"macro_f1": champ_f1},
            "challenger": None if mine.get(head) is None else {"macro_f1": mine[head]},
        }
        for head, champ_f1 in theirs.items()
    }
    decision = decide(table, GateConfig(margin=margin))
    comparison = {
        head: {
            "challenger": mine.get(head),
            "champion": champ_f1,
            "delta": None if mine.get(head) is None else mine[head] - champ_f1,
        }
        for head, champ_f1 in theirs.items()
    }
    return comparison, decision.reasons


def promote(
    version_or_bundle,
    *,
    force: bool = False,
    margin: float = 0.0,
    reason: str | None = None,
    user: str | None = None,
    evaluate: Evaluator | None = None,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    champion_file: Path | None = None,
    decision: GateDecision | None = None,
    fleet_database: str | None = None,
) -> PromotionResult:
    """Move the ``champion`` alias to a version unless the gate refuses; raises PromotionRefused.

    The gate is :mod:`training.gate`: a caller that already judged the challenger there (a
    retrain, on the frozen holdout) passes its ``decision``; otherwise the stored (or
    ``evaluate``d) macro-F1 of both versions go through :func:`training.gate.decide`.
    """
    mc, uri = client(tracking_uri)
    mv = find_version(mc, model_name, version_or_bundle)
    old = current_champion(mc, model_name)
    result = PromotionResult(
        False,
        str(mv.version),
        mv.tags.get("bundle_id"),
        previous=None if old is None else str(old.version),
        forced=force,
    )
    if old is not None and str(old.version) == str(mv.version):
        result.promoted, result.previous = True, old.tags.get("previous_champion")
        result.reasons.append("already the champion")
        return result
    if old is not None and decision is not None:
        result.reasons = list(decision.reasons)
    elif old is not None:
        result.comparison, result.reasons = compare(mv, old, margin=margin, evaluate=evaluate)
    if old is not None:
        if result.reasons and not force:
            raise PromotionRefused(f"version {mv.version} not promoted: " + "; ".join(result.reasons), result)
    who, when = _user(user), _now()
    mc.set_registered_model_alias(model_name, CHAMPION_ALIAS, mv.version)
    record = {
        "promoted_at": when,
        "promoted_by": who,
        "forced": str(bool(force)).lower(),
        "previous_champion": result.previous or "",
    }
    if force:
        record.update(
            {
                "forced_by": who,
                "forced_at": when,
                "forced_reason": reason or "",
                "forced_over": json.dumps(result.reasons),
            }
        )
    for key, value in record.items():
        mc.set_model_version_tag(model_name, mv.version, key, value)
    result.promoted = True
    result.champion_file = str(
        _write_pointer(
            mc,
            uri,
            model_name,
            mv,
            old,
            when,
            who,
            force,
            reason,
            champion_file,
            fleet_database=fleet_database,
        )
    )
    return result


def rollback(
    *,
    reason: str | None = None,
    user: str | None = None,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    champion_file: Path | None = None,
    fleet_database: str | None = None,
) -> PromotionResult:
    """Give the ``champion`` alias back to the version it replaced (repeatable down the chain)."""
    mc, uri = client(tracking_uri)
    cur = current_champion(mc, model_name)
    prev_version = cur.tags.get("previous_champion") if cur is not None else None
    if not prev_version:
        raise TriageError(f"model {model_name!r} has no previous champion to roll back to")
    prev = mc.get_model_version(model_name, prev_version)
    who, when = _user(user), _now()
    mc.set_registered_model_alias(model_name, CHAMPION_ALIAS, prev.version)
    for key, value in {
        "rolled_back_at": when,
        "rolled_back_by": who,
        "rolled_back_reason": reason or "",
    }.items():
        mc.set_model_version_tag(model_name, cur.version, key, value)
    before = prev.tags.get("previous_champion")
    older = mc.get_model_version(model_name, before) if before else None
    path = _write_pointer(
        mc,
        uri,
        model_name,
        prev,
        older,
        when,
        who,
        False,
        reason or f"rollback from version {cur.version}",
        champion_file,
        action="rollback",
        fleet_database=fleet_database,
    )
    return PromotionResult(
        True,
        str(prev.version),
        prev.tags.get("bundle_id"),
        previous=before or None,
        reasons=[f"rolled back from {cur.version}"],
        champion_file=str(path),
    )


def registered_bundle(
    version_or_bundle=None,
    *,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    dst: str | None = None,
) -> Path:
    """The registered bundle folder of a version (default: the champion), downloaded if remote.

    Uses the client's registry explicitly, not MLflow's global registry URI, so it is safe to
    call with any store (``mlflow.artifacts.download_artifacts("models:/...")`` is not).
    """
    mc, _ = client(tracking_uri)
    mv = (
        current_champion(mc, model_name)
        if version_or_bundle is None
        else find_version(mc, model_name, version_or_bundle)
    )
    if mv is None:
        raise NotFound(f"model {model_name!r} has no champion yet: run 'triage promote'")
    if mv.source.startswith("file://") and Path(mv.source[len("file://") :]).is_dir():
        return Path(mv.source[len("file://") :])
    from mlflow.artifacts import download_artifacts

    return Path(
        download_artifacts(
            artifact_uri=mv.source, dst_path=dst, tracking_uri=tracking_uri or default_tracking_uri()
        )
    )


def _models_dir_of(mv) -> Path:
    """The folder holding the registered bundle (where its pointer belongs), else ``models``."""
    local = Path(bundle_local_path(mv))
    return local.parent if local.is_dir() else Path("models")


def _write_pointer(
    mc,
    uri,
    model_name,
    mv,
    old,
    when,
    who,
    forced,
    reason,
    champion_file,
    action: str = "promote",
    fleet_database: str | None = None,
) -> Path:
    target = Path(champion_file) if champion_file else _models_dir_of(mv) / POINTER_NAME
    info = {
        "bundle_id": mv.tags.get("bundle_id"),
        "path": bundle_local_path(mv),
        "mlflow": {
            "model": model_name,
            "version": str(mv.version),
            "run_id": mv.run_id,
            "tracking_uri": uri if "@" not in uri else None,
        },
        "promoted_at": when,
        "promoted_by": who,
        "forced": bool(forced),
        "reason": reason,
        "previous": None
        if old is None
        else {
            "bundle_id": old.tags.get("bundle_id"),
            "path": bundle_local_path(old),
            "version": str(old.version),
        },
    }
    written = write_pointer(info, target)
    publish_to_fleet(info, fleet_database, action=action)
    return written


def publish_to_fleet(info: dict, url: str | None, action: str = "promote") -> bool:
    """Publish the new champion in the fleet's database (``triage.store.fleet``), when one is set.

    ``url`` is the database every server of the desk uses (``TRIAGE_DATABASE_URL``, passed in
    by the command); servers with ``TRIAGE_FOLLOW_CHAMPION`` set swap to the bundle within
    their poll interval. Without it (one machine, local files) nothing is published.
    """
    if not url:
        return False
    from triage.store import Store
    from triage.store.fleet import publish

    store = Store(url)
    try:
        store.upgrade()
        with store.session() as session:
            publish(
                session,
                info["path"],
                action=action,
                by=info.get("promoted_by"),
                reason=info.get("reason"),
                bundle_id=info.get("bundle_id"),
            )
    finally:
        store.dispose()
    return True


__all__ = [
    "log_training_run",
    "promote",
    "rollback",
    "PromotionResult",
    "PromotionRefused",
    "default_tracking_uri",
    "current_champion",
    "registered_bundle",
    "find_version",
    "read_pointer",
    "DEFAULT_MODEL_NAME",
    "CHAMPION_ALIAS",
]
