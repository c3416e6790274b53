"""Monitor: judge a window of scored rows against the champion's training reference.

    python -m pipelines.monitor [--scored FILE|DIR] [--labels FILE] [--model-version N]
                                [--fail-on-decision]

Reads the rows ``pipelines.score`` wrote (raw features plus ``probability`` and ``label``;
a folder: every Parquet file under it), the reference logged with the model version at
registration (``pipelines.champion_reference``) and, when given, a labels file (the id
column and the target, CSV or Parquet) joined on the id column, since labels arrive later.
Without a labels file, a target column in the scored rows is used where filled in.

It writes ``data/monitor/report.json`` (every check), ``data/monitor/metrics.json`` (the
headline: decision, max PSI, prediction PSI, realised PR-AUC and recall) and
``data/monitor/report.png``, and logs them as one MLflow run in the experiment
``<model_name>-monitoring``, tagged with the ``decision``. The decision is data, not a
failure: the exit status is 0 whatever it is, unless ``--fail-on-decision`` is given (then 1
for anything but ``ok``). The decision rules are in ``pipelines.monitoring``.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipelines import champion_reference, monitor_plots, paths, tracking
from pipelines.champion_reference import Reference
from pipelines.config import MonitorParams, load_params
from pipelines.errors import PipelineError
from pipelines.lineage import flatten
from pipelines.mlflow_keys import mlflow_key
from pipelines.monitoring import SCORE_COLUMNS, assess, labels_from
from pipelines.reports import headline, write_results
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

REJECTS_SUFFIX = ".rejects.parquet"
HEADLINE = (
    "decision",
    "model_version",
    "rows",
    "max_psi",
    "prediction_psi",
    "realised_pr_auc",
    "realised_recall",
    "labelled_positives",
    "model_age_days",
)


def read_window(path: Path) -> pd.DataFrame:
    """The scored rows of a file, or of every Parquet file under a folder (none: empty)."""
    if not path.exists():
        raise PipelineError(f"{path}: no such file or folder of scored rows")
    files = [path] if path.is_file() else sorted(_parquet_files(path))
    frames = [pd.read_parquet(file) for file in files]
    if not frames:
        log.warning("%s holds no scored rows: the window is empty", path)
        return pd.DataFrame({"probability": pd.Series(dtype="float64"), "label": []})
    window = pd.concat(frames, ignore_index=True)
    for column in SCORE_COLUMNS:
        if column not in window:
            raise PipelineError(f"{path}: column {column!r} missing; score it with pipelines.score")
    return window


def read_labels(path: Path, reference: Reference) -> pd.DataFrame:
    """The labels file's id and target columns, one row per id (the last one wins)."""
    if not path.exists():
        raise PipelineError(f"{path}: labels file not found")
    labels = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    if reference.id_column is None:
        raise PipelineError(
            f"{path}: labels are joined on the id column, and {reference.model_name}'s schema "
            "has none (give the scored rows a target column instead)"
        )
    for column in (reference.id_column, reference.target):
        if column not in labels:
            raise PipelineError(f"{path}: column {column!r} missing")
    return labels[[reference.id_column, reference.target]].drop_duplicates(
        reference.id_column, keep="last"
    )


def window_labels(
    window: pd.DataFrame, labels: pd.DataFrame | None, reference: Reference, source: str
) -> pd.Series | None:
    """0/1 labels aligned with the window (NaN: not known yet), or None when there are none."""
    if labels is not None:
        if reference.id_column not in window:
            raise PipelineError(f"{source}: column {reference.id_column!r} missing; cannot join")
        # As text on both sides: a CSV of labels reads numeric-looking ids as numbers.
        ids = window[reference.id_column].astype(str).rename("id")
        known = labels.assign(id=labels[reference.id_column].astype(str)).set_index("id")
        target = ids.map(known[reference.target])
    elif reference.target in window:
        target = window[reference.target]
    else:
        return None
    try:
        return labels_from(target, reference)
    except ValueError as exc:
        raise PipelineError(f"{source}: column {reference.target!r}: {exc}") from None


def monitor(
    window: pd.DataFrame,
    labels: pd.Series | None,
    reference: Reference,
    cfg: MonitorParams,
    now: datetime,
) -> dict:
    """The full report of one window: the decision, its reason, every check and number."""
    stray = sorted(set(window.get("model_version", pd.Series(dtype=str)).astype(str)))
    if stray and stray != [reference.version]:
        log.warning(
            "the window was scored by version(s) %s; judged against v%s", stray, reference.version
        )
    report = assess(window, labels, reference, cfg, now).report()
    return report | {
        "model_name": reference.model_name,
        "scored_by_versions": stray,
        "registered_at": reference.registered_at.isoformat(),
        "judged_at": now.isoformat(),
        "limits": cfg.model_dump(),
    }


def log_run(report: dict, reference: Reference) -> str:
    """One MLflow run in ``<model_name>-monitoring``: the numbers, the files, the decision."""
    from mlflow.exceptions import MlflowException

    import mlflow

    client = tracking.client()
    experiment = tracking.experiment_id(client, f"{reference.model_name}-monitoring")
    numbers = {
        mlflow_key(key): float(value)
        for key, value in flatten(report).items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and not key.startswith(("checks.", "limits."))
    }
    tags = {
        "decision": report["decision"],
        "reason": report["reason"][:4000],
        "model_name": reference.model_name,
        "model_version": reference.version,
        "mlflow.note.content": f"{report['decision']}: {report['reason'][:3000]}",
    }
    if tracking.lineage_id():  # the Airflow run that monitored, as on the retraining runs
        tags[tracking.LINEAGE_TAG] = tracking.lineage_id()
    try:
        with mlflow.start_run(
            experiment_id=experiment, run_name=f"monitor-v{reference.version}"
        ) as run:
            mlflow.set_tags(tags)
            mlflow.log_params(flatten(report["limits"], "monitor."))
            mlflow.log_metrics(numbers)
            for path in (paths.MONITOR_REPORT, paths.MONITOR_METRICS, paths.MONITOR_PLOT):
                mlflow.log_artifact(str(path), "monitoring")
            return run.info.run_id
    except MlflowException as exc:
        raise tracking.mlflow_error(exc, "logging the monitoring run") from exc


def _parquet_files(folder: Path):
    """Scored files under ``folder``: not hidden (a write in progress) and not the rows the
    scorer rejected, which it writes beside them as ``<name>.rejects.parquet``."""
    for file in folder.rglob("*.parquet"):
        hidden = any(part.startswith((".", "_")) for part in file.relative_to(folder).parts)
        if not hidden and not file.name.endswith(REJECTS_SUFFIX):
            yield file


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scored", type=Path, default=paths.SCORED, help="file or folder")
    parser.add_argument("--labels", type=Path, default=None, help="id column + target")
    parser.add_argument("--model-version", default=None, help="default: the @champion")
    parser.add_argument(
        "--fail-on-decision", action="store_true", help="exit 1 unless the decision is ok"
    )
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    params = load_params()
    window = read_window(args.scored)
    client = tracking.client()
    name = params.register_.model_name
    version = champion_reference.champion_version(client, name, args.model_version)
    reference = champion_reference.load(client, name, version)
    labels = read_labels(args.labels, reference) if args.labels else None
    truth = window_labels(window, labels, reference, str(args.labels or args.scored))
    report = monitor(window, truth, reference, params.monitor, datetime.now(UTC))
    write_results(report, paths.MONITOR_REPORT, headline(report, *HEADLINE), paths.MONITOR_METRICS)
    monitor_plots.render(report, reference.scores, window, paths.MONITOR_PLOT)
    run_id = log_run(report, reference)
    log.info("%s v%s: %s (MLflow run %s)", name, version, report["reason"], run_id)
    log.info("decision: %s", report["decision"])
    if args.fail_on_decision and report["decision"] != "ok":
        raise PipelineError(f"decision {report['decision']}: {report['reason']}")


if __name__ == "__main__":
    run_stage("monitor", main, record_failure=False)
