"""The monitoring loop under real Airflow: ``airflow dags test monitor`` on simulated days.

From the tiny pipeline's outputs and registry (its champion carries the monitoring reference
register logged), one more ordinary simulated day is scored and judged ``ok``: no retrain is
triggered. Then a day far along the simulator's drift (amounts and the channel mix have
moved) is judged ``drift``, and the retrain DAG gets a queued run whose conf
holds the decision and the reason. The triggered retrain is not executed here: the retrain
DAG has its own test (test_airflow_dag.py), and the reason's way from that conf to the MLflow
run's ``retrain.reason`` tag is unit-tested (tests/unit/test_monitor_loop.py).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.orchestration import list_source_partitions, state_variable
from tests.integration.conftest import REPO, copy_with_outputs
from tests.integration.test_airflow_dag import airflow_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
MODEL = yaml.safe_load((REPO / "params.yaml").read_text())["register"]["model_name"]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="module")
def loop(pipeline_repo, tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor_dag")
    copy = copy_with_outputs(pipeline_repo[0], root / "repo")
    # The tiny test split (about 25 positives) records noisy test metrics: quality is judged
    # and reported, but this test is about drift and the trigger, so no drop degrades.
    copy.set_params({"monitor": {"max_pr_auc_drop": 1.0, "max_recall_drop": 1.0}})
    env = airflow_env(copy, root / "airflow", RETRAIN_SCHEDULE="none", MONITOR_SCHEDULE="none")
    copy.run(AIRFLOW, "db", "migrate", env_extra=env, check=True)
    # The training days count as monitored already, so each run scores only its new day
    # (scoring loads TensorFlow once per partition).
    trained = list_source_partitions(copy.root, copy.env())
    listing = json.dumps({"partitions": trained, "run_id": "seeded"})
    copy.run(
        AIRFLOW, "variables", "set", state_variable("monitor"), listing, env_extra=env, check=True
    )
    return copy, env, root / "airflow" / "airflow.db"


def retrain_runs(database: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(database) as db:
        rows = db.execute("select run_id, conf from dag_run where dag_id = 'retrain'").fetchall()
    return [(run_id, json.loads(conf) if conf else {}) for run_id, conf in rows]


def monitor_once(copy, env) -> dict:
    run = copy.run(AIRFLOW, "dags", "test", "monitor", env_extra=env)
    assert run.returncode == 0 and "state=success" in run.output, run.output[-6000:]
    return json.loads((copy.root / "data" / "monitor" / "report.json").read_text())


def test_an_ok_window_triggers_nothing_and_a_drifted_one_triggers_retrain(loop):
    copy, env, database = loop
    copy.python("-m", "pipelines.simulate", "--first-day", "3", "--days", "1", check=True)

    ok = monitor_once(copy, env)

    assert ok["decision"] == "ok", ok["reason"]
    assert 1000 < ok["rows"] < 2000 and "drift" not in ok["not_judged"]  # one new day
    assert retrain_runs(database) == []

    copy.python("-m", "pipelines.simulate", "--first-day", "150", "--days", "1", check=True)

    drifted = monitor_once(copy, env)

    assert drifted["decision"] == "drift", drifted["reason"]
    assert 1000 < drifted["rows"] < 2000  # only the new day: the ok run's is recorded
    assert "column 'amount' PSI" in drifted["reason"]
    ((run_id, conf),) = retrain_runs(database)
    assert run_id.startswith("monitor__manual__")
    assert conf == {"decision": drifted["decision"], "reason": drifted["reason"]}
    client = copy.mlflow_client()
    experiment = client.get_experiment_by_name(f"{MODEL}-monitoring")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    assert [r.data.tags["decision"] for r in runs] == ["ok", drifted["decision"]]
    assert runs[-1].data.tags["pipeline.lineage_id"].startswith("airflow:monitor/manual__")
