"""Monitoring that closes the loop: score new data, judge it, retrain when it is needed.

Shape: ``score_new_data`` >> ``monitor`` >> ``record_scored`` and ``retrain_needed`` >>
``trigger_retrain`` | ``no_retrain``.

- ``score_new_data`` scores the source's partitions that are new or changed since the last
  completed monitoring run with the champion (``python -m pipelines.score``) into
  ``data/scored/<run>/``. Nothing new: the window is empty, and only the champion's age is
  judged.
- ``monitor`` runs ``python -m pipelines.monitor`` on that window (report, metrics, PNG and an
  MLflow run in ``<model_name>-monitoring``); its XCom is the decision and its reason.
- ``retrain_needed`` branches on the decision: ``drift``, ``degraded`` or ``stale`` triggers
  the ``retrain`` DAG with ``conf={"decision": ..., "reason": ...}`` (the retrain run logs it,
  and register tags its MLflow run ``retrain.reason``); ``ok`` triggers nothing.

The logic lives in ``pipelines/monitor_loop.py``; this file only wires. Configuration comes
from the environment: ``RETRAIN_PROJECT_DIR`` (the checkout, shared with the retrain DAG),
``MONITOR_SCHEDULE`` (cron or preset, ``none`` for triggered runs only; default ``@daily``),
``MONITOR_LABELS`` (a labels file to join, optional) and ``MONITOR_TASK_TIMEOUT_MINUTES``
(default 60). MLflow and S3 settings and alerts are the retrain DAG's (connections
``retrain_mlflow``, ``retrain_s3``, ``retrain_alerts``).

No TensorFlow, MLflow or pipelines import happens at parse time.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, get_current_context, task

PROJECT_DIR = Path(os.environ.get("RETRAIN_PROJECT_DIR", Path(__file__).resolve().parents[1]))
SCHEDULE = os.environ.get("MONITOR_SCHEDULE", "@daily")
SCHEDULE = None if SCHEDULE.lower() == "none" else SCHEDULE
LABELS = os.environ.get("MONITOR_LABELS") or None
TASK_TIMEOUT = timedelta(minutes=float(os.environ.get("MONITOR_TASK_TIMEOUT_MINUTES", "60")))
DECISION = "{{ ti.xcom_pull(task_ids='monitor')['decision'] }}"
REASON = "{{ ti.xcom_pull(task_ids='monitor')['reason'] }}"

log = logging.getLogger(__name__)


def _alert(context) -> None:
    from pipelines.orchestration import alert_on_failure

    alert_on_failure(context)


def _environment() -> dict[str, str]:
    from pipelines.orchestration import stage_environment

    context = get_current_context()
    return stage_environment(context["dag"].dag_id, context["run_id"])


DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": TASK_TIMEOUT,
    "on_failure_callback": _alert,
}


@task
def score_new_data() -> dict:
    from pipelines.monitor_loop import score_partitions, window_folder
    from pipelines.orchestration import last_processed, list_source_partitions

    context = get_current_context()
    done = last_processed(context["dag"].dag_id).get("partitions", {})
    env = _environment()
    current = list_source_partitions(PROJECT_DIR, env)
    new = sorted(name for name, stamp in current.items() if done.get(name) != stamp)
    log.info("%d partition(s), %d new or changed: %s", len(current), len(new), new[:20])
    window = window_folder(context["run_id"])
    score_partitions(new, window, PROJECT_DIR, env)
    return {"window": str(window), "partitions": current}


@task
def monitor(scored: dict) -> dict:
    from pipelines.monitor_loop import run_monitor

    report = run_monitor(Path(scored["window"]), PROJECT_DIR, _environment(), LABELS)
    log.info("decision %s: %s", report["decision"], report["reason"])
    return report


@task
def record_scored(scored: dict, report: dict) -> None:
    """Remember what this run scored, so that the next run judges only newer data."""
    from pipelines.orchestration import record_processed

    context = get_current_context()
    record_processed(context["dag"].dag_id, context["run_id"], scored["partitions"])


@task.branch
def retrain_needed(report: dict) -> str:
    from pipelines.monitor_loop import next_task

    return next_task(report["decision"])


with DAG(
    dag_id="monitor",
    description="Score new data with the champion, judge drift, quality and age, retrain if needed",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["monitoring", "mlflow"],
) as dag:
    scored = score_new_data()
    report = monitor(scored)
    record_scored(scored, report)
    retrain_needed(report) >> [
        TriggerDagRunOperator(
            task_id="trigger_retrain",
            trigger_dag_id="retrain",
            trigger_run_id="monitor__{{ run_id }}",
            conf={"decision": DECISION, "reason": REASON},
            # Not templated by the operator: the decision and reason are in the conf.
            note="triggered by the monitor DAG; why: the run's conf (decision, reason)",
            skip_when_already_exists=True,
        ),
        EmptyOperator(task_id="no_retrain"),
    ]
