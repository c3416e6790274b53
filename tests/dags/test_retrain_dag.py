"""The DagBag imports cleanly and the retrain DAG mirrors dvc.yaml."""

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    os.environ["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow_home"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dagbag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "retrain" in dagbag.dags


def test_task_order_matches_dvc_yaml(dagbag):
    dag = dagbag.dags["retrain"]
    stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert [t.task_id for t in dag.topological_sort()] == stages
    for upstream, downstream in zip(stages, stages[1:], strict=False):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}


def test_every_task_has_retries_timeout_and_owner(dagbag):
    for task in dagbag.dags["retrain"].tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff
        assert task.execution_timeout is not None
        assert task.owner and task.owner != "airflow"
        assert task.bash_command == f"dvc repro --single-item {task.task_id}"


def test_schedule_and_concurrency(dagbag):
    dag = dagbag.dags["retrain"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert "retraining" in dag.tags


def test_dag_file_parses_fast_without_heavy_imports(dagbag):
    source = (REPO / "dags" / "retrain.py").read_text()
    for heavy in ("tensorflow", "great_expectations", "mlflow", "pipelines"):
        assert f"import {heavy}" not in source and f"from {heavy}" not in source
    (stats,) = [s for s in dagbag.dagbag_stats if s.file.endswith("retrain.py")]
    assert stats.duration.total_seconds() < 1, stats
