"""What the Airflow ``retrain`` DAG's tasks do; ``dags/retrain.py`` only wires them.

- **New data.** The source's partition listing (names and version stamps, no contents) is
  compared with the listing the last completed run recorded in an Airflow Variable, which
  every worker can read. Nothing new: the run skips everything after the check.
- **One stage per task.** A task runs ``dvc repro --single-item <stage>`` in the project
  checkout, the same entry point as a local ``dvc repro``. Tasks may land on different
  workers (Celery, Kubernetes), so nothing relies on a shared disk: the upstream stages'
  ``dvc.lock`` entries travel as the task's XCom (a few KB), the data through the DVC remote.
  A task writes those entries into its checkout's ``dvc.lock``, pulls the upstream outputs,
  reproduces its stage and pushes the stage's outputs. Running a task twice gives the same
  outputs: DVC reruns a stage only when its inputs changed, and every output is written
  atomically.
- **Settings.** The MLflow URI and S3 credentials come from the Airflow connections
  ``retrain_mlflow`` and ``retrain_s3`` when they exist, else from the worker's environment;
  never from DAG code or ``params.yaml``.
- **Alerts.** A failed task logs one ``ALERT`` line and, when the connection
  ``retrain_alerts`` exists, POSTs the same facts as JSON to it (a Slack-style webhook).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

import yaml

from pipelines import paths
from pipelines.errors import PipelineError, brief
from pipelines.io import write_text_atomic

log = logging.getLogger(__name__)

MLFLOW_CONNECTION = "retrain_mlflow"
S3_CONNECTION = "retrain_s3"
ALERT_CONNECTION = "retrain_alerts"
# Validate's message for a critical failure ("... failed N critical check(s): ..."): bad data
# that a retry cannot fix, so the task fails at once instead of retrying.
DATA_REJECTED_MARKER = "critical check"
ERROR_TAIL_LINES = 40


class StageFailed(PipelineError):
    """``dvc repro`` of a stage failed; ``reason`` is the stage's own one-line error."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"stage {stage} failed: {reason}")
        self.stage = stage
        self.reason = reason


def state_variable(dag_id: str) -> str:
    """The Airflow Variable that holds the partition listing the last completed run used."""
    return f"{dag_id}.processed_partitions"


def last_processed(dag_id: str) -> dict:
    """What the last completed run of ``dag_id`` recorded: ``partitions`` (its listing) and
    ``run_id``; empty before the first."""
    from airflow.sdk import Variable

    return Variable.get(state_variable(dag_id), default={}, deserialize_json=True)


def record_processed(dag_id: str, run_id: str, partitions: dict[str, str]) -> None:
    """Record the listing this run of ``dag_id`` used, so that its next run starts from it."""
    from airflow.sdk import Variable

    Variable.set(
        state_variable(dag_id), {"partitions": partitions, "run_id": run_id}, serialize_json=True
    )


def changed_partitions(current: dict[str, str], processed: dict[str, str]) -> list[str]:
    """Partitions added, rewritten or removed since the processed listing."""
    return sorted(
        name
        for name in current.keys() | processed.keys()
        if current.get(name) != processed.get(name)
    )


def list_source_partitions(project: Path, env: dict[str, str]) -> dict[str, str]:
    """The project's ``data.source`` listing, read in a subprocess of the project checkout so
    that the source and the S3 settings are exactly what the ingest stage will see."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.orchestration", "partitions"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise PipelineError(_error_line(done.stderr.splitlines()) or done.stderr[-2000:])
    return json.loads(done.stdout)


# Secrets a stage does need: MLflow and S3 credentials, and the PII pseudonym key.
STAGE_SECRETS = frozenset(
    {
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "PIPELINE_PII_KEY",
        "PIPELINE_PII_SALT",
    }
)
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "FERNET", "PRIVATE_KEY", "CREDENTIAL")


def passes_to_stage(name: str) -> bool:
    """Whether a worker's variable reaches a stage process. Airflow's configuration
    (``AIRFLOW__*``: the Fernet key, the metadata DB's and the broker's URLs with their
    passwords, the API's secret keys), its connections and variables, and any other variable
    named like a secret stay in the worker: a stage's code, or a model it loads, never sees
    them."""
    upper = name.upper()
    if upper.startswith(("AIRFLOW", "_AIRFLOW")):
        return False
    return upper in STAGE_SECRETS or not any(word in upper for word in _SECRET_WORDS)


def stage_environment(
    dag_id: str, run_id: str, conf: dict[str, Any] | None = None
) -> dict[str, str]:
    """The environment of a stage process: the worker's less Airflow's own settings and
    secrets (:func:`passes_to_stage`), the settings from the Airflow
    connections over it, the lineage id that ties every task of this DAG run to one MLflow
    run, and why the run was started when the monitor DAG triggered it (its ``conf``)."""
    env = {name: value for name, value in os.environ.items() if passes_to_stage(name)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PIPELINE_RUN_ID"] = f"airflow:{dag_id}/{run_id}"
    for key, value in (conf or {}).items():
        if key in ("reason", "decision") and value:
            env[f"PIPELINE_RETRAIN_{key.upper()}"] = str(value)[:4000]
    # DVC's stdout is a pipe to the task: unbuffered, its lines ("Running stage ...") reach
    # the task log as they happen instead of all at once when the task ends.
    env["PYTHONUNBUFFERED"] = "1"
    mlflow = _connection(MLFLOW_CONNECTION)
    if mlflow is not None:
        env["MLFLOW_TRACKING_URI"] = _http_url(mlflow)
        if mlflow.login:
            env["MLFLOW_TRACKING_USERNAME"] = mlflow.login
            env["MLFLOW_TRACKING_PASSWORD"] = mlflow.password or ""
    s3 = _connection(S3_CONNECTION)
    if s3 is not None:
        extra = s3.extra_dejson
        env |= {
            key: value
            for key, value in {
                "AWS_ACCESS_KEY_ID": s3.login,
                "AWS_SECRET_ACCESS_KEY": s3.password,
                "AWS_ENDPOINT_URL": extra.get("endpoint_url"),
                "AWS_DEFAULT_REGION": extra.get("region_name"),
            }.items()
            if value
        }
    return env


def reproduce_stage(
    stage: str, upstream: dict[str, Any], project: Path, env: dict[str, str], sync: bool
) -> dict[str, Any]:
    """Reproduce one stage in ``project``; returns ``{"locks": ..., "report": ...}``.

    ``upstream`` holds the ``dvc.lock`` entries of the stages that ran before it in this DAG
    run. With ``sync`` their outputs are pulled from the DVC remote first and the stage's
    outputs are pushed after, so that the next task can run on another worker. ``metrics``
    is the stage's DVC metrics file (its headline numbers, shown as the task's XCom; the full
    report travels through the DVC remote), so that later tasks need no file from this worker.
    """
    to_pull = stale_upstream(project / "dvc.lock", upstream, project)
    merge_lock(project / "dvc.lock", upstream)
    commands = []
    if sync and to_pull:
        commands.append(["pull", *to_pull])
    # --pull: a stage whose inputs did not change gets its outputs from the remote instead
    # of running again, e.g. on a worker that has never run it.
    commands.append(["repro", "--single-item", "--pull", stage])
    if sync:
        commands.append(["push", stage])
    # One process runs the task's DVC commands in turn: each `dvc` start-up costs about a
    # second on a 2-core worker, paid once per task instead of up to three times.
    _run(
        [sys.executable, "-m", "pipelines.orchestration", "dvc", json.dumps(commands)],
        stage,
        project,
        env,
    )
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {
        "locks": upstream | {stage: lock["stages"][stage]},
        "report": stage_report(project, stage),
    }


def stale_upstream(lock_file: Path, upstream: dict[str, Any], project: Path) -> list[str]:
    """The upstream stages whose outputs this checkout may not hold: its own ``dvc.lock`` has
    another entry for them (another worker ran them), or one of their outputs is missing.
    The others are skipped by the pull, which would only re-hash them (a few seconds a task)."""
    local = yaml.safe_load(lock_file.read_text()) if lock_file.exists() else None
    local_stages = (local or {}).get("stages", {})
    return [
        name
        for name, entry in upstream.items()
        if local_stages.get(name) != entry
        or not all((project / out["path"]).exists() for out in entry.get("outs", []))
    ]


def merge_lock(lock_file: Path, entries: dict[str, Any]) -> None:
    """Write ``entries`` over the stages of ``lock_file``, keeping its other stages."""
    if not entries:
        return
    lock = yaml.safe_load(lock_file.read_text()) if lock_file.exists() else None
    lock = lock or {"schema": "2.0", "stages": {}}
    lock["stages"] |= entries
    write_text_atomic(yaml.safe_dump(lock, sort_keys=False), lock_file)


def is_data_rejection(stage: str, reason: str) -> bool:
    """Whether a failure is validation rejecting the data, which no retry can fix."""
    return stage == "validate" and DATA_REJECTED_MARKER in reason


def stage_report(project: Path, stage: str) -> dict[str, Any]:
    """The stage's report (``data/reports/<stage>.json``), or {} if it has none."""
    report = project / paths.REPORTS / f"{stage}.json"
    return json.loads(report.read_text()) if report.exists() else {}


def alert_on_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of every task: an ALERT log line, plus the webhook if set."""
    ti = context["ti"]
    exception = context.get("exception")
    alert = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "error": brief(exception, 4000) if exception else "unknown",
        "data_rejected": exception is not None and is_data_rejection(ti.task_id, str(exception)),
    }
    log.error("ALERT %s/%s task %s failed: %s", ti.dag_id, ti.run_id, ti.task_id, alert["error"])
    connection = _connection(ALERT_CONNECTION)
    if connection is None:
        return
    request = urllib.request.Request(
        connection.extra_dejson.get("webhook_url") or _http_url(connection),
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except OSError as exc:  # an alert that cannot be delivered must not hide the failure
        log.error("alert webhook %s failed: %s", ALERT_CONNECTION, brief(exc))


def _run(command: list[str], stage: str, project: Path, env: dict[str, str]) -> None:
    """Run ``command``, streaming its output into the task log; raise StageFailed on error."""
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
    with subprocess.Popen(
        command,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            log.info("%s", line)
            tail.append(line)
    if process.returncode != 0:
        raise StageFailed(stage, _error_line(list(tail)) or f"exited with {process.returncode}")


def _error_line(lines: list[str]) -> str:
    """The stage's own ``ERROR [stage] ...`` line, else DVC's last ``ERROR`` line."""
    own = [line for line in lines if line.startswith("ERROR [")]
    other = [line for line in lines if line.startswith("ERROR")]
    return (own or other or [""])[-1]


def _connection(conn_id: str):
    """An Airflow connection, or None when it is not defined."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def _http_url(connection) -> str:
    scheme = "https" if connection.conn_type == "https" else "http"
    port = f":{connection.port}" if connection.port else ""
    path = f"/{connection.schema.lstrip('/')}" if connection.schema else ""
    return f"{scheme}://{connection.host}{port}{path}"


def _print_partitions() -> None:
    from pipelines.config import load_params
    from pipelines.sources import list_partitions

    params = load_params()
    sys.stdout.write(json.dumps(list_partitions(params.data.source, params.ingest.file_format)))


def _run_dvc_commands(commands: list[list[str]]) -> int:
    """Run DVC CLI commands in this process, in order, each shown as ``$ dvc ...`` first;
    stop at the first that fails and return its exit code."""
    from dvc.cli import main as dvc

    for command in commands:
        sys.stdout.write(f"$ dvc {' '.join(command)}\n")
        sys.stdout.flush()
        returncode = dvc(command)
        if returncode != 0:
            return returncode
    return 0


USAGE = """usage: python -m pipelines.orchestration partitions
       python -m pipelines.orchestration dvc '[["repro", "--single-item", "train"], ...]'"""

if __name__ == "__main__":
    from pipelines.stage import run_stage

    match sys.argv[1:]:
        case ["partitions"]:
            run_stage("partitions", _print_partitions, record_failure=False)
        case ["dvc", commands]:
            sys.exit(_run_dvc_commands(json.loads(commands)))
        case _:
            sys.exit(USAGE)
