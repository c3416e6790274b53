"""Scheduled retraining: one Airflow task per pipeline stage, wired from dvc.yaml.

Each task runs ``dvc repro --single-item <stage>`` in the project checkout: the same entry
point as a local ``dvc repro``, so Airflow adds scheduling, retries and per-stage
visibility but no logic. DVC's run cache makes a retried or repeated task a no-op when its
inputs have not changed. The stage list and order come from ``dvc.yaml`` itself, so the DAG
never drifts from the pipeline.

Configuration comes from the environment of the scheduler and workers, never from this file:
``RETRAIN_PROJECT_DIR`` (the checkout; default: this repository), ``RETRAIN_SCHEDULE`` (cron
or preset; default ``@weekly``), and for the stages themselves ``MLFLOW_TRACKING_URI`` and
the standard AWS variables.

No TensorFlow, Great Expectations or pipelines import happens here: parsing stays cheap.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

PROJECT_DIR = Path(os.environ.get("RETRAIN_PROJECT_DIR", Path(__file__).resolve().parents[1]))
SCHEDULE = os.environ.get("RETRAIN_SCHEDULE", "@weekly")
STAGES = list(yaml.safe_load((PROJECT_DIR / "dvc.yaml").read_text())["stages"])

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
}

with DAG(
    dag_id="retrain",
    description="Retrain, evaluate and gate the classifier on the latest data",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["retraining", "dvc", "mlflow"],
) as dag:
    previous = None
    for stage in STAGES:
        task = BashOperator(
            task_id=stage,
            bash_command=f"dvc repro --single-item {shlex.quote(stage)}",
            cwd=str(PROJECT_DIR),
        )
        if previous is not None:
            previous >> task
        previous = task
