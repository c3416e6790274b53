"""Register: log this execution's MLflow run, register a model version, gate the champion.

The challenger (this run's model, loaded back from the registry) and the current
``@champion`` are both scored on the current test split in this process, so stale stored
metrics are never compared. ``champion`` moves only if the challenger's test PR-AUC beats
the champion's by at least ``register.min_delta`` and no guardrail regresses beyond its
tolerance: recall at each model's own threshold (``register.max_recall_drop``) and expected
calibration error (``register.max_ece_increase``). The very first model must clear the
floors ``register.min_pr_auc`` and ``register.min_recall``. Otherwise the version gets the
alias ``challenger`` and a tag with the reason. Every alias move is audited
(``pipelines.registry``).

Crash safety: the version is tagged with the run id and a hash of the model files, so a
rerun after a crash finds it instead of registering a duplicate; an alias is only set after
the version has loaded from the registry and scored the test split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipelines import metrics, paths, registry, tracking
from pipelines.config import Params, RegisterParams, load_params
from pipelines.errors import PipelineError, brief
from pipelines.io import read_csv, read_json, read_parquet, write_json_atomic
from pipelines.registry import CHALLENGER, CHAMPION
from pipelines.schema import Schema, load_schema, schema_path
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

STAGE_METRICS = {
    "ingest": paths.INGEST_METRICS,
    "validate": paths.VALIDATE_METRICS,
    "split": paths.SPLIT_METRICS,
    "rebalance": paths.REBALANCE_METRICS,
    "augment": paths.AUGMENT_METRICS,
    "train": paths.TRAIN_METRICS,
    "evaluate": paths.EVALUATE_METRICS,
    "quantize": paths.QUANTIZE_METRICS,
}
HASHED_DATA = {
    "raw": paths.RAW_SNAPSHOT,
    "clean": paths.CLEAN,
    "train": paths.SPLIT_TRAIN,
    "val": paths.SPLIT_VAL,
    "test": paths.SPLIT_TEST,
}


@dataclass(frozen=True)
class GateMetrics:
    """What the gate compares, measured on the current test split."""

    pr_auc: float
    recall: float  # at the model's own decision threshold
    ece: float


def gate_decision(
    challenger: GateMetrics, champion: GateMetrics | None, cfg: RegisterParams
) -> tuple[bool, str]:
    """Whether the challenger replaces the champion, and why (every failed check is named)."""
    if champion is None:
        failed = []
        if challenger.pr_auc < cfg.min_pr_auc:
            failed.append(f"PR-AUC {challenger.pr_auc:.4f} < floor {cfg.min_pr_auc:.4f}")
        if challenger.recall < cfg.min_recall:
            failed.append(f"recall {challenger.recall:.4f} < floor {cfg.min_recall:.4f}")
        if failed:
            return False, "first model: " + "; ".join(failed)
        return True, (
            f"first model: PR-AUC {challenger.pr_auc:.4f} >= floor {cfg.min_pr_auc:.4f}, "
            f"recall {challenger.recall:.4f} >= floor {cfg.min_recall:.4f}"
        )
    gain = challenger.pr_auc - champion.pr_auc
    recall_drop = champion.recall - challenger.recall
    ece_rise = challenger.ece - champion.ece
    failed = []
    if gain < cfg.min_delta:
        failed.append(
            f"PR-AUC {challenger.pr_auc:.4f} vs champion {champion.pr_auc:.4f}: "
            f"gain {gain:+.4f} < {cfg.min_delta}"
        )
    if recall_drop > cfg.max_recall_drop:
        failed.append(
            f"recall {challenger.recall:.4f} vs champion {champion.recall:.4f}: "
            f"drop {recall_drop:.4f} > {cfg.max_recall_drop}"
        )
    if ece_rise > cfg.max_ece_increase:
        failed.append(
            f"calibration error {challenger.ece:.4f} vs champion {champion.ece:.4f}: "
            f"rise {ece_rise:.4f} > {cfg.max_ece_increase}"
        )
    if failed:
        return False, "; ".join(failed)
    return True, (
        f"PR-AUC {challenger.pr_auc:.4f} beats champion {champion.pr_auc:.4f} by {gain:+.4f} "
        f">= {cfg.min_delta}; recall {challenger.recall:.4f} (champion {champion.recall:.4f}), "
        f"calibration error {challenger.ece:.4f} (champion {champion.ece:.4f}) within tolerance"
    )


def gate_metrics(labels: np.ndarray, predictions: pd.DataFrame, bins: int) -> GateMetrics:
    scores = predictions["probability"].to_numpy(dtype="float64")
    return GateMetrics(
        pr_auc=metrics.pr_auc(labels, scores),
        recall=metrics.recall(labels, predictions["label"].to_numpy()),
        ece=metrics.expected_calibration_error(labels, scores, bins),
    )


def score(model_uri: str, test: pd.DataFrame, schema: Schema, bins: int) -> GateMetrics:
    """Load a registered model as pyfunc (raw rows in, its own threshold) and score test."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    predictions = model.predict(test[schema.feature_columns])
    return gate_metrics(test[schema.target].to_numpy(), predictions, bins)


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def git_commit() -> str:
    """The checkout's commit; in an image without a git checkout, the commit it was built
    from (``PIPELINE_GIT_COMMIT``, set by docker/pipeline.Dockerfile's ``GIT_COMMIT``)."""
    return _git("rev-parse", "HEAD") or os.environ.get("PIPELINE_GIT_COMMIT") or "unknown"


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(threshold: float) -> str:
    """Identifies the served model: Keras weights, feature transform and threshold."""
    digest = hashlib.sha256()
    for path in (paths.KERAS_MODEL, paths.FEATURE_TRANSFORM):
        digest.update(file_md5(path).encode())
    digest.update(repr(threshold).encode())
    return digest.hexdigest()[:32]


def lineage_tags(params: Params) -> dict[str, str]:
    params_json = json.dumps(params.model_dump(mode="json", by_alias=True), sort_keys=True)
    tags = {
        "git_commit": git_commit(),
        "git_dirty": str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower(),
        "params_sha256": hashlib.sha256(params_json.encode()).hexdigest(),
    }
    for name, path in HASHED_DATA.items():
        if path.exists():
            tags[f"data.{name}.md5"] = file_md5(path)
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


def register(params: Params) -> dict:
    """Log, register and gate; the MLflow run ends FINISHED, or FAILED/KILLED on an error."""
    import mlflow

    cfg = params.register_
    client = tracking.client()
    experiment = tracking.experiment_id(client, cfg.experiment_name)
    run_id = tracking.open_lineage_run(client, experiment, run_name=f"retrain-{cfg.model_name}")
    mlflow.start_run(run_id=run_id)
    try:
        result = _register_in_run(params, client, run_id)
    except BaseException as exc:
        mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    if result.get("champion_error"):
        mlflow.end_run(status="FAILED")
    else:
        mlflow.end_run()
        tracking.close_lineage_run(client, run_id, "FINISHED")
    return result


def _register_in_run(params: Params, client, run_id: str) -> dict:
    from mlflow.exceptions import MlflowException

    import mlflow

    cfg = params.register_
    bins = params.evaluate.calibration_bins
    schema = load_schema(schema_path(params.data))
    test = read_parquet(paths.SPLIT_TEST)
    evaluation = read_json(paths.EVALUATE_METRICS)
    quantization = read_json(paths.QUANTIZE_METRICS)
    fingerprint = model_fingerprint(evaluation["threshold"])
    try:
        _log_run_contents(params, schema)
        version = _find_version(client, cfg.model_name, run_id, fingerprint)
        if version is None:
            version = _register_version(params, schema, test, run_id, fingerprint, quantization)
        else:
            log.info("v%s of this run is registered already (a retry); reusing it", version.version)
    except MlflowException as exc:
        raise PipelineError(
            f"MLflow at {tracking.redacted(tracking.tracking_uri())} failed while registering "
            f"{cfg.model_name!r}: {brief(exc)}"
        ) from exc
    number = str(version.version)
    if "gate_decision" in version.tags:
        log.info(
            "v%s was gated already (@%s); nothing to move", number, version.tags["gate_decision"]
        )
        return _recorded_result(version, run_id)

    try:
        challenger = score(f"models:/{cfg.model_name}/{number}", test, schema, bins)
    except Exception as exc:
        client.set_model_version_tag(cfg.model_name, number, "gate_decision", "unservable")
        raise PipelineError(
            f"{cfg.model_name} v{number} does not load from the registry and predict the test "
            f"split ({type(exc).__name__}: {exc}); no alias was moved"
        ) from exc
    champion_version = registry.alias_holder(client, cfg.model_name, CHAMPION)
    champion, champion_error = None, None
    if champion_version is not None:
        try:
            if not registry.registered_by_pipeline(client, cfg.model_name, champion_version):
                raise PipelineError("it was not registered by this pipeline, so it is not loaded")
            champion = score(f"models:/{cfg.model_name}/{champion_version}", test, schema, bins)
        except Exception as exc:  # noqa: BLE001 - reported below, the champion is kept
            champion_error = f"{type(exc).__name__}: {brief(exc)}"
            log.error(
                "champion v%s cannot score the current test split: %s",
                champion_version,
                champion_error,
            )
    if champion_error:
        promote = False
        reason = (
            f"champion v{champion_version} cannot be loaded or score the current test split "
            f"({champion_error}); left in place for a person to decide (a different dataset "
            "needs its own register.model_name)"
        )
    else:
        promote, reason = gate_decision(challenger, champion, cfg)
    alias = CHAMPION if promote else CHALLENGER
    for key, value in {
        "gate_reason": reason[:4000],
        **{f"test_{k}": f"{v:.6f}" for k, v in asdict(challenger).items()},
    }.items():
        client.set_model_version_tag(cfg.model_name, number, key, value)
    registry.move_alias(
        client,
        cfg.model_name,
        alias,
        number,
        action="promote" if promote else "challenge",
        reason=reason,
        run_id=run_id,
        git_commit=git_commit(),
        metrics={
            number: asdict(challenger),
            **({champion_version: asdict(champion)} if champion else {}),
        },
    )
    # Last: its presence tells a retry that the gate has run for this version.
    client.set_model_version_tag(cfg.model_name, number, "gate_decision", alias)
    gate = {f"gate.challenger_{k}": v for k, v in asdict(challenger).items()}
    gate |= {f"gate.champion_{k}": v for k, v in asdict(champion).items()} if champion else {}
    mlflow.log_metrics(gate | {"gate.promoted": float(promote)})
    verdict = "promoted to @champion" if promote else "kept as @challenger, champion unchanged"
    mlflow.set_tags(
        {
            "gate_reason": reason[:4000],
            "gate_decision": alias,
            "stage.register": "done",
            # The run's Description in the MLflow UI: the outcome a reviewer looks for first.
            "mlflow.note.content": f"{cfg.model_name} v{number} {verdict}: {reason[:3000]}",
        }
    )
    registry.log_audit_artifacts(client, cfg.model_name, run_id)
    log.info("%s v%s -> @%s: %s", cfg.model_name, number, alias, reason)
    return {
        "model_name": cfg.model_name,
        "version": int(number),
        "alias": alias,
        "promoted": promote,
        "reason": reason,
        "run_id": run_id,
        "challenger": asdict(challenger),
        "champion": asdict(champion) if champion else None,
        "previous_champion_version": int(champion_version) if champion_version else None,
        "tracking_uri": tracking.redacted(tracking.tracking_uri()),
        **({"champion_error": champion_error} if champion_error else {}),
    }


def _recorded_result(version, run_id: str) -> dict:
    """The result of a gate that already ran for this version (a retry after a crash)."""
    tags = version.tags
    return {
        "model_name": version.name,
        "version": int(version.version),
        "alias": tags["gate_decision"],
        "promoted": tags["gate_decision"] == CHAMPION,
        "reason": tags.get("gate_reason", ""),
        "run_id": run_id,
        "challenger": {k: float(tags[f"test_{k}"]) for k in registry.GATE_METRICS},
        "champion": None,
        "previous_champion_version": None,
        "tracking_uri": tracking.redacted(tracking.tracking_uri()),
    }


def _log_run_contents(params: Params, schema: Schema) -> None:
    """Every stage's metrics, reports and plots, the params and the lineage tags."""
    import mlflow

    mlflow.set_tags(lineage_tags(params))
    mlflow.log_params(flatten(params.model_dump(mode="json", by_alias=True)))
    counts = read_json(paths.REBALANCE_METRICS)
    mlflow.log_params(
        flatten({"before": counts["before"], "after": counts["after"]}, "rebalance_counts.")
    )
    evaluation = read_json(paths.EVALUATE_METRICS)
    metrics = {f"test_{k}": v for k, v in evaluation.items() if _is_number(v)}
    for stage, path in STAGE_METRICS.items():
        if path.exists():
            metrics |= {
                f"{stage}.{k}": v for k, v in flatten(read_json(path)).items() if _is_number(v)
            }
            mlflow.log_artifact(str(path), "metrics")
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
    mlflow.log_artifact(str(schema_path(params.data)), "schema")
    mlflow.log_artifact(str(paths.TFLITE_MODEL), "tflite")
    mlflow.log_artifact(str(paths.QUANTIZE_TABLE), "tflite")
    mlflow.log_artifact(str(paths.KERAS_MODEL), "float_model")
    mlflow.log_artifact(str(paths.FEATURE_TRANSFORM), "float_model")


def _find_version(client, name: str, run_id: str, fingerprint: str):
    """A version this run registered before a crash, holding the same model."""
    from mlflow.exceptions import MlflowException

    try:
        candidates = client.search_model_versions(f"name='{name}' and tags.run_id='{run_id}'")
    except MlflowException:
        return None  # the registered model does not exist yet
    for version in candidates:
        if version.tags.get("model_fingerprint") == fingerprint:
            return client.get_model_version(name, version.version)
    return None


def _register_version(
    params: Params,
    schema: Schema,
    test: pd.DataFrame,
    run_id: str,
    fingerprint: str,
    quantization: dict,
):
    import mlflow

    evaluation = read_json(paths.EVALUATE_METRICS)
    log.info("logging the pyfunc model")
    with tempfile.TemporaryDirectory() as scratch:
        serving_config = Path(scratch) / "serving_config.json"
        serving_config.write_text(json.dumps({"threshold": evaluation["threshold"]}))
        info = _log_pyfunc(serving_config, raw_feature_example(test, schema), schema)
    return mlflow.register_model(
        info.model_uri,
        params.register_.model_name,
        tags={
            "run_id": run_id,
            "model_fingerprint": fingerprint,
            "data_md5": file_md5(paths.CLEAN),
            "test_split_md5": file_md5(paths.SPLIT_TEST),
            "quantization": quantization["serving_artifact"],
            "tflite_file": quantization["tflite_file_variant"],
            "threshold": f"{evaluation['threshold']:.6f}",
            "git_commit": git_commit(),
        },
    )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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


SERVING_PACKAGES = (
    "mlflow",
    "tensorflow",
    "tf-keras",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pyyaml",
)


def serving_requirements() -> list[str]:
    """What the served pyfunc imports, pinned to this environment. Declared rather than
    inferred: MLflow's inference loads the model in a subprocess, which costs seconds, and
    can miss packages imported lazily."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in SERVING_PACKAGES]


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
        pip_requirements=serving_requirements(),
        signature=serving_signature(schema),
        input_example=example,
    )


def main() -> None:
    params = load_params()
    result = register(params)
    write_json_atomic(result, paths.REGISTER_METRICS)
    if result.get("champion_error"):
        raise PipelineError(
            f"{result['model_name']}: champion v{result['previous_champion_version']} cannot be "
            f"scored any more; v{result['version']} is registered as @challenger and the "
            f"champion is left in place ({result['champion_error']})"
        )


if __name__ == "__main__":
    run_stage("register", main)
