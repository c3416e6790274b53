"""Register: log this execution's MLflow run, register a model version, gate the champion.

The challenger (this run's model, loaded back from the registry) and the current
``@champion`` are both scored on the current test split in this process, so stale stored
metrics are never compared, and ``pipelines.champion_gate`` decides on their paired
difference on those same rows: the PR-AUC difference's interval must clear the
non-inferiority margin (and 0, under ``register.require_improvement``), the point gain must
exceed ``register.min_delta`` (a tie never moves the champion), and recall and calibration
must not regress beyond their tolerances. The very first model must clear the floors.
Otherwise the version gets the alias ``challenger`` and a tag with the reason. Every alias
move is audited, and every check of the gate is recorded one way (``pipelines.gates``): as
records in ``data/reports/register.json``, as ``gate.champion.<check>`` tags on the run and
the version, and in the log; the paired comparison (differences, intervals, tests) goes
into the report, the run and the audit event.

The story: read the inputs, log the run and register (or find) the version, score both
models, decide, record. What the run records lives in ``pipelines.lineage``, the served
pyfunc in ``pipelines.packaging``, scoring both models and recording the outcome in
``pipelines.challenge``, the decision in ``pipelines.champion_gate``, and the aliases and
their audit in ``pipelines.promotion``.

Crash safety and concurrency: it all runs under the registry lock (``pipelines.registry_lock``)
after ``pipelines.reconcile`` settled what a killed register or rollback left. A version is
found by its ``lineage_key`` (code, params, data hashes, model fingerprint), so a rerun with
nothing changed, or a retry after a crash, registers no duplicate and gates nothing twice.
An alias is set only after the version loaded from the registry and scored the test split,
as one recoverable transaction (``pipelines.promotion``). DVC outputs are deleted first: a
killed register is never "up to date".
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING

from pipelines import (
    challenge,
    champion_reference,
    faults,
    gates,
    paths,
    reconcile,
    tracking,
)
from pipelines.challenge import Inputs
from pipelines.champion_gate import GATE_METRICS
from pipelines.config import Params, load_params
from pipelines.contracts import DecisionThreshold, ServedVariant
from pipelines.datasets import check_outputs_current
from pipelines.errors import PipelineError
from pipelines.io import read_parquet
from pipelines.lineage import (
    file_md5,
    git_commit,
    lineage_key,
    log_run_contents,
    model_fingerprint,
)
from pipelines.packaging import log_pyfunc
from pipelines.promotion import CHAMPION, DECISION_TAG
from pipelines.registry_lock import held
from pipelines.reports import stage_headline, write_results
from pipelines.schema import load_enforced_schema
from pipelines.stage import run_stage

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from mlflow import MlflowClient

log = logging.getLogger(__name__)


def register(params: Params) -> dict:
    """Under the registry lock: settle what a killed run left, then log, register (or find
    this lineage's version) and gate; the MLflow run ends FINISHED, or FAILED."""
    import mlflow

    cfg = params.register_
    inputs = read_inputs(params)
    for output in (paths.REGISTER_REPORT, paths.REGISTER_METRICS):
        output.unlink(missing_ok=True)
    client = tracking.client()
    experiment = tracking.experiment_id(client, cfg.experiment_name)
    from mlflow.exceptions import MlflowException

    try:
        with held(client, cfg.model_name, cfg.lock_wait_s, cfg.lock_stale_s):
            reconcile.settle(client, cfg.model_name, experiment)
            run_id = tracking.open_lineage_run(client, experiment, f"retrain-{cfg.model_name}")
            mlflow.start_run(run_id=run_id)
            try:
                result = _register_in_run(params, client, run_id, inputs)
            except BaseException:
                tracking.end_active_run("FAILED")
                raise
            if result.get("champion_error"):
                tracking.end_active_run("FAILED")
            else:
                mlflow.end_run()
                tracking.close_lineage_run(client, run_id, "FINISHED")
    except MlflowException as exc:
        raise tracking.mlflow_error(exc, f"registering {cfg.model_name!r}") from exc
    return result


def read_inputs(params: Params) -> Inputs:
    """The earlier stages' outputs register needs, read once."""
    test = read_parquet(paths.SPLIT_TEST)
    check_outputs_current(params.data, test)
    return Inputs(
        schema=load_enforced_schema(),
        test=test,
        threshold=DecisionThreshold.load(),
        served=ServedVariant.load(),
    )


def _register_in_run(params: Params, client: MlflowClient, run_id: str, inputs: Inputs) -> dict:
    import mlflow

    cfg = params.register_
    fingerprint = model_fingerprint(inputs.threshold.threshold)
    key = lineage_key(params, fingerprint)
    reconcile.reject_ungated(client, cfg.model_name, key)
    version = _logged_version(params, client, run_id, inputs, key, fingerprint)
    number = str(version.version)
    if DECISION_TAG in version.tags:
        log.info(
            "v%s has this lineage (code, data, params, model) and was gated already (@%s); "
            "nothing registered, no alias moved",
            number,
            version.tags[DECISION_TAG],
        )
        mlflow.set_tags({"register.reused_version": number, "stage.register": "done"})
        return _recorded_result(version, run_id)
    faults.point("after_version")
    gate = challenge.run_gate(client, params, number, inputs)
    challenge.record_gate(client, cfg, number, run_id, gate)
    log.info("%s v%s -> @%s: %s", cfg.model_name, number, gate.alias, gate.reason)
    return {
        "model_name": cfg.model_name,
        "version": int(number),
        "alias": gate.alias,
        "promoted": gate.promote,
        "reason": gate.reason,
        "checks": gates.as_records(gate.decision.checks),
        "run_id": run_id,
        "challenger": asdict(gate.challenger),
        "champion": asdict(gate.champion) if gate.champion is not None else None,
        "comparison": gate.comparison,
        "previous_champion_version": int(gate.champion_version) if gate.champion_version else None,
        "tracking_uri": tracking.display_uri(),
        **({"champion_error": gate.champion_error} if gate.champion_error else {}),
    }


def _logged_version(
    params: Params, client: MlflowClient, run_id: str, inputs: Inputs, key: str, fingerprint: str
) -> ModelVersion:
    """The version of this lineage: found when registered already (a rerun, or a retry
    after a crash), else registered after logging the run's contents."""
    from mlflow.exceptions import MlflowException

    cfg = params.register_
    try:
        version = reconcile.find_version(client, cfg.model_name, key)
        if version is not None and DECISION_TAG in version.tags:
            return version
        log_run_contents(params)
        if version is None:
            faults.point("before_version")
            return _register_version(params, inputs, run_id, key, fingerprint)
        log.info("v%s of this lineage is registered already (a retry); reusing it", version.version)
        return version
    except MlflowException as exc:
        raise tracking.mlflow_error(exc, f"registering {cfg.model_name!r}") from exc


def _recorded_result(version: ModelVersion, run_id: str) -> dict:
    """The result of a gate that already ran for this version (a retry after a crash)."""
    tags = version.tags
    return {
        "model_name": version.name,
        "version": int(version.version),
        "reused": True,
        "alias": tags[DECISION_TAG],
        "promoted": tags[DECISION_TAG] == CHAMPION,
        "reason": tags.get("gate_reason", ""),
        "run_id": run_id,
        "challenger": {k: float(tags[f"test_{k}"]) for k in GATE_METRICS},
        "champion": None,
        "previous_champion_version": None,
        "tracking_uri": tracking.display_uri(),
    }


def _register_version(
    params: Params, inputs: Inputs, run_id: str, key: str, fingerprint: str
) -> ModelVersion:
    import mlflow

    threshold = inputs.threshold.threshold
    log.info("logging the pyfunc model")
    packaged = log_pyfunc(
        threshold, inputs.test, inputs.schema, inputs.served, params.register_.served_flavour
    )
    champion_reference.log_reference(packaged.model_uri, inputs.schema, params.data)
    return mlflow.register_model(
        packaged.model_uri,
        params.register_.model_name,
        tags={
            "run_id": run_id,
            reconcile.LINEAGE_TAG: key,
            "model_fingerprint": fingerprint,
            "data_md5": file_md5(paths.CLEAN),
            "test_split_md5": file_md5(paths.SPLIT_TEST),
            "quantization": inputs.served.serving_artifact,
            "tflite_file": inputs.served.tflite_file_variant,
            "threshold": f"{threshold:.6f}",
            "git_commit": git_commit(),
            **packaged.tags,
        },
    )


def main() -> None:
    params = load_params()
    result = register(params)
    numbers = stage_headline("register", version=result["version"], promoted=result["promoted"])
    write_results(result, paths.REGISTER_REPORT, numbers, paths.REGISTER_METRICS)
    if result.get("champion_error"):
        raise PipelineError(
            f"{result['model_name']}: champion v{result['previous_champion_version']} cannot be "
            f"scored any more; v{result['version']} is registered as @challenger and the "
            f"champion is left in place ({result['champion_error']})"
        )


if __name__ == "__main__":
    run_stage("register", main)
