"""The real pipeline: dvc repro end to end, caching, param invalidation, push/pull, registry."""

import json
import shutil
import time

import pytest
import yaml

from tests.integration.conftest import LEAN, REPO, copy_with_outputs, ran_stages

pytestmark = pytest.mark.integration
# Every stage, in dvc.yaml's order (tests/unit/test_dvc_yaml.py pins that order).
ALL = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def test_full_repro_registers_a_champion(pipeline_repo):
    repo, run = pipeline_repo
    assert ran_stages(run.output) == ALL
    metrics = json.loads(repo.dvc("metrics", "show", "--json", check=True).stdout)
    evaluate = metrics[""]["data"]["data/metrics/evaluate.json"]["data"]
    assert 0 < evaluate["pr_auc"] <= 1 and 0.5 < evaluate["roc_auc"] <= 1
    # The detail is in the stages' reports; `dvc metrics show` lists only the headline numbers,
    # one table of every stage's that fits a 120-column terminal.
    table = repo.dvc("metrics", "show", check=True).stdout
    assert "data/metrics/evaluate.json" in table
    assert max(len(line) for line in table.splitlines()) <= 120, table
    evaluate_report = json.loads((repo.root / "data/reports/evaluate.json").read_text())
    baselines = evaluate_report["baselines"]
    assert set(baselines) == {"logistic_regression", "hist_gradient_boosting"}
    assert all(0.5 < b["roc_auc"] <= 1 for b in baselines.values())
    assert 0 <= evaluate_report["recall_at_precision"] <= 1
    quantize = json.loads((repo.root / "data/reports/quantize.json").read_text())
    assert set(quantize["variants"]) == {"dynamic_range", "float16", "int8", "qat"}
    for variant in quantize["variants"].values():
        assert variant["bytes"] > 0 and variant["latency_batch1_ms"] > 0
        assert variant["eligible"] == (
            variant["pr_auc_drop"] <= 0.01
            and variant["recall_drop"] <= 0.02
            and variant["max_abs_diff"] <= repo.params()["quantize"]["parity_tolerance"]
            and variant["latency_ratio"] <= repo.params()["quantize"]["max_latency_ratio"]
        )
    assert quantize["serving_artifact"] in {"float", *quantize["variants"]}
    register = json.loads((repo.root / "data/reports/register.json").read_text())
    client = repo.mlflow_client()
    champion = client.get_model_version_by_alias(
        repo.params()["register"]["model_name"], "champion"
    )
    assert str(champion.version) == str(register["version"]) == "1"
    assert champion.tags["gate_decision"] == "champion"
    run_data = client.get_run(register["run_id"]).data
    assert run_data.metrics["test_pr_auc"] == pytest.approx(evaluate["pr_auc"])
    # The registered pyfunc, loaded back from MLflow, scores what quantize measured for the
    # served TFLite variant (evaluate's numbers, up to float32 rounding, when none passed).
    served = quantize["serving_artifact"]
    measured = quantize["variants"][served]["test"] if served != "float" else evaluate
    close = 1e-6 if served != "float" else 1e-4
    assert run_data.metrics["gate.challenger_pr_auc"] == pytest.approx(
        measured["pr_auc"], abs=close
    )
    assert run_data.metrics["gate.challenger_recall"] == pytest.approx(
        measured["recall"], abs=close
    )
    assert champion.tags["served_variant"] == (served if served != "float" else "float32")
    assert run_data.tags["git_commit"] != "unknown"
    assert run_data.params["train.epochs"] == "4"
    before, after = (
        int(run_data.params[f"rebalance_counts.{when}.positive"]) for when in ("before", "after")
    )
    assert after > before
    summary = repo.python("-m", "pipelines.summary", check=True).stdout
    assert "@champion" in summary and f"{evaluate['pr_auc']:.4f}" in summary
    assert ("no TFLite variant passed" if served == "float" else f"{served} TFLite") in summary


# The float32 TFLite conversion (served when no variant passes quantize's gate) runs the
# float model's own weights: only the order of floating-point sums differs from Keras.
FLOAT32_TOLERANCE = 1e-5


def test_champion_serves_raw_rows(pipeline_repo, monkeypatch):
    import pandas as pd

    from pipelines.artifacts import load_verified_model

    repo, _ = pipeline_repo
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo.root / 'mlflow' / 'mlflow.db'}")
    model = load_verified_model(f"models:/{repo.params()['register']['model_name']}@champion")
    raw = pd.read_parquet(repo.root / "data/raw/snapshot.parquet").head(20)
    predictions = model.predict(raw.drop(columns=["is_fraud"]))
    assert list(predictions.columns) == ["probability", "label"]
    assert predictions["probability"].between(0, 1).all() and len(predictions) == 20


def test_served_probabilities_agree_with_the_float_model_within_the_gate(
    pipeline_repo, monkeypatch
):
    """The champion's pyfunc (TFLite, through LiteRT) against the float Keras model: on
    validation, within what quantize's gate allows a variant there (quantize.parity_tolerance);
    on test, exactly the difference quantize reported for that variant (to 1e-6), since it is
    the same bytes, interpreter and transform. The float32 conversion: within 1e-5 on both."""
    import pandas as pd

    from pipelines.artifacts import load_verified_model
    from pipelines.features import FeatureTransform
    from pipelines.tf_runtime import load_keras_model, predict_proba

    repo, _ = pipeline_repo
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo.root / 'mlflow' / 'mlflow.db'}")
    model = load_verified_model(f"models:/{repo.params()['register']['model_name']}@champion")
    floats = repo.root / "data/models/float"
    keras, transform = (
        load_keras_model(floats / "model.keras"),
        FeatureTransform.load(floats / "transform.json"),
    )
    difference = {}
    for split in ("val", "test"):
        rows = pd.read_parquet(repo.root / f"data/splits/{split}.parquet")
        served = model.predict(rows.drop(columns=["is_fraud"]))["probability"].to_numpy()
        difference[split] = float(
            abs(served - predict_proba(keras, transform.transform(rows))).max()
        )
    quantize = json.loads((repo.root / "data/reports/quantize.json").read_text())
    variant = quantize["serving_artifact"]
    if variant == "float":
        assert max(difference.values()) <= FLOAT32_TOLERANCE
    else:
        assert difference["val"] <= repo.params()["quantize"]["parity_tolerance"]
        measured = quantize["variants"][variant]
        assert difference["val"] == pytest.approx(measured["max_abs_diff"], abs=1e-6)
        assert difference["test"] == pytest.approx(measured["test"]["max_abs_diff"], abs=1e-6)


def test_second_repro_is_a_fast_no_op(pipeline_repo):
    repo, _ = pipeline_repo
    started = time.perf_counter()
    again = repo.dvc("repro", check=True)
    seconds = time.perf_counter() - started
    assert "Data and pipelines are up to date" in again.output
    assert ran_stages(again.output) == []
    assert seconds < 5, f"no-op dvc repro took {seconds:.1f}s"
    assert repo.dvc("status", "--json", check=True).stdout.strip() == "{}"


def test_push_then_pull_restores_every_output(pipeline_repo):
    repo, _ = pipeline_repo
    repo.dvc("push", check=True)
    shutil.rmtree(repo.root / "data" / "splits")
    shutil.rmtree(repo.root / ".dvc" / "cache")
    assert "deleted" in repo.dvc("status", check=True).stdout
    repo.dvc("pull", check=True)
    assert repo.dvc("status", "--json", check=True).stdout.strip() == "{}"


# A model trained one epoch at a learning rate of 1e-6 is close to its random initialisation,
# so the second pipeline run, which also draws a new split, must not replace the champion.
BARELY_TRAINED = {"train": {"epochs": 1, "learning_rate": 0.000001}}
NEW_SPLIT = {"split": {"test_size": 0.25}}


def test_a_param_change_reruns_only_its_stage_and_downstream(tmp_path, pipeline_repo):
    repo, _ = pipeline_repo
    copy = copy_with_outputs(repo, tmp_path / "copy")
    assert copy.dvc("status", "--json", check=True).stdout.strip() == "{}"
    copy.set_params(BARELY_TRAINED)
    # Only train's own params changed: of the stages before train only tune is stale (it
    # copies them into tuned.json when it does not search; instant), and evaluate, whose
    # small-data cross-validation trains with them.
    stale = set(json.loads(copy.dvc("status", "--json", check=True).stdout))
    assert stale == {"tune", "train", "evaluate"}
    # LEAN rides along with the split change (which reruns evaluate and quantize anyway):
    # this run is about invalidation and the gate, and those stages' features have their tests.
    copy.set_params(NEW_SPLIT | LEAN)
    rerun = copy.dvc("repro", check=True)
    assert ran_stages(rerun.output) == ALL[ALL.index("split") :]
    # The second pipeline run went through the gate against the first run's champion.
    result = json.loads((copy.root / "data/reports/register.json").read_text())
    assert result["version"] == 2 and result["previous_champion_version"] == 1
    assert not result["promoted"] and result["alias"] == "challenger", result["reason"]
    assert result["challenger"]["pr_auc"] < result["champion"]["pr_auc"]
    champion = copy.mlflow_client().get_model_version_by_alias(result["model_name"], "champion")
    assert str(champion.version) == "1"
