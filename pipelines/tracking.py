"""The one MLflow run of a pipeline execution, shared by stages that run as separate processes.

Which run is "this execution's" run, in order:

1. ``$PIPELINE_RUN_ID`` (any string the caller chooses), or Airflow's ``dag_id``/``run_id``
   (``AIRFLOW_CTX_*``, set for every task): the run tagged ``pipeline.lineage_id`` with that
   value, found by a search, so tasks on different workers share it without a shared disk;
2. otherwise (a plain ``dvc repro``), the run named in ``mlflow/lineage.json``, as long as it
   has not finished and its lineage (code commit, params hash, data MD5s:
   ``pipelines.lineage.execution_lineage``) is unchanged; register finishes it and clears the
   file, so the next execution starts a new run, while a retry after a failure continues the
   same one. A run whose lineage has changed since (other data, params or code) is closed
   FAILED with a ``pipeline.superseded`` tag naming what changed, and a new run opens: its
   logged params could not be changed anyway.

Stages do not import MLflow while they succeed (its import alone costs seconds): each leaves
its report and DVC metrics file, and register logs all of them into the run. A stage that
fails records its error, and its reports, into the same run and marks it FAILED (an
interrupted one too, tagged ``stage.<name>: killed``: every run ends FINISHED or FAILED). A process killed outright cannot do that, so the next register or
registry command reaps RUNNING runs of this host whose process is gone
(``pipelines.reaper``).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

from pipelines import paths
from pipelines.errors import PipelineError, brief, redact, redact_handlers
from pipelines.io import write_json_atomic
from pipelines.lineage import execution_lineage
from pipelines.reaper import owner_tags, reap_dead_runs

log = logging.getLogger(__name__)

LINEAGE_TAG = "pipeline.lineage_id"
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
    # Its download progress bars are carriage-return lines in a captured log: a dozen per
    # register run under `dvc repro` or Airflow. The stages log their own progress.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# Artifacts a failing stage leaves for the user to read, logged with its error.
# The values record_failure gives a stage's ``stage.<name>`` tag.
FAILED_STAGE_TAGS = ("failed", "killed")
FAILURE_ARTIFACTS = {
    "validate": [paths.VALIDATE_REPORT, paths.FAILED_DATA_DOCS],
}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", paths.MLFLOW_DEFAULT_URI)


def display_uri() -> str:
    """The tracking URI as shown to people (logs, errors, reports, the lineage pointer):
    without its credentials."""
    return redact(tracking_uri())


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
    if display_uri() != tracking_uri():
        # MLflow prints "View run ... at: <tracking URI>" to stdout, password included.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if tracking_uri().startswith("sqlite:///"):
        prepare_sqlite_store(Path(tracking_uri().removeprefix("sqlite:///").split("?")[0]))
    import mlflow
    from mlflow import MlflowClient

    # MLflow's loggers have their own handler, which does not pass through ours.
    redact_handlers(logging.getLogger("mlflow"))
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


def prepare_sqlite_store(database: Path) -> None:
    """Check that a sqlite store can be written, before MLflow fails on it with screens of
    SQLAlchemy tracebacks, and create a new one private (0600): it holds every run's params,
    tags and errors."""
    folder = database.parent
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise PipelineError(
            f"{folder}: cannot create the MLflow store's folder ({exc.strerror})"
        ) from exc
    artifacts = folder / paths.MLFLOW_ARTIFACTS.name
    for path, why in (
        (database, ""),
        (folder, f", and sqlite writes its journal next to {database.name}"),
        (artifacts, " (the run artifacts)"),
    ):
        if path.exists() and not os.access(path, os.W_OK):
            raise PipelineError(
                f"{path}: cannot write (read-only){why}; make it writable by this user, or "
                "point MLFLOW_TRACKING_URI at a tracking server"
            )
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # sqlite keeps the mode of an existing file; an empty file is a new database


def experiment_id(mlflow_client, name: str) -> str:
    """The id of experiment ``name``, created if missing. Two first runs at once both find it
    missing and both create it; the one whose create is refused as a duplicate reads the
    other's, rather than failing the stage."""
    from mlflow.exceptions import MlflowException

    try:
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return mlflow_client.create_experiment(name, artifact_location=_local_artifacts())
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = mlflow_client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id
    except MlflowException as exc:
        raise mlflow_error(exc, f"opening experiment {name!r}") from exc


def mlflow_error(exc: Exception, doing: str) -> PipelineError:
    """The one-line error for an MlflowException raised while ``doing`` something. A refused
    login or permission says so and names the server, rather than passing for a missing
    object or an outage, and so does a value the server refuses (a bad name, say)."""
    status = exc.get_http_status_code() if hasattr(exc, "get_http_status_code") else None
    if status == 401:
        return PipelineError(
            f"MLflow at {display_uri()} refused the credentials (HTTP 401, authentication "
            f"failed) while {doing}: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "to a user of that server"
        )
    if status == 403:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "(anonymous)")
        return PipelineError(
            f"MLflow at {display_uri()} denied permission (HTTP 403) to user {user!r} while "
            f"{doing}: an admin of that server must grant it"
        )
    if getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE":
        return PipelineError(
            f"MLflow at {display_uri()} refused a value while {doing}: {brief(exc)}"
        )
    return PipelineError(
        f"MLflow at {display_uri()} (MLFLOW_TRACKING_URI) is unreachable or failing while "
        f"{doing}: {brief(exc)}"
    )


def open_lineage_run(mlflow_client, experiment: str, run_name: str) -> str:
    """The id of this execution's run, created if there is none yet; see the module doc."""
    reap_dead_runs(mlflow_client, experiment)
    key = lineage_id()
    current = _current_lineage()
    if key:
        run_id = _find_by_lineage(mlflow_client, experiment, key)
    else:
        run_id = _pointed_run(mlflow_client)
        if run_id is not None and (changed := lineage_changes(mlflow_client, run_id, current)):
            supersede(mlflow_client, run_id, changed)
            run_id = None
    if run_id is None:
        key = key or f"local:{uuid.uuid4().hex}"
        tags = {LINEAGE_TAG: key} | current
        run_id = mlflow_client.create_run(experiment, run_name=run_name, tags=tags).info.run_id
        log.info("MLflow run %s opened for lineage %s", run_id, key)
    else:
        log.info("continuing MLflow run %s of this pipeline execution", run_id)
        mlflow_client.update_run(run_id, status="RUNNING")
        for name, value in current.items():
            mlflow_client.set_tag(run_id, name, value)
    if lineage_id() is None:
        write_json_atomic({"tracking_uri": display_uri(), "run_id": run_id}, LINEAGE_POINTER)
    for name, value in owner_tags().items():
        mlflow_client.set_tag(run_id, name, value)
    return run_id


def lineage_changes(mlflow_client, run_id: str, current: dict[str, str]) -> list[str]:
    """The lineage keys whose value differs between the run and this attempt. A run made
    before runs carried their lineage, with params logged already, counts as changed."""
    data = mlflow_client.get_run(run_id).data
    if current and data.params and "params_sha256" not in data.tags:
        return ["params_sha256"]
    return sorted(k for k, v in current.items() if k in data.tags and data.tags[k] != v)


def supersede(mlflow_client, run_id: str, changed: list[str]) -> None:
    """Close an unfinished run that a retry with another lineage cannot continue."""
    reason = "lineage changed since this run's last attempt: " + ", ".join(changed)
    log.warning("MLflow run %s: %s; closing it FAILED and opening a new run", run_id, reason)
    mlflow_client.set_tag(run_id, "pipeline.superseded", reason)
    mlflow_client.set_terminated(run_id, status="FAILED")


def close_lineage_run(mlflow_client, run_id: str, status: str) -> None:
    """End the run; a finished execution clears the pointer so the next one starts afresh."""
    if status == "FINISHED":
        clear_failure_tags(mlflow_client, run_id)
    mlflow_client.set_terminated(run_id, status=status)
    if status == "FINISHED" and _pointer_run_id() == run_id:
        LINEAGE_POINTER.unlink(missing_ok=True)


def clear_failure_tags(mlflow_client, run_id: str) -> None:
    """Delete what ``record_failure`` left from an earlier attempt of this execution: it
    finished, so every stage has succeeded since, and the UI must not show it as failed."""
    for key, value in mlflow_client.get_run(run_id).data.tags.items():
        stale_error = key.startswith("stage.") and key.endswith(".error")
        if stale_error or (key.startswith("stage.") and value in FAILED_STAGE_TAGS):
            log.info("MLflow run %s: clearing %s of an earlier failed attempt", run_id, key)
            mlflow_client.delete_tag(run_id, key)


def end_active_run(status: str) -> None:
    """End the active fluent run as ``status`` on a failure path. Never raises: with the
    server down this fails too, and the stage's own error is what the user must read (the
    next start reaps the run, see ``reap_dead_runs``)."""
    import mlflow

    try:
        mlflow.end_run(status=status)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("could not mark the MLflow run %s: %s", status, brief(exc))


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
        mlflow_client.set_terminated(run_id, status="FAILED")
    except Exception as exc:  # noqa: BLE001 - see the docstring
        if brief(exc, limit=len(reason) + 1) != reason:  # else it is the stage's error already
            log.warning("could not record the failure of %s in MLflow: %s", stage, brief(exc))


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


def _current_lineage() -> dict[str, str]:
    """This attempt's execution lineage; empty when params.yaml cannot be read (the stage's
    own error then says why, and there is nothing to compare)."""
    from pipelines.config import load_params

    try:
        return execution_lineage(load_params())
    except PipelineError:
        return {}


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
    if pointer.get("tracking_uri") != display_uri():
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
