"""Monitoring decisions on synthetic windows, and the CLI against an embedded MLflow registry.

The reference is built the way register builds it (``champion_reference.build``: the drift
profile of the training rows, the validation scores' bins); windows are make_frame rows with
the columns ``pipelines.score`` adds.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines import champion_reference, drift, monitor, paths
from pipelines.champion_reference import Reference
from pipelines.config import DataParams, MonitorParams
from pipelines.errors import PipelineError
from pipelines.monitoring import assess
from pipelines.schema import infer_schema
from tests.conftest import make_frame

ROOT = Path(__file__).resolve().parents[2]
REGISTERED = datetime(2026, 11, 1, tzinfo=UTC)
YOUNG = REGISTERED + timedelta(days=3)
CFG = MonitorParams(
    psi_limit=0.25,
    prediction_psi_limit=0.25,
    min_rows=100,
    max_pr_auc_drop=0.1,
    max_recall_drop=0.1,
    min_labelled_positives=10,
    max_model_age_days=30,
)


def rows_of(n: int, seed: int) -> pd.DataFrame:
    """make_frame rows whose target is not called ``label``, the scorer's output column."""
    return make_frame(n=n, seed=seed).rename(columns={"label": "target"})


def truth_of(n: int = 1000, seed: int = 5) -> pd.Series:
    return rows_of(n, seed)["target"].astype("float64")


def scored(frame: pd.DataFrame, seed: int, informative: bool = True) -> pd.DataFrame:
    """``frame`` with a probability that follows its target (or ignores it), and the 0/1
    ``label`` at 0.5: the columns pipelines.score adds. The target is dropped (labels
    arrive later)."""
    rng = np.random.default_rng([seed, 99])  # not make_frame's stream, which drew the labels
    signal = frame["target"].to_numpy() if informative else rng.random(len(frame)) < 0.1
    probability = 1 / (1 + np.exp(-(3.5 * signal - 2.5 + rng.normal(0, 0.8, len(frame)))))
    return frame.drop(columns="target").assign(
        probability=probability, label=(probability >= 0.5).astype("int64"), model_version="1"
    )


@pytest.fixture(scope="module")
def schema():
    data = DataParams(source="data/landing", target="target", positive_label=1)
    return infer_schema(rows_of(400, 0), data, 10, 0.5, 10)


@pytest.fixture(scope="module")
def reference(schema) -> Reference:
    train = rows_of(2000, 1)
    validation = scored(rows_of(800, 3), seed=3)
    content = champion_reference.build(
        drift.profile(train, schema), validation["probability"].to_numpy(), schema
    )
    return Reference(
        model_name="clf",
        version="1",
        registered_at=REGISTERED,
        recorded={"pr_auc": 0.9, "recall": 0.8},
        **content,
    )


def window(n: int = 1000, seed: int = 5, **changes) -> pd.DataFrame:
    return scored(rows_of(n, seed), seed=seed, **changes)


def test_a_window_like_the_training_data_is_ok(reference):
    result = assess(window(), None, reference, CFG, YOUNG)
    assert result.decision == "ok"
    assert result.numbers["max_psi"] < 0.1 and result.numbers["prediction_psi"] < 0.1
    assert "quality not judged: no labels" in result.reason


def test_good_realised_quality_is_ok(reference):
    rows = window()
    truth = truth_of()
    result = assess(rows, truth, reference, CFG, YOUNG)
    assert result.decision == "ok", result.reason
    assert result.numbers["realised_pr_auc"] > 0.85
    assert result.not_judged == {}


def test_a_shifted_feature_is_drift_and_named(reference):
    rows = window()
    rows["amount"] = rows["amount"] * 5
    result = assess(rows, None, reference, CFG, YOUNG)
    assert result.decision == "drift"
    assert "column 'amount' PSI" in result.reason and "'age'" not in result.reason
    assert result.numbers["max_psi_feature"] == "amount"


def test_a_shifted_score_distribution_is_drift(reference):
    rows = window()
    rows["probability"] = np.clip(rows["probability"] + 0.3, 0, 1)
    result = assess(rows, None, reference, CFG, YOUNG)
    assert result.decision == "drift" and "probability PSI" in result.reason


def test_poor_realised_quality_is_degraded(reference):
    rows = window(informative=False)
    truth = truth_of()
    result = assess(rows, truth, reference, CFG, YOUNG)
    assert result.decision == "degraded", result.reason
    assert "realised pr_auc" in result.reason
    assert result.numbers["pr_auc_drop"] > 0.5


def test_quality_is_judged_against_the_recorded_intervals_lower_bound(reference):
    """A window inside what the champion's test interval allowed is not degraded, although
    it falls short of the point value recorded on a small test split."""
    rows, truth = window(), truth_of()
    realised = assess(rows, truth, reference, CFG, YOUNG).numbers["realised_pr_auc"]
    point_only = reference.model_copy(
        update={"recorded": {"pr_auc": realised + 0.3, "recall": 0.0}}
    )
    assert assess(rows, truth, point_only, CFG, YOUNG).decision == "degraded"
    with_interval = point_only.model_copy(update={"recorded_low": {"pr_auc": realised - 0.01}})
    result = assess(rows, truth, with_interval, CFG, YOUNG)
    assert result.decision == "ok", result.reason
    assert result.numbers["pr_auc_drop"] < 0


def test_an_old_champion_is_stale(reference):
    result = assess(window(), None, reference, CFG, REGISTERED + timedelta(days=45))
    assert result.decision == "stale"
    assert "registered 45.0 days ago (max_model_age_days=30)" in result.reason


def test_degraded_comes_before_drift_before_stale_and_every_reason_is_given(reference):
    rows = window(informative=False)
    rows["amount"] = rows["amount"] * 5
    truth = truth_of()
    result = assess(rows, truth, reference, CFG, REGISTERED + timedelta(days=45))
    assert result.decision == "degraded"
    assert result.reason.index("degraded:") < result.reason.index("drift:")
    assert result.reason.index("drift:") < result.reason.index("stale:")


def test_an_empty_window_judges_only_the_age(reference):
    empty = window().iloc[:0]
    result = assess(empty, None, reference, CFG, YOUNG)
    assert result.decision == "ok"
    assert "drift not judged: the window is empty" in result.reason
    assert result.numbers["max_psi"] is None and result.numbers["rows"] == 0
    old = assess(empty, None, reference, CFG, REGISTERED + timedelta(days=45))
    assert old.decision == "stale"


def test_too_few_labelled_positives_are_reported_not_judged(reference):
    rows = window(informative=False)
    truth = truth_of()
    truth[truth == 1] = np.nan  # the positives' labels have not arrived
    truth.iloc[:3] = 1.0
    result = assess(rows, truth, reference, CFG, YOUNG)
    assert result.decision == "ok"
    assert "quality not judged: 3 labelled positive(s)" in result.reason


def test_labels_file_joins_on_the_id_and_accepts_any_spelling(reference, tmp_path):
    rows = window(n=300)
    truth = rows_of(300, 5)[["row_id", "target"]].iloc[::-1]
    truth["target"] = truth["target"].map({0: "0", 1: "1.0"})
    path = tmp_path / "labels.csv"
    truth.iloc[:200].to_csv(path, index=False)
    joined = monitor.window_labels(rows, monitor.read_labels(path, reference), reference, "x")
    assert joined.notna().sum() == 200
    expected = rows_of(300, 5)["target"].iloc[100:]
    assert (joined.iloc[100:].to_numpy() == expected.to_numpy()).all()


def test_a_label_that_is_neither_class_names_the_column(reference, tmp_path):
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"row_id": ["r00000"], "target": [7]}).to_parquet(path)
    labels = monitor.read_labels(path, reference)
    with pytest.raises(PipelineError, match=r"labels.parquet: column 'target': values \['7'\]"):
        monitor.window_labels(window(n=5), labels, reference, str(path))
    pd.DataFrame({"row_id": ["r00000"]}).to_parquet(path)
    with pytest.raises(PipelineError, match="column 'target' missing"):
        monitor.read_labels(path, reference)


def test_scored_windows_are_read_from_a_file_or_a_folder(tmp_path):
    with pytest.raises(PipelineError, match="no such file or folder"):
        monitor.read_window(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    assert monitor.read_window(tmp_path / "empty").empty
    (tmp_path / "w" / "day").mkdir(parents=True)
    window(n=10).to_parquet(tmp_path / "w" / "a.parquet")
    window(n=20).to_parquet(tmp_path / "w" / "day" / "b.parquet")
    rows_of(3, 0).assign(reason="x").to_parquet(tmp_path / "w" / "day" / "b.rejects.parquet")
    assert len(monitor.read_window(tmp_path / "w")) == 30
    rows_of(5, 0).to_parquet(tmp_path / "raw.parquet")
    with pytest.raises(PipelineError, match="column 'probability' missing"):
        monitor.read_window(tmp_path / "raw.parquet")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, reference):
    """A folder with params.yaml (model ``clf``) and an embedded MLflow registry whose
    @champion v1 carries the reference and its recorded test metrics."""
    root = tmp_path_factory.mktemp("monitor_checkout")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["register"]["model_name"] = "clf"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
        from pipelines import tracking

        client = tracking.client()
        run = client.create_run(tracking.experiment_id(client, "retraining"))
        content = reference.model_dump(
            mode="json",
            include={"features", "scores", "id_column", "target", "positive_label", "label_values"},
        )
        client.log_dict(run.info.run_id, content, champion_reference.ARTIFACT)
        client.create_registered_model("clf")
        version = client.create_model_version(
            "clf",
            f"runs:/{run.info.run_id}/model",
            run_id=run.info.run_id,
            tags={"test_pr_auc": "0.9", "test_recall": "0.8"},
        )
        client.set_registered_model_alias("clf", "champion", version.version)
    return root, client


@pytest.fixture
def registry(checkout, monkeypatch):
    root, client = checkout
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    for key in ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID", "PIPELINE_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    return client


def test_the_cli_writes_metrics_report_png_and_a_tagged_mlflow_run(registry, monkeypatch):
    rows = window()
    rows["amount"] = rows["amount"] * 5
    rows.to_parquet("scored.parquet")
    monkeypatch.setattr(sys, "argv", ["monitor", "--scored", "scored.parquet"])
    monitor.main()  # exits normally: drift is data, not an error
    headline = json.loads(paths.MONITOR_METRICS.read_text())
    assert headline["decision"] == "drift" and headline["model_version"] == 1
    assert headline["max_psi"] > 0.25 and headline["realised_pr_auc"] is None
    assert paths.MONITOR_PLOT.stat().st_size > 10_000
    experiment = registry.get_experiment_by_name("clf-monitoring")
    (run,) = registry.search_runs([experiment.experiment_id])
    assert run.data.tags["decision"] == "drift"
    assert run.data.metrics["max_psi"] == pytest.approx(headline["max_psi"])
    monkeypatch.setattr(
        sys, "argv", ["monitor", "--scored", "scored.parquet", "--fail-on-decision"]
    )
    with pytest.raises(PipelineError, match="^decision drift: drift: "):
        monitor.main()


def test_no_champion_or_version_is_one_line_naming_the_model(registry):
    with pytest.raises(PipelineError, match="model 'other' has no @champion in the registry"):
        champion_reference.champion_version(registry, "other", None)
    with pytest.raises(PipelineError, match="model 'clf' has no v7 in the registry"):
        champion_reference.champion_version(registry, "clf", "7")
    assert champion_reference.champion_version(registry, "clf", None) == "1"
