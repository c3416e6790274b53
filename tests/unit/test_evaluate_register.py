import time

import numpy as np
import pytest
from sklearn import metrics

from pipelines.config import EvaluateParams
from pipelines.errors import PipelineError
from pipelines.evaluate import baseline_models, evaluate, pick_segment_column, segment_table
from pipelines.lineage import git_commit
from pipelines.metrics import (
    best_f1_threshold,
    expected_calibration_error,
    metrics_at_threshold,
    min_cost_threshold,
    operating_points,
)
from pipelines.plots import render_bias_plots

RNG = np.random.default_rng(0)
LABELS = (RNG.random(500) < 0.1).astype(int)
SCORES = np.clip(0.3 * LABELS + RNG.random(500) * 0.7, 0, 1)


def test_metrics_match_scikit_learn():
    threshold = 0.5
    report = metrics_at_threshold(LABELS, SCORES, threshold, bins=10)
    predicted = (SCORES >= threshold).astype(int)
    assert report["pr_auc"] == pytest.approx(metrics.average_precision_score(LABELS, SCORES))
    assert report["roc_auc"] == pytest.approx(metrics.roc_auc_score(LABELS, SCORES))
    assert report["f1"] == pytest.approx(metrics.f1_score(LABELS, predicted))
    assert report["recall"] == pytest.approx(metrics.recall_score(LABELS, predicted))
    assert report["brier"] == pytest.approx(metrics.brier_score_loss(LABELS, SCORES))
    assert report["true_positives"] + report["false_negatives"] == LABELS.sum()


def test_best_f1_threshold_maximises_f1():
    threshold = best_f1_threshold(LABELS, SCORES)
    best = metrics.f1_score(LABELS, SCORES >= threshold)
    for other in np.linspace(0.05, 0.95, 19):
        assert metrics.f1_score(LABELS, SCORES >= other) <= best + 1e-12


def test_expected_calibration_error():
    labels = np.array([0, 0, 1, 1])
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0]), 5) == pytest.approx(
        0.0
    )
    assert expected_calibration_error(labels, np.array([0.9, 0.9, 0.9, 0.9]), 5) == pytest.approx(
        0.4
    )


def evaluate_params(**changes):
    base = dict(
        calibration_bins=10,
        threshold_objective="f1",
        cost_fp=1.0,
        cost_fn=20.0,
        target_precision=0.8,
        target_recall=0.8,
        baselines=True,
        segment_column="auto",
        noise_levels=[0.1, 0.3],
        importance_repeats=1,
    )
    return EvaluateParams(**(base | changes))


def brute_force_cost(labels, scores, threshold, cost_fp, cost_fn):
    predicted = scores >= threshold
    return (
        cost_fp * (predicted & (labels == 0)).sum() + cost_fn * (~predicted & (labels == 1)).sum()
    )


@pytest.mark.parametrize(("cost_fp", "cost_fn"), [(1, 1), (1, 20), (20, 1), (1, 0.001)])
def test_min_cost_threshold_beats_every_other_threshold(cost_fp, cost_fn):
    threshold = min_cost_threshold(LABELS, SCORES, cost_fp, cost_fn)
    best = brute_force_cost(LABELS, SCORES, threshold, cost_fp, cost_fn)
    for other in np.r_[np.unique(SCORES), 1.1]:
        assert best <= brute_force_cost(LABELS, SCORES, other, cost_fp, cost_fn) + 1e-9


def test_dearer_misses_lower_the_threshold():
    cautious = min_cost_threshold(LABELS, SCORES, cost_fp=1, cost_fn=50)
    relaxed = min_cost_threshold(LABELS, SCORES, cost_fp=50, cost_fn=1)
    assert cautious < relaxed


def test_operating_points_match_the_pr_curve():
    points = operating_points(LABELS, SCORES, evaluate_params(target_precision=0.5))
    precision, recall, thresholds = metrics.precision_recall_curve(LABELS, SCORES)
    at = thresholds[np.argmax(precision[:-1] >= 0.5)]
    assert points["recall_at_precision"] >= metrics.recall_score(LABELS, SCORES >= at)
    impossible = operating_points(LABELS, np.zeros_like(SCORES, dtype=float), evaluate_params())
    assert impossible["recall_at_precision"] == 0.0


def test_cost_objective_needs_a_cost():
    with pytest.raises(ValueError, match="needs cost_fp or cost_fn"):
        evaluate_params(threshold_objective="cost", cost_fp=0, cost_fn=0)


def test_baselines_learn_the_signal(schema, validate_params):
    from pipelines.cleaning import clean_rows
    from tests.conftest import make_frame

    clean = clean_rows(make_frame(n=3000, seed=5), schema, validate_params).clean
    train, test = clean.iloc[:2000], clean.iloc[2000:]
    fitted = baseline_models(train, schema, seed=0)
    assert set(fitted) == {"logistic_regression", "hist_gradient_boosting"}
    for transform, model in fitted.values():
        scores = model.predict_proba(transform.transform(test))[:, 1]
        assert metrics.roc_auc_score(test["label"], scores) > 0.65  # chance is 0.5


@pytest.fixture
def evaluated_inputs(schema, validate_params):
    from pipelines.cleaning import clean_rows
    from tests.conftest import make_frame

    clean = clean_rows(make_frame(n=3000, seed=5), schema, validate_params).clean
    splits = {"train": clean.iloc[:1800], "val": clean.iloc[1800:2400], "test": clean.iloc[2400:]}
    transform, model = baseline_models(splits["train"], schema, seed=0)["logistic_regression"]

    def score(frame):
        return model.predict_proba(transform.transform(frame))[:, 1]

    return score, transform, splits


def test_evaluate_reports_segments_robustness_and_importance(schema, evaluated_inputs, tmp_path):
    score, transform, splits = evaluated_inputs
    cfg = evaluate_params(noise_levels=[0.0, 3.0], importance_repeats=2)
    report, tables = evaluate(score, transform, splits, schema, cfg, seed=0)
    assert report["segments"]["column"] == "color"
    assert sum(v["rows"] for v in report["segments"]["values"].values()) == len(splits["test"])
    assert report["robustness"]["noise_0"]["pr_auc"] == pytest.approx(report["pr_auc"])
    assert report["robustness"]["noise_3"]["roc_auc"] < report["roc_auc"]
    # The same numbers as DVC plots tables and PNGs: one row per segment, and one per noise
    # level with the clean test set at level 0 (listed once although 0.0 is also a level).
    segments = tables["segments"].set_index("segment")
    assert list(segments.index) == list(report["segments"]["values"])
    assert segments.loc["red", "recall"] == report["segments"]["values"]["red"]["recall"]
    assert tables["robustness"]["noise_level"].tolist() == [0.0, 3.0]
    assert tables["robustness"]["roc_auc"].tolist() == [
        report["roc_auc"],
        report["robustness"]["noise_3"]["roc_auc"],
    ]
    assert segment_table(None).empty  # no categorical column: an empty table, still written
    render_bias_plots(tables, report, tmp_path)
    assert {"segments.png", "robustness.png"} <= {path.name for path in tmp_path.iterdir()}
    assert next(iter(report["importance"])) == "amount"  # the only feature with signal
    assert list(tables["importance"]["feature"]) == list(report["importance"])
    assert set(report["baselines"]) == {"logistic_regression", "hist_gradient_boosting"}


def test_threshold_never_looks_at_test_labels(schema, evaluated_inputs):
    score, transform, splits = evaluated_inputs
    cfg = evaluate_params(baselines=False, importance_repeats=0, noise_levels=[])
    report, _ = evaluate(score, transform, splits, schema, cfg, seed=0)
    flipped = splits | {"test": splits["test"].assign(label=1 - splits["test"]["label"])}
    other, _ = evaluate(score, transform, flipped, schema, cfg, seed=0)
    assert other["threshold"] == report["threshold"] and other["pr_auc"] != report["pr_auc"]


def test_segment_column_must_be_categorical(schema):
    with pytest.raises(PipelineError, match="evaluate.segment_column: 'amount'"):
        pick_segment_column(schema, "amount")
    assert pick_segment_column(schema, None) is None


def test_quantization_gate_serves_the_smallest_variant_within_every_tolerance():
    from pipelines.config import QuantizeParams
    from pipelines.quantize import gate

    cfg = QuantizeParams(
        variants=["dynamic_range", "float16", "int8"],
        max_pr_auc_drop=0.01,
        max_recall_drop=0.02,
        parity_tolerance=0.1,
        max_latency_ratio=1.0,
        serving_policy="smallest",
        representative_rows=10,
        qat_epochs=1,
        qat_learning_rate=0.001,
    )
    reference = {"pr_auc": 0.50, "recall": 0.60}

    def variant(size, pr_auc, recall, latency, diff=0.01, slower=0.9):
        return {
            "bytes": size,
            "pr_auc": pr_auc,
            "recall": recall,
            "latency_batch1_ms": latency,
            "max_abs_diff": diff,
            "latency_ratio": slower,
        }

    variants = {
        "dynamic_range": variant(800, 0.495, 0.59, latency=0.02),
        "float16": variant(1100, 0.50, 0.60, latency=0.01),
        "int8": variant(600, 0.499, 0.50, latency=0.005),  # keeps PR-AUC, loses recall
        "qat": variant(500, 0.50, 0.60, latency=0.005, diff=0.3),  # one probability moved a lot
    }
    assert gate(variants, reference, cfg) == "dynamic_range"
    assert [v["eligible"] for v in variants.values()] == [True, True, False, False]
    fastest = cfg.model_copy(update={"serving_policy": "fastest"})
    assert gate(variants, reference, fastest) == "float16"
    assert gate({"int8": variants["int8"]}, reference, cfg) == "float"
    # The smallest accurate variant, but slower than the float32 TFLite model at batch 1.
    variants["tiny"] = variant(400, 0.50, 0.60, latency=0.03, slower=1.03)
    assert gate(variants, reference, cfg) == "dynamic_range"
    assert variants["tiny"]["eligible"] is False
    tolerant = cfg.model_copy(update={"max_latency_ratio": 1.05})
    assert gate(variants, reference, tolerant) == "tiny"


def test_quantization_gate_reasons_name_the_failed_check_and_the_variant():
    from pipelines.config import QuantizeParams
    from pipelines.quantize import gate

    cfg = QuantizeParams(
        variants=["dynamic_range", "int8", "qat"],
        max_pr_auc_drop=0.01,
        max_recall_drop=0.02,
        parity_tolerance=0.1,
        max_latency_ratio=1.05,
        serving_policy="smallest",
        representative_rows=10,
        qat_epochs=1,
        qat_learning_rate=0.001,
    )
    reference = {"pr_auc": 0.50, "recall": 0.60}

    def variant(size, pr_auc, diff, slower):
        measured = {"pr_auc": pr_auc, "recall": 0.60, "max_abs_diff": diff}
        return measured | {"bytes": size, "latency_batch1_ms": 0.01, "latency_ratio": slower}

    variants = {
        "dynamic_range": variant(800, 0.499, diff=0.01, slower=0.9),
        "int8": variant(600, 0.499, diff=0.1415, slower=0.9),  # one probability moved a lot
        "qat": variant(500, 0.47, diff=0.01, slower=1.2),  # less accurate and slower
    }
    assert gate(variants, reference, cfg) == "dynamic_range"
    assert variants["int8"]["gate"] == "int8: max |diff| 0.1415 > parity_tolerance 0.1"
    assert variants["qat"]["gate"] == (
        "qat: PR-AUC drop 0.0300 > max_pr_auc_drop 0.01; "
        "qat: latency ratio 1.2000 > max_latency_ratio 1.05"
    )
    # A variant that passes every check shows every check's reason.
    passing = variants["dynamic_range"]["gate"].split("; ")
    assert len(passing) == 4 and all(r.startswith("dynamic_range: ") for r in passing)
    assert all(" <= " in reason for reason in passing)


def test_latency_ratio_tells_a_slower_call_from_a_faster_one():
    from pipelines.tflite import latency_ratio

    rows = np.zeros((4, 3), dtype="float32")

    def fast(features):
        return sum(range(200))

    def slow(features):
        return sum(range(2000))

    assert latency_ratio(slow, fast, rows) > 2
    assert latency_ratio(fast, slow, rows) < 0.5
    assert 0.5 < latency_ratio(fast, fast, rows) < 2


def test_a_slow_model_is_timed_with_fewer_calls_and_a_fast_one_with_all():
    from pipelines import tflite

    one = np.zeros((1, 3), dtype="float32")

    def fast(features):
        return sum(range(10))

    def slow(features):  # 20 ms a call: 200 calls would take 4 s
        time.sleep(0.02)

    assert tflite.latency_calls(fast, one) == tflite.LATENCY_CALLS
    calls = tflite.latency_calls(slow, one)
    assert tflite.TIMING_WINDOWS <= calls <= tflite.LATENCY_SECONDS / 0.02
    assert tflite.measure_speed(slow, np.zeros((4, 3)))["latency_batch1_ms"] >= 20


def test_git_commit_outside_a_checkout_comes_from_the_image_build(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("PIPELINE_GIT_COMMIT", "0123abcd")
    assert git_commit() == "0123abcd"
    monkeypatch.delenv("PIPELINE_GIT_COMMIT")
    assert git_commit() == "unknown"
