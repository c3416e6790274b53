"""Lineage: what ties a model version to the code, params, data and results that made it.

The git commit, content hashes of the data files and DVC's output hashes (``dvc.lock``), the
model's fingerprint, the Airflow run that scheduled it, and the execution's MLflow run
contents (params, every stage's reports and metrics, plots). Register stamps these on the
run and the model version; the registry's command line stamps the commit on a rollback.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from pipelines import paths
from pipelines.config import Params
from pipelines.io import file_md5, read_csv, read_json, read_yaml
from pipelines.mlflow_keys import mlflow_key

HASHED_DATA = {
    "raw": paths.RAW_SNAPSHOT,
    "clean": paths.CLEAN,
    "train": paths.SPLIT_TRAIN,
    "val": paths.SPLIT_VAL,
    "test": paths.SPLIT_TEST,
}
DVC_LOCK = paths.DVC_LOCK
# Each stage's (report, headline metrics file). The run's metrics are every number of the
# reports, so the MLflow compare view has the detail that `dvc metrics show` leaves out.
STAGE_RESULTS = {
    "ingest": (paths.INGEST_REPORT, paths.INGEST_METRICS),
    "validate": (paths.VALIDATE_REPORT, paths.VALIDATE_METRICS),
    "split": (paths.SPLIT_REPORT, paths.SPLIT_METRICS),
    "tune": (paths.TUNE_REPORT, paths.TUNE_METRICS),
    "rebalance": (paths.REBALANCE_REPORT, paths.REBALANCE_METRICS),
    "augment": (paths.AUGMENT_REPORT, paths.AUGMENT_METRICS),
    "train": (paths.TRAIN_REPORT, paths.TRAIN_METRICS),
    "evaluate": (paths.EVALUATE_REPORT, paths.EVALUATE_METRICS),
    "quantize": (paths.QUANTIZE_REPORT, paths.QUANTIZE_METRICS),
}


def git_commit() -> str:
    """The checkout's commit; in an image without a git checkout, the commit it was built
    from (``PIPELINE_GIT_COMMIT``, set by docker/pipeline.Dockerfile's ``GIT_COMMIT``)."""
    return _git("rev-parse", "HEAD") or os.environ.get("PIPELINE_GIT_COMMIT") or "unknown"


def model_fingerprint(threshold: float) -> str:
    """Identifies the served model: Keras weights, feature transform and threshold."""
    digest = hashlib.sha256()
    for path in (paths.KERAS_MODEL, paths.FEATURE_TRANSFORM):
        digest.update(file_md5(path).encode())
    digest.update(repr(threshold).encode())
    return digest.hexdigest()[:32]


def dvc_output_hashes(lock: Path = DVC_LOCK) -> dict[str, str]:
    """DVC's hash of every stage output, as ``dvc.<stage>.<path>`` tags; none before a repro."""
    hashes = {}
    for stage, entry in (read_yaml(lock) or {}).get("stages", {}).items():
        for out in entry.get("outs", []):
            if "md5" in out:
                hashes[f"dvc.{stage}.{out['path']}"] = out["md5"]
    return hashes


def execution_lineage(params: Params) -> dict[str, str]:
    """What makes two attempts one execution: the code commit, the params' hash and the data
    files' MD5s. A retry continues a run only when these are unchanged (pipelines.tracking)."""
    params_json = json.dumps(params.model_dump(mode="json", by_alias=True), sort_keys=True)
    tags = {
        "git_commit": git_commit(),
        "params_sha256": hashlib.sha256(params_json.encode()).hexdigest(),
    }
    for name, path in HASHED_DATA.items():
        if path.exists():
            tags[f"data.{name}.md5"] = file_md5(path)
    return tags


def lineage_tags(params: Params) -> dict[str, str]:
    """The run's lineage: commit and dirty flag, params hash, data MD5s, DVC hashes, Airflow."""
    tags = execution_lineage(params)
    tags["git_dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower()
    tags |= dvc_output_hashes()
    for key in ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID"):
        if os.environ.get(key):
            tags[key.removeprefix("AIRFLOW_CTX_").lower()] = os.environ[key]
    # Why this retrain ran, when monitoring triggered it (pipelines.monitor_loop).
    for key in ("PIPELINE_RETRAIN_REASON", "PIPELINE_RETRAIN_DECISION"):
        if os.environ.get(key):
            tags[f"retrain.{key.rsplit('_', 1)[1].lower()}"] = os.environ[key]
    return tags


def lineage_key(params: Params, fingerprint: str) -> str:
    """What makes a model version the same one: the commit (and the uncommitted diff, if
    any), the params, the data's content hashes and DVC's output hashes (which cover every
    stage's code deps) and the model's fingerprint. Not who scheduled it, and not register's
    own outputs, which differ on every run, nor the registry lock's timings."""
    tags = lineage_tags(params)
    identity = {
        key: value
        for key, value in tags.items()
        if key not in ("dag_id", "dag_run_id") and not key.startswith("dvc.register.")
    }
    values = params.model_dump(mode="json", by_alias=True)
    for knob in ("lock_wait_s", "lock_stale_s"):
        values["register"].pop(knob, None)
    identity["params_sha256"] = hashlib.sha256(
        json.dumps(values, sort_keys=True).encode()
    ).hexdigest()
    identity["model_fingerprint"] = fingerprint
    if tags["git_dirty"] == "true":
        identity["git_diff"] = hashlib.sha256(_git("diff", "HEAD").encode()).hexdigest()
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def log_run_contents(params: Params) -> None:
    """Log into the active MLflow run every stage's reports, metrics files and plots, the params
    and the lineage tags; evaluate's top-level test numbers (and intervals) are also logged as
    ``test_*`` (``test_pr_auc_ci_low``, ...)."""
    import mlflow

    mlflow.set_tags(lineage_tags(params))
    mlflow.log_params(flatten(params.model_dump(mode="json", by_alias=True)))
    counts = read_json(paths.REBALANCE_REPORT)
    mlflow.log_params(
        flatten({"before": counts["before"], "after": counts["after"]}, "rebalance_counts.")
    )
    evaluation = metric_values(read_json(paths.EVALUATE_REPORT), flat=False)
    metrics = {f"test_{k}": v for k, v in evaluation.items()}
    for stage, (report, headline) in STAGE_RESULTS.items():
        if report.exists():
            metrics |= {f"{stage}.{k}": v for k, v in metric_values(read_json(report)).items()}
            mlflow.log_artifact(str(report), "reports")
            mlflow.log_artifact(str(headline), "metrics")
            mlflow.set_tag(f"stage.{stage}", "done")
    mlflow.log_metrics(metrics)
    history = read_csv(paths.TRAINING_HISTORY)
    for _, row in history.iterrows():
        mlflow.log_metrics(
            {f"epoch.{k}": float(v) for k, v in row.items() if k != "epoch"}, step=int(row["epoch"])
        )
    mlflow.log_artifact(str(paths.TRAINING_HISTORY), "plots")
    mlflow.log_artifacts(str(paths.PLOT_IMAGES), "plots")
    mlflow.log_artifacts(str(paths.DATA_DOCS), "data_docs")
    mlflow.log_artifact(str(paths.ENFORCED_SCHEMA), "schema")
    # The data version of this run: `python -m pipelines.registry checkout` restores it.
    for anchor in (DVC_LOCK, paths.PARAMS):
        if anchor.exists():
            mlflow.log_artifact(str(anchor), "lineage")
    mlflow.log_artifact(str(paths.TFLITE_MODEL), "tflite")
    mlflow.log_artifact(str(paths.QUANTIZE_TABLE), "tflite")
    mlflow.log_artifact(str(paths.KERAS_MODEL), "float_model")
    mlflow.log_artifact(str(paths.FEATURE_TRANSFORM), "float_model")


def metric_values(report: dict, flat: bool = True) -> dict[str, float]:
    """The numbers of a report, as MLflow metrics: nested keys dotted (or, with ``flat=False``,
    the top level only), each interval ``<metric>_ci: [low, high]`` as ``<metric>_ci_low`` and
    ``<metric>_ci_high``, and every name one MLflow accepts (``mlflow_key``)."""
    values: dict[str, float] = {}
    for key, value in (flatten(report) if flat else report).items():
        if key.endswith("_ci") and isinstance(value, list) and len(value) == 2:
            values |= {f"{key}_low": value[0], f"{key}_high": value[1]}
        elif _is_number(value):
            values[key] = value
    return {mlflow_key(key): value for key, value in values.items()}


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
