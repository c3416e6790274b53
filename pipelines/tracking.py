"""The one MLflow run of a pipeline execution, shared by stages that run as separate processes.

Which run is "this execution's" run, in order:

1. ``$PIPELINE_RUN_ID`` (any string the caller chooses), or Airflow's ``dag_id``/``run_id``
   (``AIRFLOW_CTX_*``, set for every task): the run tagged ``pipeline.lineage_id`` with that
   value, found by a search, so tasks on different workers share it without a shared disk;
2. otherwise (a plain ``dvc repro``), the run named in ``mlflow/lineage.json``, as long as it
   has not finished; register finishes it and clears the file, so the next execution starts
   a new run, while a retry after a failure continues the same one.

Stages do not import MLflow while they succeed (its import alone costs seconds): each leaves
its report and DVC metrics file, and register logs all of them into the run. A stage that
fails records its error, and its reports, into the same run and marks it FAILED (KILLED when
it was interrupted). A process killed outright cannot do that, so opening the run also marks
RUNNING runs of this host whose process is gone as KILLED.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipelines import paths
from pipelines.errors import PipelineError, brief
from pipelines.io import write_json_atomic

log = logging.getLogger(__name__)

LINEAGE_TAG = "pipeline.lineage_id"
HOST_TAG = "pipeline.host"
PID_TAG = "pipeline.pid"
LINEAGE_POINTER = paths.MLFLOW_DIR / "lineage.json"
DEFAULT_EXPERIMENT = "retraining"
MLFLOW_DEFAULTS = {
    # A stopped tracking server must fail the stage in seconds, not after MLflow's default
    # seven retries with exponential backoff (minutes).
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # Our pyfunc is logged as code and Keras loads with safe_mode: nothing needs unpickling,
    # so a tampered artifact cannot run code through pickle either.
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
}
# Artifacts a failing stage leaves for the user to read, logged with its error.
FAILURE_ARTIFACTS = {
    "validate": [paths.VALIDATE_REPORT, paths.FAILED_DATA_DOCS],
}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", paths.MLFLOW_DEFAULT_URI)


def redacted(uri: str) -> str:
    """The URI without a password, fit for logs, metrics files and tags."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def lineage_id() -> str | None:
    if os.environ.get("PIPELINE_RUN_ID"):
        return os.environ["PIPELINE_RUN_ID"]
    dag, run = os.environ.get("AIRFLOW_CTX_DAG_ID"), os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
    if dag and run:
        return f"airflow:{dag}/{run}"
    return None


def client():
    """An MlflowClient on the configured store (the embedded sqlite store by default)."""
    for key, value in MLFLOW_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow
    from mlflow import MlflowClient

    if tracking_uri() == paths.MLFLOW_DEFAULT_URI:
        paths.MLFLOW_DIR.mkdir(exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


def experiment_id(mlflow_client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return mlflow_client.create_experiment(name, artifact_location=_local_artifacts())
    except MlflowException as exc:
        raise PipelineError(
            f"MLflow at {redacted(tracking_uri())} (MLFLOW_TRACKING_URI) is unreachable or failing: "
            f"{brief(exc)}"
        ) from exc


def open_lineage_run(mlflow_client, experiment: str, run_name: str) -> str:
    """The id of this execution's run, created if there is none yet; see the module doc."""
    reap_dead_runs(mlflow_client, experiment)
    key = lineage_id()
    run_id = (
        _find_by_lineage(mlflow_client, experiment, key) if key else _pointed_run(mlflow_client)
    )
    if run_id is None:
        key = key or f"local:{uuid.uuid4().hex}"
        run = mlflow_client.create_run(experiment, run_name=run_name, tags={LINEAGE_TAG: key})
        run_id = run.info.run_id
        log.info("MLflow run %s opened for lineage %s", run_id, key)
    else:
        log.info("continuing MLflow run %s of this pipeline execution", run_id)
        mlflow_client.update_run(run_id, status="RUNNING")
    if lineage_id() is None:
        write_json_atomic(
            {"tracking_uri": redacted(tracking_uri()), "run_id": run_id}, LINEAGE_POINTER
        )
    mlflow_client.set_tag(run_id, HOST_TAG, socket.gethostname())
    mlflow_client.set_tag(run_id, PID_TAG, str(os.getpid()))
    return run_id


def close_lineage_run(mlflow_client, run_id: str, status: str) -> None:
    """End the run; a finished execution clears the pointer so the next one starts afresh."""
    mlflow_client.set_terminated(run_id, status=status)
    if status == "FINISHED" and _pointer_run_id() == run_id:
        LINEAGE_POINTER.unlink(missing_ok=True)


def reap_dead_runs(mlflow_client, experiment: str) -> None:
    """Mark KILLED the RUNNING runs whose stage process on this host no longer exists."""
    host = socket.gethostname()
    runs = mlflow_client.search_runs(
        [experiment],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=50,
    )
    for run in runs:
        pid = int(run.data.tags.get(PID_TAG, "0") or 0)
        if pid and pid != os.getpid() and not _alive(pid):
            log.warning(
                "MLflow run %s: its process %d is gone; marking it KILLED", run.info.run_id, pid
            )
            mlflow_client.set_tag(run.info.run_id, "pipeline.killed", f"process {pid} disappeared")
            mlflow_client.set_terminated(run.info.run_id, status="KILLED")


def record_failure(stage: str, reason: str, interrupted: bool) -> None:
    """Log a stage's failure into this execution's run. Never raises: the stage's own error
    is what the user must see, so a tracking problem here is only a warning."""
    try:
        mlflow_client = client()
        experiment = experiment_id(mlflow_client, _experiment_name())
        run_id = open_lineage_run(mlflow_client, experiment, run_name="retrain")
        mlflow_client.set_tag(run_id, f"stage.{stage}", "killed" if interrupted else "failed")
        mlflow_client.set_tag(run_id, f"stage.{stage}.error", reason[:4000])
        for artifact in FAILURE_ARTIFACTS.get(stage, []):
            if artifact.is_dir():
                mlflow_client.log_artifacts(run_id, str(artifact), f"failed/{artifact.name}")
            elif artifact.exists():
                mlflow_client.log_artifact(run_id, str(artifact), "failed")
        mlflow_client.set_terminated(run_id, status="KILLED" if interrupted else "FAILED")
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("could not record the failure of %s in MLflow: %s", stage, exc)


def _local_artifacts() -> str | None:
    """For a sqlite store, artifacts next to the database (MLflow's default is ./mlruns under
    the working directory, which for a queued DVC experiment is a temporary copy)."""
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None  # a server decides where artifacts go
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent / paths.MLFLOW_ARTIFACTS.name).resolve().as_uri()


def _experiment_name() -> str:
    from pipelines.config import load_params

    try:
        return load_params().register_.experiment_name
    except PipelineError:
        return DEFAULT_EXPERIMENT


def _find_by_lineage(mlflow_client, experiment: str, key: str) -> str | None:
    runs = mlflow_client.search_runs(
        [experiment], filter_string=f"tags.`{LINEAGE_TAG}` = '{key}'", max_results=1
    )
    return runs[0].info.run_id if runs else None


def _pointer_run_id() -> str | None:
    if not LINEAGE_POINTER.exists():
        return None
    try:
        pointer = json.loads(LINEAGE_POINTER.read_text())
    except (OSError, ValueError):
        return None
    if pointer.get("tracking_uri") != redacted(tracking_uri()):
        return None
    return pointer.get("run_id")


def _pointed_run(mlflow_client) -> str | None:
    from mlflow.exceptions import MlflowException

    run_id = _pointer_run_id()
    if run_id is None:
        return None
    try:
        run = mlflow_client.get_run(run_id)
    except MlflowException:
        return None
    return None if run.info.status == "FINISHED" else run_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
