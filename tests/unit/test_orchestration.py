"""The logic behind the Airflow DAG's tasks, on tiny inputs (the DAG itself: tests/dags)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines import orchestration
from pipelines.errors import PipelineError
from pipelines.sources import list_partitions
from pipelines.validate import validate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def airflow_home(tmp_path_factory, monkeypatch):
    """Airflow writes its config into AIRFLOW_HOME on first import: keep it out of ~."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path_factory.getbasetemp() / "airflow_home"))


def test_changed_partitions_sees_added_rewritten_and_removed():
    processed = {"a.parquet": "1", "b.parquet": "2", "c.parquet": "3"}
    current = {"a.parquet": "1", "b.parquet": "2b", "d.parquet": "4"}
    assert orchestration.changed_partitions(current, processed) == [
        "b.parquet",
        "c.parquet",
        "d.parquet",
    ]
    assert orchestration.changed_partitions(processed, processed) == []
    assert orchestration.changed_partitions(current, {}) == sorted(current)


def test_list_partitions_stamps_change_when_a_file_is_rewritten(tmp_path):
    (tmp_path / "day=1.csv").write_text("x,y\n1,0\n")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "notes.txt").write_text("not data")
    first = list_partitions(str(tmp_path), "auto")
    assert list(first) == [str(tmp_path / "day=1.csv")]
    (tmp_path / "day=1.csv").write_text("x,y\n1,0\n2,1\n")
    (tmp_path / "day=2.parquet").write_bytes(b"PAR1")
    second = list_partitions(str(tmp_path), "auto")
    assert orchestration.changed_partitions(second, first) == sorted(second)
    with pytest.raises(PipelineError, match="data.source"):
        list_partitions(str(tmp_path / "missing"), "auto")


def test_merge_lock_overlays_upstream_entries_and_keeps_the_rest(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"train": {"cmd": "old"}}}))
    orchestration.merge_lock(lock, {"ingest": {"cmd": "new"}})
    assert yaml.safe_load(lock.read_text())["stages"] == {
        "train": {"cmd": "old"},
        "ingest": {"cmd": "new"},
    }
    fresh = tmp_path / "fresh" / "dvc.lock"
    fresh.parent.mkdir()
    orchestration.merge_lock(fresh, {"ingest": {"cmd": "x"}})
    assert yaml.safe_load(fresh.read_text()) == {
        "schema": "2.0",
        "stages": {"ingest": {"cmd": "x"}},
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.lock", "fresh"]


def test_only_upstream_stages_this_checkout_lacks_are_pulled(tmp_path):
    produced = {"cmd": "a", "outs": [{"path": "data/a.parquet", "md5": "1"}]}
    other_worker = {"cmd": "b", "outs": [{"path": "data/b.parquet", "md5": "2"}]}
    missing = {"cmd": "c", "outs": [{"path": "data/c.parquet", "md5": "3"}]}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.parquet").write_bytes(b"a")
    (tmp_path / "data" / "b.parquet").write_bytes(b"old b")
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "a": produced,
                    "b": other_worker | {"outs": [{"path": "data/b.parquet", "md5": "0"}]},
                    "c": missing,
                }
            }
        )
    )
    upstream = {"a": produced, "b": other_worker, "c": missing}
    assert orchestration.stale_upstream(lock, upstream, tmp_path) == ["b", "c"]
    assert orchestration.stale_upstream(tmp_path / "none.lock", upstream, tmp_path) == [
        "a",
        "b",
        "c",
    ]


def test_a_critical_validation_failure_is_recognised_as_data_rejection(
    frame, schema, validate_params, tmp_path
):
    broken = frame.assign(label=frame["label"].where(frame.index % 7 != 0, 5))
    with pytest.raises(PipelineError) as failure:
        validate(broken, schema, validate_params, tmp_path / "docs", None, None)
    reason = f"ERROR [validate] {failure.value}"
    assert orchestration.is_data_rejection("validate", reason)
    assert not orchestration.is_data_rejection("train", reason)
    assert not orchestration.is_data_rejection("validate", "ERROR [validate] interrupted")


def test_reproduce_stage_reports_the_stages_own_error_line(tmp_path, monkeypatch):
    # A stand-in for `python -m pipelines.orchestration dvc ...` whose stage fails.
    failing = tmp_path / "bin" / "python"
    failing.parent.mkdir()
    failing.write_text(
        "#!/bin/sh\necho 'Running stage'\necho 'ERROR [split] data.target: no column label' >&2\n"
        "echo \"ERROR: failed to reproduce 'split'\" >&2\nexit 1\n"
    )
    failing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(failing))
    with pytest.raises(orchestration.StageFailed) as failure:
        orchestration.reproduce_stage("split", {}, tmp_path, dict(os.environ), sync=False)
    assert failure.value.reason == "ERROR [split] data.target: no column label"


def test_the_dvc_commands_of_a_task_run_in_one_process_and_stop_at_a_failure(tmp_path):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n"
    )
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    commands = [["repro", "--single-item", "hello"], ["repro", "nosuch"], ["status"]]
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.orchestration", "dvc", json.dumps(commands)],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert (
        "$ dvc repro --single-item hello" in done.stdout and "Running stage 'hello'" in done.stdout
    )
    assert "$ dvc repro nosuch" in done.stdout and "$ dvc status" not in done.stdout
    assert "nosuch" in done.stderr and (tmp_path / "out.txt").read_text() == "hi\n"


def test_stage_report_reads_the_stage_report(tmp_path):
    (tmp_path / "data" / "reports").mkdir(parents=True)
    (tmp_path / "data" / "reports" / "register.json").write_text('{"promoted": false}')
    assert orchestration.stage_report(tmp_path, "register") == {"promoted": False}
    assert orchestration.stage_report(tmp_path, "quantize") == {}


def test_stage_environment_takes_mlflow_and_s3_settings_from_airflow_connections(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-worker")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///worker.db")
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETRAIN_S3",
        '{"conn_type": "aws", "login": "key-id", "password": "secret-key",'
        ' "extra": {"endpoint_url": "http://127.0.0.1:8333", "region_name": "eu-west-1"}}',
    )
    monkeypatch.setenv("AIRFLOW_CONN_RETRAIN_MLFLOW", "https://bot:pa55word@mlflow.internal:443/")
    env = orchestration.stage_environment("retrain", "scheduled__2026-11-23")
    assert env["PIPELINE_RUN_ID"] == "airflow:retrain/scheduled__2026-11-23"
    assert env["AWS_ACCESS_KEY_ID"] == "key-id" and env["AWS_SECRET_ACCESS_KEY"] == "secret-key"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.internal:443"
    assert (
        env["MLFLOW_TRACKING_USERNAME"] == "bot" and env["MLFLOW_TRACKING_PASSWORD"] == "pa55word"
    )


def test_stage_environment_without_connections_keeps_the_workers_settings(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_RETRAIN_S3", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_RETRAIN_MLFLOW", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    env = orchestration.stage_environment("retrain", "manual__1")
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    assert env["PYTHONUNBUFFERED"] == "1"  # the task log follows DVC's progress live


def test_stage_environment_keeps_airflows_settings_and_other_secrets_in_the_worker(monkeypatch):
    kept_out = {
        "AIRFLOW__CORE__FERNET_KEY": "fernet-canary",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:db-canary@postgres/airflow",
        "AIRFLOW__CELERY__BROKER_URL": "redis://:redis-canary@redis:6379/0",
        "AIRFLOW_CONN_SOMETHING_ELSE": "postgresql://u:conn-canary@h/db",
        "AIRFLOW_VAR_API_KEY": "var-canary",
        "MLFLOW_ADMIN_PASSWORD": "admin-canary",
        "GITHUB_TOKEN": "token-canary",
    }
    passed = {
        "MLFLOW_TRACKING_PASSWORD": "pipeline-user-pw",
        "AWS_SECRET_ACCESS_KEY": "s3-secret",
        "PIPELINE_PII_KEY": "pii-key",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "HOME": "/home/retrain",
    }
    for name, value in (kept_out | passed).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AIRFLOW_CONN_RETRAIN_S3", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_RETRAIN_MLFLOW", raising=False)
    env = orchestration.stage_environment("retrain", "manual__1")
    assert not set(kept_out) & set(env)
    assert not any("canary" in value for value in env.values())
    assert {name: env[name] for name in passed} == passed
