"""Runs whose process was killed outright (SIGKILL, OOM, power): found and ended FAILED.

Every run this project opens is tagged with its host and process id. A process that dies
without ending its run leaves it RUNNING (and a LoggedModel it was writing PENDING); the
next register, registry command or stage opening the execution's run reaps them: FAILED,
tagged ``pipeline.reaped``. Only runs of this host are judged, since only here can a process
id be checked.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

HOST_TAG = "pipeline.host"
PID_TAG = "pipeline.pid"
REAPED_TAG = "pipeline.reaped"


def owner_tags() -> dict[str, str]:
    """The tags that let a later process tell whether this one is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def open_command_run(mlflow_client, experiment: str, run_name: str) -> str:
    """A run of a registry command (not of a pipeline execution), tagged with this host and
    process so that the next command reaps it if this one is killed."""
    return mlflow_client.create_run(experiment, run_name=run_name, tags=owner_tags()).info.run_id


def reap_dead_runs(mlflow_client, experiment: str) -> None:
    """Mark FAILED, tagged ``pipeline.reaped``, the RUNNING runs whose process on this host
    no longer exists."""
    host = socket.gethostname()
    runs = mlflow_client.search_runs(
        [experiment],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=50,
    )
    for run in runs:
        pid = int(run.data.tags.get(PID_TAG, "0") or 0)
        if pid and pid != os.getpid() and not process_alive(pid):
            log.warning(
                "MLflow run %s: its process %d is gone; reaping it as FAILED", run.info.run_id, pid
            )
            mlflow_client.set_tag(
                run.info.run_id,
                REAPED_TAG,
                f"process {pid} on {host} disappeared; reaped by process {os.getpid()}",
            )
            mlflow_client.set_terminated(run.info.run_id, status="FAILED")
            fail_pending_models(mlflow_client, experiment, run.info.run_id)


def fail_pending_models(mlflow_client, experiment: str, run_id: str) -> None:
    """Mark FAILED the logged models of ``run_id`` still PENDING: a process killed inside
    ``log_model`` leaves its LoggedModel PENDING, which the UI shows as in progress forever."""
    # MLflow 3.17's store does not match ``status = 'PENDING'`` in a filter (it stores an
    # enum number), so the status is checked here.
    logged = mlflow_client.search_logged_models(
        [experiment], filter_string=f"source_run_id = '{run_id}'"
    )
    for model in logged:
        if str(model.status) == "PENDING":
            log.warning(
                "logged model %s of run %s was left PENDING; marking it FAILED",
                model.model_id,
                run_id,
            )
            mlflow_client.finalize_logged_model(model.model_id, "FAILED")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
