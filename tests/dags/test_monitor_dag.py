"""The monitor DAG: structure, task policy, and the trigger that closes the loop."""

import pytest

from tests.dags.dag_files import parse_probe


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["monitor"]


def test_dagbag_holds_both_dags_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"retrain", "monitor"} <= set(dagbag.dags)


def test_score_then_monitor_then_branch_to_retrain_or_nothing(dag):
    assert dag.get_task("score_new_data").upstream_task_ids == set()
    assert dag.get_task("monitor").upstream_task_ids == {"score_new_data"}
    assert dag.get_task("record_scored").upstream_task_ids == {"score_new_data", "monitor"}
    assert dag.get_task("retrain_needed").upstream_task_ids == {"monitor"}
    assert dag.get_task("retrain_needed").downstream_task_ids == {"trigger_retrain", "no_retrain"}


def test_the_trigger_starts_retrain_with_the_decision_and_reason(dag, dagbag):
    trigger = dag.get_task("trigger_retrain")
    assert trigger.trigger_dag_id == "retrain" and trigger.trigger_dag_id in dagbag.dags
    assert set(trigger.conf) == {"decision", "reason"}
    assert "xcom_pull(task_ids='monitor')['reason']" in trigger.conf["reason"]
    assert trigger.wait_for_completion is False and trigger.skip_when_already_exists


def test_every_task_has_retries_timeout_owner_and_alert(dag):
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.owner and task.owner != "airflow", task.task_id
        assert task.on_failure_callback, task.task_id


def test_schedule_and_concurrency(dag):
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.schedule == "@daily"


def test_dag_file_parses_fast_without_heavy_imports():
    preloaded = [
        "airflow.sdk",
        "airflow.providers.standard.operators.empty",
        "airflow.providers.standard.operators.trigger_dagrun",
    ]
    result = parse_probe("monitor.py", preloaded)
    assert result["heavy"] == []
    assert result["seconds"] < 0.5, result
