"""Register: log the run to MLflow, register a model version, and gate the champion alias.

The challenger (this run's model, loaded back from the registry) and the current
``@champion`` are both scored on the current test split in this process. The alias
``champion`` moves only if the challenger's test PR-AUC beats the champion's by at least
``register.min_delta`` (or, for the very first model, clears ``register.min_pr_auc``).
Otherwise the new version gets the alias ``challenger`` and a tag with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import yaml
from sklearn.metrics import average_precision_score

from pipelines import paths
from pipelines.config import Params, RegisterParams, load_params
from pipelines.errors import PipelineError
from pipelines.io import read_json, read_parquet, write_json_atomic
from pipelines.schema import Schema, load_schema, schema_path
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
STAGE_METRICS = {
    "ingest": paths.INGEST_METRICS,
    "validate": paths.VALIDATE_METRICS,
    "split": paths.SPLIT_METRICS,
    "rebalance": paths.REBALANCE_METRICS,
    "augment": paths.AUGMENT_METRICS,
    "train": paths.TRAIN_METRICS,
    "quantize": paths.QUANTIZE_METRICS,
}


def gate_decision(
    challenger: float, champion: float | None, cfg: RegisterParams
) -> tuple[bool, str]:
    """Whether the challenger replaces the champion, and why, from test PR-AUC alone."""
    if champion is None:
        if challenger >= cfg.min_pr_auc:
            return True, f"first model: PR-AUC {challenger:.4f} >= floor {cfg.min_pr_auc:.4f}"
        return False, f"first model: PR-AUC {challenger:.4f} < floor {cfg.min_pr_auc:.4f}"
    gain = challenger - champion
    if gain >= cfg.min_delta:
        return (
            True,
            f"PR-AUC {challenger:.4f} beats champion {champion:.4f} by {gain:+.4f} >= {cfg.min_delta}",
        )
    return (
        False,
        f"PR-AUC {challenger:.4f} vs champion {champion:.4f}: gain {gain:+.4f} < {cfg.min_delta}",
    )


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", paths.MLFLOW_DEFAULT_URI)


def lineage_tags(params: Params) -> dict[str, str]:
    params_json = json.dumps(params.model_dump(mode="json", by_alias=True), sort_keys=True)
    tags = {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower(),
        "params_sha256": hashlib.sha256(params_json.encode()).hexdigest(),
    }
    lock = Path("dvc.lock")
    if lock.exists():
        for stage, entry in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).items():
            for out in entry.get("outs", []):
                if "md5" in out:
                    tags[f"dvc.{stage}.{out['path']}"] = out["md5"]
    for key in ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID"):
        if os.environ.get(key):
            tags[key.removeprefix("AIRFLOW_CTX_").lower()] = os.environ[key]
    return tags


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def score(model_uri: str, test: pd.DataFrame, schema: Schema) -> float:
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    scores = model.predict(test[schema.feature_columns])["probability"].to_numpy()
    return float(average_precision_score(test[schema.target].to_numpy(), scores))


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri() == paths.MLFLOW_DEFAULT_URI:
        location = paths.MLFLOW_ARTIFACTS.resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def register(params: Params) -> dict:
    from mlflow.exceptions import MlflowException

    import mlflow
    from mlflow import MlflowClient

    cfg = params.register_
    schema = load_schema(schema_path(params.data))
    test = read_parquet(paths.SPLIT_TEST)
    evaluation = read_json(paths.EVALUATE_METRICS)
    if tracking_uri() == paths.MLFLOW_DEFAULT_URI:
        paths.MLFLOW_DIR.mkdir(exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    try:
        experiment_id = _experiment_id(client, cfg.experiment_name)
    except MlflowException as exc:
        raise PipelineError(f"MLflow at {tracking_uri()} is unreachable or failing: {exc}") from exc

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"retrain-{cfg.model_name}") as run:
        mlflow.set_tags(lineage_tags(params))
        mlflow.log_params(flatten(params.model_dump(mode="json", by_alias=True)))
        counts = read_json(paths.REBALANCE_METRICS)
        mlflow.log_params(
            flatten({"before": counts["before"], "after": counts["after"]}, "rebalance_counts.")
        )
        metrics = {f"test_{k}": v for k, v in evaluation.items() if isinstance(v, int | float)}
        for stage, path in STAGE_METRICS.items():
            if path.exists():
                metrics.update(
                    {
                        f"{stage}.{k}": v
                        for k, v in flatten(read_json(path)).items()
                        if isinstance(v, int | float) and not isinstance(v, bool)
                    }
                )
        mlflow.log_metrics(metrics)
        for path in STAGE_METRICS.values():
            if path.exists():
                mlflow.log_artifact(str(path), "metrics")
        mlflow.log_artifact(str(paths.EVALUATE_METRICS), "metrics")
        mlflow.log_artifacts(str(paths.PLOT_IMAGES), "plots")
        mlflow.log_artifacts(str(paths.DATA_DOCS), "data_docs")
        mlflow.log_artifact(str(schema_path(params.data)), "schema")
        mlflow.log_artifact(str(paths.TFLITE_MODEL), "tflite")
        mlflow.log_artifact(str(paths.QUANTIZE_TABLE), "tflite")

        example = raw_feature_example(test, schema)
        log.info("logging the pyfunc model")
        with tempfile.TemporaryDirectory() as scratch:
            serving_config = Path(scratch) / "serving_config.json"
            serving_config.write_text(json.dumps({"threshold": evaluation["threshold"]}))
            info = _log_pyfunc(serving_config, example, schema)
        quantization = read_json(paths.QUANTIZE_METRICS)
        version = mlflow.register_model(
            info.model_uri,
            cfg.model_name,
            tags={
                "run_id": run.info.run_id,
                "quantization": quantization["serving_artifact"],
                "tflite_file": quantization["tflite_file_variant"],
            },
        )
        challenger_pr_auc = score(f"models:/{cfg.model_name}/{version.version}", test, schema)
        champion_version, champion_pr_auc = _current_champion(client, cfg.model_name, test, schema)
        promote, reason = gate_decision(challenger_pr_auc, champion_pr_auc, cfg)
        alias = CHAMPION if promote else CHALLENGER
        client.set_registered_model_alias(cfg.model_name, alias, version.version)
        for key, value in {
            "gate_decision": alias,
            "gate_reason": reason,
            "test_pr_auc": f"{challenger_pr_auc:.6f}",
        }.items():
            client.set_model_version_tag(cfg.model_name, version.version, key, value)
        gate_metrics = {
            "gate.challenger_pr_auc": challenger_pr_auc,
            "gate.promoted": float(promote),
        }
        if champion_pr_auc is not None:
            gate_metrics["gate.champion_pr_auc"] = champion_pr_auc
        mlflow.log_metrics(gate_metrics)
        mlflow.set_tag("gate_reason", reason)
    log.info("%s v%s -> @%s: %s", cfg.model_name, version.version, alias, reason)
    return {
        "model_name": cfg.model_name,
        "version": int(version.version),
        "alias": alias,
        "promoted": promote,
        "reason": reason,
        "run_id": run.info.run_id,
        "challenger_pr_auc": challenger_pr_auc,
        "champion_pr_auc": champion_pr_auc,
        "previous_champion_version": champion_version,
        "tracking_uri": tracking_uri(),
    }


def serving_signature(schema: Schema):
    """The served input: raw feature columns. Numeric ones are typed Any because MLflow refuses
    int64 data for a double column (a nullable integer column arrives as either); the feature
    transform itself rejects text in a numeric column, naming it."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec
    from mlflow.types.schema import Schema as ColumnSpecs

    def spec(name: str) -> ColSpec:
        column = schema.columns[name]
        if column.role == "numeric":
            return ColSpec(AnyType(), name)
        return ColSpec("boolean" if column.kind == "bool" else "string", name)

    outputs = [ColSpec("double", "probability"), ColSpec("long", "label")]
    return ModelSignature(
        inputs=ColumnSpecs([spec(name) for name in schema.feature_columns]),
        outputs=ColumnSpecs(outputs),
    )


def raw_feature_example(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A few rows of features in their source types (validate made them float/str)."""
    example = frame[schema.feature_columns].head(5).copy()
    for name in schema.feature_columns:
        column = schema.columns[name]
        if column.kind == "int" and column.role == "numeric":
            example[name] = example[name].round().astype("int64")
        elif column.kind == "bool":
            example[name] = example[name] == "true"
    return example


def _log_pyfunc(serving_config: Path, example: pd.DataFrame, schema: Schema):
    import mlflow

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("serving.py")),
        artifacts={
            "keras_model": str(paths.KERAS_MODEL),
            "transform": str(paths.FEATURE_TRANSFORM),
            "serving_config": str(serving_config),
        },
        code_paths=[str(Path(__file__).parent)],
        signature=serving_signature(schema),
        input_example=example,
    )


def _current_champion(
    client, name: str, test: pd.DataFrame, schema: Schema
) -> tuple[int | None, float | None]:
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    try:
        return int(champion.version), score(f"models:/{name}@{CHAMPION}", test, schema)
    except Exception as exc:
        raise PipelineError(
            f"register.model_name={name!r}: champion v{champion.version} cannot score the current test "
            f"split ({type(exc).__name__}: {exc}); it is left in place. A different dataset needs its "
            "own register.model_name"
        ) from exc


def main() -> None:
    params = load_params()
    result = register(params)
    write_json_atomic(result, paths.REGISTER_METRICS)


if __name__ == "__main__":
    run_stage("register", main)
