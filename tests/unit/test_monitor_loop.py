"""The monitor DAG's logic: windows, branches, and the reason reaching the retrain run."""

import os
from pathlib import Path

import pytest

from pipelines import lineage, monitor_loop
from pipelines.config import load_params
from pipelines.errors import PipelineError
from pipelines.orchestration import stage_environment


@pytest.mark.parametrize(
    ("decision", "task"),
    [
        ("ok", "no_retrain"),
        ("drift", "trigger_retrain"),
        ("degraded", "trigger_retrain"),
        ("stale", "trigger_retrain"),
    ],
)
def test_only_drift_degraded_and_stale_trigger_a_retrain(decision, task):
    assert monitor_loop.next_task(decision) == task


def test_window_and_file_names_are_safe_and_per_partition():
    folder = monitor_loop.window_folder("scheduled__2026-12-03T00:00:00+00:00")
    assert folder == Path("data/scored/scheduled__2026-12-03T00_00_00_00_00")
    assert monitor_loop.scored_name("data/landing/transactions_2026-01-04.csv") == (
        "transactions_2026-01-04.parquet"
    )
    assert monitor_loop.scored_name("s3://bucket/in/day=3/part.parquet") == "part.parquet"


def test_the_reason_travels_from_the_conf_to_the_run_tags(monkeypatch):
    for key in list(os.environ):
        if key.startswith(("AIRFLOW_CONN_", "PIPELINE_RETRAIN_")):
            monkeypatch.delenv(key)
    conf = monitor_loop.retrain_conf({"decision": "drift", "reason": "drift: column 'amount'"})
    env = stage_environment("retrain", "monitor__r1", conf)
    assert env["PIPELINE_RETRAIN_DECISION"] == "drift"
    assert env["PIPELINE_RETRAIN_REASON"] == "drift: column 'amount'"
    assert "PIPELINE_RETRAIN_REASON" not in stage_environment("retrain", "manual__r2")
    for key in ("PIPELINE_RETRAIN_DECISION", "PIPELINE_RETRAIN_REASON"):
        monkeypatch.setenv(key, env[key])
    tags = lineage.lineage_tags(load_params())
    assert tags["retrain.reason"] == "drift: column 'amount'"
    assert tags["retrain.decision"] == "drift"


def test_a_failing_entry_point_raises_its_own_error_line(tmp_path):
    with pytest.raises(PipelineError, match=r"^ERROR \[monitor\] .*no such file or folder"):
        monitor_loop.run_entry_point(
            ["pipelines.monitor", "--scored", str(tmp_path / "absent")],
            Path.cwd(),
            dict(os.environ, PYTHONPATH=str(Path.cwd())),
        )
