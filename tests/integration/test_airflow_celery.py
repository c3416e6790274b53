"""The retrain DAG executed by a real CeleryExecutor cluster.

A scheduler, dag-processor, api-server and Celery worker on the local PostgreSQL and Redis
execute one triggered run. Its checkout holds no pipeline outputs and no DVC cache: every task
pulls its inputs from, and pushes its outputs to, an S3 DVC remote (SeaweedFS) whose
credentials come from an Airflow connection. A stricter gate param makes register run again,
and the run ends successfully through ``champion_kept``. (Its own module, so that it runs
beside the `airflow dags test` scenarios of test_airflow_dag.py, on the other worker.)
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.integration.conftest import REPO, copy_with_outputs
from tests.integration.services import AirflowCluster, s3_client, s3_env, seaweedfs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
MODEL = yaml.safe_load((REPO / "params.yaml").read_text())["register"]["model_name"]


def test_celery_executor_runs_the_dag_with_data_moving_through_s3(pipeline_repo, tmp_path):
    source = pipeline_repo[0]
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
            # The monitor DAG (same folder) would otherwise start its daily run at once and
            # take the one worker slot between the retrain's tasks.
            MONITOR_SCHEDULE="none",
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
    assert len(versions) == 2  # the pipeline's champion, and this one
    newest = max(versions, key=lambda v: int(v.version))
    assert newest.tags["gate_decision"] == "challenger"
    assert (copy.root / "data" / "models" / "model.tflite").exists()  # pulled from S3
