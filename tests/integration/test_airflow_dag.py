"""The retrain and monitor DAGs run by real Airflow under `airflow dags test`.

The monitoring loop, from the DVC pipeline's outputs and registry (its champion carries
the monitoring reference register logged): ``airflow dags test monitor`` on one more
ordinary simulated day judges it ``ok`` and triggers nothing; on a day far along the
simulator's drift it judges ``drift`` and queues a ``retrain`` run whose conf holds the
decision and reason. That queued run is then executed as the scheduler would, with its
conf (``airflow dags test retrain -c``): it ingests the two new days, retrains, registers
a version gated against the champion, and records why on its MLflow run. Run again with
no new partition, it skips training; with a partition whose label has a third value,
validate fails once (no retry), nothing downstream runs, the champion stays, and the alert
webhook gets the failed expectations. A task killed mid-run and retried (run twice)
ingests each partition once and gives the same outputs.

The same DAG on a Celery cluster is tests/integration/test_airflow_celery.py.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.orchestration import list_source_partitions, state_variable
from tests.integration.conftest import (
    LEAN,
    REPO,
    RepoCopy,
    Run,
    assert_runs_own_code,
    copy_with_outputs,
    make_repo_copy,
    ran_stages,
)

# Generous: three pipeline runs share one fixture, and a loaded CI machine is slow.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
MODEL = yaml.safe_load((REPO / "params.yaml").read_text())["register"]["model_name"]
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
AIRFLOW = str(Path(sys.executable).parent / "airflow")


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


def dags_test(copy: RepoCopy, env: dict[str, str], dag: str = "retrain", *options: str):
    return copy.run(AIRFLOW, "dags", "test", *options, dag, env_extra=env)


@dataclass
class Loop:
    ok: dict  # the monitor report of the ordinary day
    retrain_runs_after_ok: list
    drifted: dict  # the monitor report of the drifted day
    queued: list  # retrain runs the drifted day's monitor run queued: (run_id, conf)
    retrain: Run  # the queued run, executed


def monitor_once(copy: RepoCopy, env: dict[str, str]) -> dict:
    run = dags_test(copy, env, "monitor")
    assert run.returncode == 0 and "state=success" in run.output, run.output[-6000:]
    return json.loads((copy.root / "data" / "monitor" / "report.json").read_text())


def retrain_runs(database: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(database) as db:
        rows = db.execute("select run_id, conf from dag_run where dag_id = 'retrain'").fetchall()
    return [(run_id, json.loads(conf) if conf else {}) for run_id, conf in rows]


@pytest.fixture(scope="module")
def trained(pipeline_repo, tmp_path_factory):
    """A repo copy after the monitoring loop (see the module doc), its Airflow environment,
    what the loop recorded, and the alert inbox.

    The tests below share it in file order: the bad-data test, which adds a partition, last."""
    root = tmp_path_factory.mktemp("airflow_dags_test")
    copy = copy_with_outputs(pipeline_repo[0], root / "repo")
    # The stages' own features have their tests; these runs are about the orchestration. The
    # tiny test split (about 25 positives) records noisy test metrics: quality is judged and
    # reported, but the loop is about drift and the trigger, so no drop degrades.
    copy.set_params(LEAN | {"monitor": {"max_pr_auc_drop": 1.0, "max_recall_drop": 1.0}})
    inbox = AlertInbox()
    # One process on one disk: the DVC-remote round trip is the Celery test's subject.
    env = airflow_env(
        copy,
        root / "airflow",
        AIRFLOW_CONN_RETRAIN_ALERTS=inbox.url,
        RETRAIN_DVC_SYNC="off",
        RETRAIN_SCHEDULE="none",
        MONITOR_SCHEDULE="none",
    )
    assert_runs_own_code(copy, cwd=root, env_extra=env)  # through PYTHONPATH, not the cwd
    copy.run(AIRFLOW, "db", "migrate", env_extra=env, check=True)
    # The training days count as monitored already, so each run scores only its new day
    # (scoring loads TensorFlow once per partition).
    listing = {"partitions": list_source_partitions(copy.root, copy.env()), "run_id": "seeded"}
    variable = state_variable("monitor")
    copy.run(AIRFLOW, "variables", "set", variable, json.dumps(listing), env_extra=env, check=True)
    database = root / "airflow" / "airflow.db"

    copy.python("-m", "pipelines.simulate", "--first-day", "3", "--days", "1", check=True)
    ok = monitor_once(copy, env)
    after_ok = retrain_runs(database)
    copy.python("-m", "pipelines.simulate", "--first-day", "150", "--days", "1", check=True)
    drifted = monitor_once(copy, env)
    queued = retrain_runs(database)
    conf = queued[0][1] if queued else {}
    retrain = dags_test(copy, env, "retrain", "--conf", json.dumps(conf))
    yield copy, env, Loop(ok, after_ok, drifted, queued, retrain), inbox
    inbox.shutdown()


def test_an_ok_window_triggers_nothing_and_a_drifted_one_queues_retrain(trained):
    copy, _, loop, _ = trained
    assert loop.ok["decision"] == "ok", loop.ok["reason"]
    assert 1000 < loop.ok["rows"] < 2000 and "drift" not in loop.ok["not_judged"]  # one day
    assert loop.retrain_runs_after_ok == []
    assert loop.drifted["decision"] == "drift", loop.drifted["reason"]
    assert 1000 < loop.drifted["rows"] < 2000  # only the new day: the ok run's is recorded
    assert "column 'amount' PSI" in loop.drifted["reason"]
    ((run_id, conf),) = loop.queued
    assert run_id.startswith("monitor__manual__")
    assert conf == {"decision": "drift", "reason": loop.drifted["reason"]}
    client = copy.mlflow_client()
    experiment = client.get_experiment_by_name(f"{MODEL}-monitoring")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    assert [r.data.tags["decision"] for r in runs] == ["ok", "drift"]
    assert runs[-1].data.tags["pipeline.lineage_id"].startswith("airflow:monitor/manual__")


def test_the_triggered_retrain_trains_registers_and_records_why(trained):
    copy, _, loop, inbox = trained
    run = loop.retrain
    assert run.returncode == 0, run.output[-6000:]
    assert "state=success" in run.output
    assert "triggered by monitoring (drift)" in run.output
    # Two new days: ingest and every stage after it rerun.
    assert ran_stages(_stage_lines(run.output)) == STAGES
    versions = sorted(copy.registered_versions(MODEL), key=lambda v: int(v.version))
    assert len(versions) == 2, "the pipeline's champion, then the retrained version"
    newest = versions[-1]
    assert newest.tags["gate_decision"] in ("champion", "challenger")
    client = copy.mlflow_client()
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    promoted = newest.tags["gate_decision"] == "champion"
    assert str(champion) == str(newest.version if promoted else versions[0].version)
    run_tags = client.get_run(newest.run_id).data.tags
    assert run_tags["pipeline.lineage_id"].startswith("airflow:retrain/manual__")
    assert run_tags["retrain.decision"] == "drift"
    assert run_tags["retrain.reason"] == loop.drifted["reason"]
    assert inbox.received == []


def test_a_run_without_new_partitions_skips_training(trained):
    copy, env, _, _ = trained
    quiet = dags_test(copy, env)
    assert quiet.returncode == 0, quiet.output[-6000:]
    assert "0 new or changed" in quiet.output and "nothing to retrain" in quiet.output
    assert ran_stages(_stage_lines(quiet.output)) == []
    assert "$ dvc repro" not in quiet.output
    assert len(copy.registered_versions(MODEL)) == 2


def _stage_lines(output: str) -> str:
    """DVC's "Running stage" lines, out of Airflow's structured task log lines."""
    marker = "Running stage '"
    return "\n".join(line[line.index(marker) :] for line in output.splitlines() if marker in line)


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
    assert len(copy.registered_versions(MODEL)) == 2
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
