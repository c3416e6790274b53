"""The retrain DAG run by real Airflow: `airflow dags test`, then a CeleryExecutor cluster.

1. ``airflow dags test retrain`` on the tiny configuration, started from the DVC pipeline's
   outputs with a changed train param, retrains and registers a model; run
   again with no new partition, it skips training; with a partition whose label has a third
   value, validate fails once (no retry), nothing downstream runs, the champion stays, and
   the alert webhook gets the failed expectations. A task killed mid-run and retried (run
   twice) ingests each partition once and gives the same outputs.
2. A scheduler, dag-processor, api-server and Celery worker on the local PostgreSQL and Redis
   execute one triggered run. Its checkout holds no pipeline outputs and no DVC cache: every
   task pulls its inputs from, and pushes its outputs to, an S3 DVC remote (SeaweedFS) whose
   credentials come from an Airflow connection. A stricter gate param makes register run
   again, and the run ends successfully through ``champion_kept``.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import (
    LEAN,
    REPO,
    RepoCopy,
    assert_runs_own_code,
    copy_with_outputs,
    make_repo_copy,
    ran_stages,
)
from tests.integration.services import AirflowCluster, s3_client, s3_env, seaweedfs

# Generous: three pipeline runs share one fixture, and a loaded CI machine is slow.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
MODEL = yaml.safe_load((REPO / "params.yaml").read_text())["register"]["model_name"]
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


class AlertInbox(http.server.ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that keeps every JSON body posted to it."""

    def __init__(self):
        self.received: list[dict] = []
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                inbox.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


def airflow_env(copy: RepoCopy, home: Path, **extra: str) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(copy.root / "dags"),
        "RETRAIN_PROJECT_DIR": str(copy.root),
        "PYTHONPATH": str(copy.root),
        **extra,
    }


def dags_test(copy: RepoCopy, env: dict[str, str]):
    return copy.run(
        str(Path(sys.executable).parent / "airflow"), "dags", "test", "retrain", env_extra=env
    )


@pytest.fixture(scope="module")
def trained(pipeline_repo, tmp_path_factory):
    """A repo copy after its first `airflow dags test` run, and what that run printed.

    The copy starts from the DVC pipeline's outputs, with no registry and a changed train
    param: the run executes every task, and DVC reruns tune, train and what follows (the stages
    before train run under Airflow in the bad-data test). The tests below share it in file
    order: the bad-data test, which adds a partition, last."""
    root = tmp_path_factory.mktemp("airflow_dags_test")
    copy = copy_with_outputs(pipeline_repo[0], root / "repo", registry=False)
    # The stages' own features have their tests; these runs are about the orchestration.
    copy.set_params(LEAN | {"train": {"epochs": 3}})
    inbox = AlertInbox()
    # One process on one disk: the DVC-remote round trip is the Celery test's subject.
    env = airflow_env(
        copy, root / "airflow", AIRFLOW_CONN_RETRAIN_ALERTS=inbox.url, RETRAIN_DVC_SYNC="off"
    )
    assert_runs_own_code(copy, cwd=root, env_extra=env)  # through PYTHONPATH, not the cwd
    copy.run(
        str(Path(sys.executable).parent / "airflow"), "db", "migrate", env_extra=env, check=True
    )
    yield copy, env, dags_test(copy, env), inbox
    inbox.shutdown()


def test_dags_test_trains_and_registers_a_model(trained):
    copy, _, run, inbox = trained
    assert run.returncode == 0, run.output[-6000:]
    assert "state=success" in run.output
    # tune reads train's params (it copies them into tuned.json when it does not search); its
    # output unchanged, rebalance and augment do not rerun.
    assert ran_stages(_stage_lines(run.output)) == ["tune", *STAGES[STAGES.index("train") :]]
    (version,) = copy.registered_versions(MODEL)
    client = copy.mlflow_client()
    assert client.get_model_version_by_alias(MODEL, "champion").version == version.version
    run_tags = client.get_run(version.run_id).data.tags
    assert run_tags["pipeline.lineage_id"].startswith("airflow:retrain/manual__")
    assert "promoted to @champion" in run_tags["mlflow.note.content"]
    assert inbox.received == []


def test_a_run_without_new_partitions_skips_training(trained):
    copy, env, _, _ = trained
    quiet = dags_test(copy, env)
    assert quiet.returncode == 0, quiet.output[-6000:]
    assert "0 new or changed" in quiet.output and "nothing to retrain" in quiet.output
    assert ran_stages(_stage_lines(quiet.output)) == []
    assert "$ dvc repro" not in quiet.output
    assert len(copy.registered_versions(MODEL)) == 1


def _stage_lines(output: str) -> str:
    """DVC's "Running stage" lines, out of Airflow's structured task log lines."""
    marker = "Running stage '"
    return "\n".join(line[line.index(marker) :] for line in output.splitlines() if marker in line)


def test_celery_executor_runs_the_dag_with_data_moving_through_s3(trained, tmp_path):
    source = trained[0]
    copy = copy_with_outputs(source, tmp_path / "repo")
    # A worker that has never run the pipeline: no outputs, no DVC cache, only dvc.lock.
    with seaweedfs(tmp_path / "seaweedfs") as endpoint:
        s3_client(endpoint).create_bucket(Bucket="dvc")
        copy.dvc("remote", "add", "--local", "--default", "storage", "s3://dvc/store", check=True)
        copy.dvc("push", check=True, env_extra=s3_env(endpoint))
        landing = copy.root / "data" / "landing"
        shutil.move(landing, tmp_path / "landing")
        shutil.rmtree(copy.root / "data")
        shutil.rmtree(copy.root / ".dvc" / "cache")
        (copy.root / "data").mkdir()
        shutil.move(tmp_path / "landing", landing)
        shutil.copytree(source.root / "data" / "schemas", copy.root / "data" / "schemas")
        shutil.copy2(source.root / "params.yaml", copy.root / "params.yaml")
        copy.set_params({"register": copy.params()["register"] | {"min_delta": 0.5}})
        connection = {
            "conn_type": "aws",
            "login": s3_env(endpoint)["AWS_ACCESS_KEY_ID"],
            "password": s3_env(endpoint)["AWS_SECRET_ACCESS_KEY"],
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        cluster = AirflowCluster(
            tmp_path / "airflow",
            copy.root / "dags",
            RETRAIN_PROJECT_DIR=str(copy.root),
            RETRAIN_SCHEDULE="none",
            PYTHONPATH=str(copy.root),
            AIRFLOW_CONN_RETRAIN_S3=json.dumps(connection),
        )
        try:
            cluster.start()
            cluster.trigger("retrain", "celery-1")
            state = cluster.wait_for_run("retrain", "celery-1", timeout=900)
            tasks = cluster.task_states("retrain", "celery-1")
            logs = cluster.logs()
        finally:
            cluster.stop()
    assert state == "success", f"{tasks}\n{logs}"
    assert tasks["champion_kept"] == "success" and tasks["promoted"] == "skipped", tasks
    assert all(tasks[stage] == "success" for stage in ("ingest", "train", "register")), tasks
    versions = copy.registered_versions(MODEL)
    assert len(versions) == 2
    newest = max(versions, key=lambda v: int(v.version))
    assert newest.tags["gate_decision"] == "challenger"
    assert (copy.root / "data" / "models" / "model.tflite").exists()  # pulled from S3


def test_bad_data_stops_at_validate_alerts_and_keeps_the_champion(trained):
    copy, env, _, inbox = trained
    landing = copy.root / "data" / "landing"
    first = pd.read_parquet(sorted(landing.glob("*.parquet"))[0])
    first["is_fraud"] = first["is_fraud"].where(first.index % 5 != 0, 7)
    first.to_parquet(landing / "transactions_2099-01-01.parquet", index=False)
    champion = copy.mlflow_client().get_model_version_by_alias(MODEL, "champion").version

    bad = dags_test(copy, env)

    assert "state=failed" in bad.output, bad.output[-6000:]
    assert ran_stages(_stage_lines(bad.output)) == ["ingest", "validate"]
    (alert,) = inbox.received  # one alert: a data rejection is not retried
    assert alert["task_id"] == "validate" and alert["data_rejected"] is True
    assert alert["try_number"] == 1
    assert "critical check" in alert["error"] and "is_fraud" in alert["error"]
    assert len(copy.registered_versions(MODEL)) == 1
    assert copy.mlflow_client().get_model_version_by_alias(MODEL, "champion").version == champion


def test_a_task_killed_mid_run_then_retried_ingests_each_partition_once(tmp_path):
    """The ingest task's command, SIGKILLed while it runs, then the task run twice."""
    from pipelines.orchestration import reproduce_stage

    copy = make_repo_copy(tmp_path / "repo")
    copy.python("-m", "pipelines.simulate", "--if-empty", check=True)
    rows = sum(len(pd.read_parquet(p)) for p in (copy.root / "data" / "landing").glob("*.parquet"))
    command = json.dumps([["repro", "--single-item", "ingest"]])
    task = subprocess.Popen(
        [sys.executable, "-m", "pipelines.orchestration", "dvc", command],
        cwd=copy.root,
        env=copy.env({"PYTHONUNBUFFERED": "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Killed on the stage's own first log line, not after a fixed sleep: a small ingest can
    # finish, and DVC commit it, within any sleep long enough to be safe on a busy machine.
    for line in task.stdout:
        if "reading" in line and "file(s) from" in line:
            os.killpg(task.pid, signal.SIGKILL)
            break
    task.wait(timeout=60)
    assert task.returncode == -signal.SIGKILL

    snapshot = copy.root / "data" / "raw" / "snapshot.parquet"
    first = reproduce_stage("ingest", {}, copy.root, copy.env(), sync=False)
    assert len(pd.read_parquet(snapshot)) == rows
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    second = reproduce_stage("ingest", {}, copy.root, copy.env(), sync=False)
    assert second == first
    assert hashlib.sha256(snapshot.read_bytes()).hexdigest() == digest
    assert len(pd.read_parquet(snapshot)) == rows
