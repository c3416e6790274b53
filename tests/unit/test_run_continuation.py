"""A plain `dvc repro` continues the unfinished MLflow run of ``mlflow/lineage.json`` only when
its lineage (code commit, params, data hashes) is unchanged; otherwise that run is closed
FAILED and a new one opens (issue 16: after a failed run on dataset A, every run on dataset B
failed at register with "Changing param values is not allowed"). Real embedded sqlite store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines import paths, tracking

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PIPELINE_GIT_COMMIT", "c0ffee")
    for key in ("PIPELINE_RUN_ID", "AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    Path("params.yaml").write_text((REPO / "params.yaml").read_text())
    client = tracking.client()
    return client, tracking.experiment_id(client, "retraining")


def point_at(dataset: str, rows: int) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["data"]["source"] = f"exports/{dataset}.csv"
    Path("params.yaml").write_text(yaml.safe_dump(params))
    paths.RAW_SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": range(rows)}).to_parquet(paths.RAW_SNAPSHOT)


def failed_attempt(client, experiment: str, negatives: int) -> str:
    """An attempt that got as far as logging params, then failed (as register would)."""
    run_id = tracking.open_lineage_run(client, experiment, "retrain")
    client.log_param(run_id, "rebalance_counts.before.negative", str(negatives))
    client.set_terminated(run_id, status="FAILED")
    return run_id


def test_a_retry_continues_only_the_same_lineage(store):
    client, experiment = store
    point_at("A", 5800)
    on_a = failed_attempt(client, experiment, 5800)
    assert tracking.open_lineage_run(client, experiment, "retrain") == on_a  # same lineage
    client.set_terminated(on_a, status="FAILED")

    point_at("B", 16483)  # params.yaml back on dataset B: params and data differ
    on_b = tracking.open_lineage_run(client, experiment, "retrain")
    assert on_b != on_a
    old = client.get_run(on_a)
    assert old.info.status == "FAILED"
    assert "params_sha256" in old.data.tags["pipeline.superseded"]
    assert "data.raw.md5" in old.data.tags["pipeline.superseded"]
    client.log_param(on_b, "rebalance_counts.before.negative", "16483")  # no conflict
    client.set_terminated(on_b, status="FAILED")

    pd.DataFrame({"x": range(16484)}).to_parquet(paths.RAW_SNAPSHOT)  # same params, new data
    on_new_data = tracking.open_lineage_run(client, experiment, "retrain")
    assert on_new_data != on_b
    assert client.get_run(on_b).data.tags["pipeline.superseded"].endswith("data.raw.md5")
    tracking.close_lineage_run(client, on_new_data, "FINISHED")
    assert not tracking.LINEAGE_POINTER.exists()

    # A run opened before runs carried their lineage, with params logged: not continued.
    legacy = client.create_run(experiment, run_name="retrain").info.run_id
    client.log_param(legacy, "rebalance_counts.before.negative", "5800")
    client.set_terminated(legacy, status="FAILED")
    tracking.LINEAGE_POINTER.write_text(
        f'{{"tracking_uri": "{tracking.display_uri()}", "run_id": "{legacy}"}}'
    )
    assert tracking.open_lineage_run(client, experiment, "retrain") != legacy
