"""Scheduled retraining on new data: one Airflow task per pipeline stage, wired from dvc.yaml.

Shape: ``wait_for_new_data`` >> one task per ``dvc.yaml`` stage, in its order >>
``record_processed`` >> ``gate_outcome`` >> ``promoted`` | ``champion_kept``.

Each stage task runs ``dvc repro --single-item <stage>`` in the project checkout, the same
entry point as a local ``dvc repro``, rather than ``python -m pipelines.<stage>``: DVC then
checks the stage's declared inputs and params, skips it when nothing changed (so a task run
twice is a no-op the second time) and records the lock entry that moves the outputs through
the DVC remote to the next task, which may run on another worker. The logic lives in
``pipelines/orchestration.py``; this file only wires.

- ``wait_for_new_data`` compares the source's partition listing with the one the last
  completed run processed. Nothing new: it skips, and so does every task after it. With
  ``RETRAIN_WAIT_FOR_DATA_MINUTES`` > 0 it is a reschedule-mode sensor that waits that long
  for a new partition (freeing its worker slot between pokes) before skipping.
- A critical validation failure fails ``validate`` at once (no retry can fix the data) and
  the alert carries the failed expectations; nothing downstream runs.
- A gate rejection ends the run successfully through ``champion_kept``; the reason is in the
  task log and in the MLflow run's note.

Configuration comes from the environment of the scheduler and workers, and from Airflow
connections, never from this file: ``RETRAIN_PROJECT_DIR`` (the checkout; default: this
repository), ``RETRAIN_SCHEDULE`` (cron or preset, ``none`` for triggered runs only; default ``@weekly``),
``RETRAIN_WAIT_FOR_DATA_MINUTES`` (default 0), ``RETRAIN_DVC_SYNC`` (``remote``, the
default: pull and push through the DVC remote; ``off`` when every task shares one disk), and
``RETRAIN_TASK_TIMEOUT_MINUTES`` (default 120). The MLflow and S3 settings: the connections
``retrain_mlflow`` and ``retrain_s3``, else ``MLFLOW_TRACKING_URI`` and the AWS variables.
Alerts: the connection ``retrain_alerts`` (a webhook URL). Workers need the checkout on
``PYTHONPATH``.

No TensorFlow, Great Expectations, MLflow or pipelines import happens at parse time.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, PokeReturnValue, get_current_context, task

PROJECT_DIR = Path(os.environ.get("RETRAIN_PROJECT_DIR", Path(__file__).resolve().parents[1]))
SCHEDULE = os.environ.get("RETRAIN_SCHEDULE", "@weekly")
SCHEDULE = None if SCHEDULE.lower() == "none" else SCHEDULE
WAIT_FOR_DATA = timedelta(minutes=float(os.environ.get("RETRAIN_WAIT_FOR_DATA_MINUTES", "0")))
SYNC_THROUGH_REMOTE = os.environ.get("RETRAIN_DVC_SYNC", "remote") == "remote"
TASK_TIMEOUT = timedelta(minutes=float(os.environ.get("RETRAIN_TASK_TIMEOUT_MINUTES", "120")))
STAGES = list(yaml.safe_load((PROJECT_DIR / "dvc.yaml").read_text())["stages"])

log = logging.getLogger(__name__)


def _alert(context) -> None:
    from pipelines.orchestration import alert_on_failure

    alert_on_failure(context)


def _environment() -> dict[str, str]:
    from pipelines.orchestration import stage_environment

    context = get_current_context()
    # A run the monitor DAG triggered carries its decision and reason, recorded by register.
    conf = context["dag_run"].conf or {}
    return stage_environment(context["dag"].dag_id, context["run_id"], conf)


DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": TASK_TIMEOUT,
    "on_failure_callback": _alert,
}


@task.sensor(
    poke_interval=timedelta(minutes=5),
    timeout=WAIT_FOR_DATA,
    mode="reschedule",
    soft_fail=True,
)
def wait_for_new_data() -> PokeReturnValue:
    from airflow.sdk.exceptions import AirflowSkipException

    from pipelines.orchestration import (
        changed_partitions,
        last_processed,
        list_source_partitions,
    )

    context = get_current_context()
    dag_id = context["dag"].dag_id
    trigger = context["dag_run"].conf or {}
    if trigger.get("reason"):
        log.info("triggered by monitoring (%s): %s", trigger.get("decision"), trigger["reason"])
    processed = last_processed(dag_id)
    current = list_source_partitions(PROJECT_DIR, _environment())
    changed = changed_partitions(current, processed.get("partitions", {}))
    log.info("%d partition(s), %d new or changed: %s", len(current), len(changed), changed[:20])
    if not changed and WAIT_FOR_DATA.total_seconds() == 0:
        raise AirflowSkipException(
            f"no new partition since run {processed.get('run_id')}: nothing to retrain"
        )
    return PokeReturnValue(is_done=bool(changed), xcom_value=current)


def stage_task(stage: str):
    @task(task_id=stage)
    def run(previous: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from pipelines.orchestration import StageFailed, is_data_rejection, reproduce_stage

        try:
            return reproduce_stage(
                stage, previous.get("locks", {}), PROJECT_DIR, _environment(), SYNC_THROUGH_REMOTE
            )
        except StageFailed as failure:
            if is_data_rejection(stage, failure.reason):
                raise AirflowFailException(failure.reason) from failure
            raise

    return run


@task
def record_processed(partitions: dict, last_stage: dict) -> None:
    """Remember what this run processed, so that the next run only starts on new data."""
    from pipelines import orchestration  # the module: this task has its helper's name

    context = get_current_context()
    orchestration.record_processed(context["dag"].dag_id, context["run_id"], partitions)


@task.branch
def gate_outcome(register: dict) -> str:
    """The gate's verdict as the branch taken, so the run's graph shows it at a glance."""
    decision = register["report"]
    log.info(
        "%s v%s -> @%s: %s",
        decision.get("model_name"),
        decision.get("version"),
        decision.get("alias"),
        decision.get("reason"),
    )
    return "promoted" if decision.get("promoted") else "champion_kept"


with DAG(
    dag_id="retrain",
    description="Retrain, evaluate and gate the classifier when new data has landed",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["retraining", "dvc", "mlflow"],
) as dag:
    partitions = wait_for_new_data()
    result = stage_task(STAGES[0])({})
    partitions >> result
    for name in STAGES[1:]:
        # Its argument, the previous stage's XCom, also makes it that stage's downstream.
        result = stage_task(name)(result)
    (
        record_processed(partitions, result)
        >> gate_outcome(result)
        >> [
            EmptyOperator(task_id="promoted"),
            EmptyOperator(task_id="champion_kept"),
        ]
    )
