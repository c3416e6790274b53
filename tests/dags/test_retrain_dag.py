"""The DagBag imports cleanly and the retrain DAG mirrors dvc.yaml's stage graph."""

from pathlib import PurePosixPath

import pytest
import yaml

from tests.dags.dag_files import REPO, load_dagbag, parse_probe

STAGE_GRAPH = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
STAGES = list(STAGE_GRAPH)


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["retrain"]


def test_dagbag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "retrain" in dagbag.dags


def _outputs(stage: dict) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])] + [
        next(iter(m)) if isinstance(m, dict) else m for m in stage.get("metrics", [])
    ]


def _produces(producer: dict, dependency: str) -> bool:
    dep = PurePosixPath(dependency)
    return any(
        dep == PurePosixPath(out) or PurePosixPath(out) in dep.parents for out in _outputs(producer)
    )


def dvc_edges() -> set[tuple[str, str]]:
    """(producer, consumer) for every dvc.yaml dependency on another stage's output."""
    return {
        (producer, consumer)
        for consumer, spec in STAGE_GRAPH.items()
        for dependency in spec.get("deps", [])
        for producer, producer_spec in STAGE_GRAPH.items()
        if producer != consumer and _produces(producer_spec, dependency)
    }


def test_task_order_matches_dvc_yaml_stage_graph(dag):
    edges = dvc_edges()
    assert ("train", "evaluate") in edges and ("split", "register") in edges  # the test reads it
    for producer, consumer in edges:
        assert producer in dag.get_task(consumer).get_flat_relative_ids(upstream=True), (
            f"{producer} must run before {consumer}"
        )
    order = [t.task_id for t in dag.topological_sort() if t.task_id in STAGES]
    assert order == STAGES


def test_new_data_check_comes_first_and_the_gate_last(dag):
    assert dag.get_task("ingest").upstream_task_ids == {"wait_for_new_data"}
    assert dag.get_task("wait_for_new_data").upstream_task_ids == set()
    assert dag.get_task("record_processed").upstream_task_ids == {"wait_for_new_data", STAGES[-1]}
    assert dag.get_task("gate_outcome").downstream_task_ids == {"promoted", "champion_kept"}
    leaves = {t.task_id for t in dag.tasks if not t.downstream_task_ids}
    assert leaves == {"promoted", "champion_kept"}


def test_every_task_has_retries_timeout_owner_and_alert(dag):
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.owner and task.owner != "airflow", task.task_id
        assert task.on_failure_callback, task.task_id


def test_schedule_and_concurrency(dag):
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.schedule == "@weekly"
    assert {"retraining", "dvc", "mlflow"} <= set(dag.tags)


def test_new_data_check_skips_at_once_by_default(dag):
    sensor = dag.get_task("wait_for_new_data")
    assert sensor.soft_fail and sensor.timeout == 0 and sensor.mode == "reschedule"


def test_settings_come_from_the_environment(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RETRAIN_SCHEDULE", "0 3 * * 1")
    monkeypatch.setenv("RETRAIN_WAIT_FOR_DATA_MINUTES", "90")
    monkeypatch.setenv("RETRAIN_TASK_TIMEOUT_MINUTES", "30")
    dag = load_dagbag(tmp_path_factory).dags["retrain"]
    assert dag.schedule == "0 3 * * 1"
    assert dag.get_task("wait_for_new_data").timeout == 90 * 60
    assert dag.get_task("train").execution_timeout.total_seconds() == 30 * 60


def test_dag_file_parses_fast_without_heavy_imports():
    result = parse_probe(
        "retrain.py", ["airflow.sdk", "airflow.providers.standard.operators.empty", "yaml"]
    )
    assert result["heavy"] == []
    assert result["seconds"] < 0.5, result
