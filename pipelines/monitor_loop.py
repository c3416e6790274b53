"""What the Airflow ``monitor`` DAG's tasks do; ``dags/monitor.py`` only wires them.

- **Score what is new.** The source's partitions that changed since the last completed
  monitoring run (its listing is kept in an Airflow Variable, as the retrain DAG keeps its
  own) are scored with the champion by ``python -m pipelines.score``, one Parquet file each,
  into this run's window folder ``data/scored/<run>/``.
- **Monitor the window.** ``python -m pipelines.monitor --scored <window>`` judges it; with no
  new partition the window is empty and only the champion's age is judged.
- **Close the loop.** ``drift``, ``degraded`` and ``stale`` trigger the retrain DAG with the
  decision and its reason in the run's conf; the retrain DAG passes them to its stages
  (``PIPELINE_RETRAIN_REASON``/``_DECISION``), and register records them on its MLflow run
  (``retrain.reason``, ``retrain.decision``). ``ok`` triggers nothing.

Every step runs in a subprocess of the project checkout, like the retrain DAG's stages, so the
task process imports neither MLflow nor TensorFlow.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from pipelines import paths
from pipelines.errors import PipelineError

log = logging.getLogger(__name__)

RETRAIN_ON = ("drift", "degraded", "stale")
TRIGGER_TASK = "trigger_retrain"
NO_RETRAIN_TASK = "no_retrain"
TIMEOUT_SECONDS = 6 * 3600


def window_folder(run_id: str) -> Path:
    """This DAG run's window of scored rows, relative to the project checkout."""
    return paths.SCORED / re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def scored_name(partition: str) -> str:
    """The scored file of one partition (a local path or an s3:// key): its stem, .parquet."""
    return f"{PurePosixPath(partition).stem}.parquet"


def score_partitions(partitions: list[str], window: Path, project: Path, env: dict) -> list[str]:
    """Score each partition with the champion into ``window``; the files written."""
    (project / window).mkdir(parents=True, exist_ok=True)
    written = []
    for partition in partitions:
        output = window / scored_name(partition)
        run_entry_point(
            ["pipelines.score", "--input", partition, "--output", str(output)], project, env
        )
        written.append(str(output))
    return written


def run_monitor(window: Path, project: Path, env: dict, labels: str | None = None) -> dict:
    """Judge ``window``; the report's decision, reason and headline numbers."""
    command = ["pipelines.monitor", "--scored", str(window)]
    run_entry_point(command + (["--labels", labels] if labels else []), project, env)
    report = json.loads((project / paths.MONITOR_REPORT).read_text())
    return {
        key: report.get(key)
        for key in (
            "decision",
            "reason",
            "model_name",
            "model_version",
            "rows",
            "max_psi",
            "prediction_psi",
            "realised_pr_auc",
            "realised_recall",
        )
    }


def next_task(decision: str) -> str:
    """The branch the monitor DAG takes: trigger a retrain, or not."""
    return TRIGGER_TASK if decision in RETRAIN_ON else NO_RETRAIN_TASK


def retrain_conf(report: dict[str, Any]) -> dict[str, str]:
    """The triggered retrain run's conf: why it was started."""
    return {"decision": report["decision"], "reason": report["reason"]}


def run_entry_point(module_and_args: list[str], project: Path, env: dict) -> None:
    """``python -m <module> <args>`` in ``project``, its output in the task log; a failure
    raises with the entry point's own one-line ``ERROR [...]`` reason."""
    done = subprocess.run(
        [sys.executable, "-m", *module_and_args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIMEOUT_SECONDS,
    )
    lines = (done.stdout + done.stderr).splitlines()
    for line in lines:
        log.info("%s", line)
    if done.returncode != 0:
        reason = next((line for line in reversed(lines) if line.startswith("ERROR")), None)
        raise PipelineError(reason or f"{module_and_args[0]} exited with {done.returncode}")
