"""Stratified bootstrap intervals, curve bands and the small-data warning."""

import logging

import numpy as np
import pytest
from sklearn import metrics

from pipelines.intervals import (
    METRICS,
    beside,
    bootstrap,
    curve_bands,
    metric_intervals,
    reliability,
    stratified_indices,
    with_interval,
)


def synthetic(rows: int, positive_rate: float = 0.1, seed: int = 0):
    """Labels and scores with a learnable signal; scores rounded, so that some tie."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < positive_rate).astype(int)
    scores = np.round(np.clip(0.35 * labels + 0.65 * rng.random(rows), 0, 1), 2)
    return labels, scores


LABELS, SCORES = synthetic(600)
THRESHOLD = 0.5


def point_estimates(labels, scores, threshold):
    predicted = scores >= threshold
    return {
        "pr_auc": metrics.average_precision_score(labels, scores),
        "roc_auc": metrics.roc_auc_score(labels, scores),
        "recall": metrics.recall_score(labels, predicted, zero_division=0),
        "precision": metrics.precision_score(labels, predicted, zero_division=0),
        "f1": metrics.f1_score(labels, predicted, zero_division=0),
    }


def test_every_resample_keeps_both_classes_at_the_split_counts():
    indices = stratified_indices(LABELS, 200, np.random.default_rng(0))
    assert indices.shape == (200, len(LABELS))
    resampled = LABELS[indices]
    assert (resampled.sum(axis=1) == LABELS.sum()).all()
    assert (resampled[:, : LABELS.sum()] == 1).all()  # positives lead each row


@pytest.mark.parametrize("threshold", [THRESHOLD, 0.0, 2.0])
def test_each_resample_scores_as_scikit_learn_scores_it(threshold):
    # The bootstrap's first block draws exactly these indices from the same seed.
    sample = bootstrap(LABELS, SCORES, threshold, 5, seed=3)
    indices = stratified_indices(LABELS, 5, np.random.default_rng(3))
    for row in range(5):
        labels, scores = LABELS[indices[row]], SCORES[indices[row]]
        expected = point_estimates(labels, scores, threshold)
        for name in METRICS:
            assert sample.values[name][row] == pytest.approx(expected[name], abs=1e-12)
        fpr, tpr, _ = metrics.roc_curve(labels, scores)
        roc = [tpr[fpr <= g + 1e-12].max() for g in sample.grid]
        assert sample.tpr_at_fpr[row] == pytest.approx(roc)
        precision, recall, _ = metrics.precision_recall_curve(labels, scores)
        pr = [precision[np.flatnonzero(recall >= r - 1e-12).max()] for r in sample.grid]
        assert sample.precision_at_recall[row] == pytest.approx(pr)


def test_interval_covers_the_point_estimate():
    cis = metric_intervals(bootstrap(LABELS, SCORES, THRESHOLD, 500, seed=0), 0.95)
    for name, value in point_estimates(LABELS, SCORES, THRESHOLD).items():
        low, high = cis[f"{name}_ci"]
        assert low <= value <= high, name
        assert low < high, name


def test_interval_narrows_with_more_rows():
    def width(rows):
        labels, scores = synthetic(rows, seed=1)
        low, high = metric_intervals(bootstrap(labels, scores, THRESHOLD, 300, seed=0), 0.95)[
            "pr_auc_ci"
        ]
        return high - low

    assert width(4000) < 0.6 * width(400)


def test_higher_confidence_widens_the_interval():
    sample = bootstrap(LABELS, SCORES, THRESHOLD, 300, seed=0)
    narrow = metric_intervals(sample, 0.5)["roc_auc_ci"]
    wide = metric_intervals(sample, 0.99)["roc_auc_ci"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_same_seed_same_interval_other_seed_other_interval():
    def cis(seed):
        return metric_intervals(bootstrap(LABELS, SCORES, THRESHOLD, 200, seed=seed), 0.95)

    assert cis(7) == cis(7)
    assert cis(7) != cis(8)


def test_no_interval_when_off_or_with_one_class():
    assert bootstrap(LABELS, SCORES, THRESHOLD, 0, seed=0) is None
    assert bootstrap(np.zeros(50, int), SCORES[:50], THRESHOLD, 100, seed=0) is None
    assert metric_intervals(None, 0.95) == {}
    assert curve_bands(None, 0.95) == {}


def test_curve_bands_hold_the_curves_on_a_common_grid():
    bands = curve_bands(bootstrap(LABELS, SCORES, THRESHOLD, 200, seed=0), 0.9)
    assert list(bands["pr_band"].columns) == ["recall", "low", "high"]
    assert list(bands["roc_band"].columns) == ["fpr", "low", "high"]
    for band in bands.values():
        assert (band["low"] <= band["high"]).all() and band["high"].le(1).all()
    assert bands["roc_band"]["high"].iloc[-1] == 1.0  # every positive flagged at FPR 1


def test_fewer_positives_than_min_positives_warn_and_flag_unreliable(caplog):
    with caplog.at_level(logging.WARNING, logger="pipelines.intervals"):
        flags = reliability({"val": 40, "test": 4}, min_positives=30)
    assert flags == {
        "reliable": False,
        "min_positives": 30,
        "val_positives": 40,
        "test_positives": 4,
    }
    assert len(caplog.records) == 1 and "test split has 4 positives" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipelines.intervals"):
        assert reliability({"val": 30, "test": 31}, min_positives=30)["reliable"] is True
    assert not caplog.records


def test_intervals_sit_beside_their_metric_and_print_after_it():
    report = beside({"pr_auc": 0.5292, "threshold": 0.4}, {"pr_auc_ci": [0.471, 0.594]})
    assert list(report) == ["pr_auc", "pr_auc_ci", "threshold"]
    assert with_interval(report, "pr_auc") == "0.5292 [0.47, 0.59]"
    assert with_interval({"pr_auc": 0.5}, "pr_auc") == "0.5000"


def test_evaluate_reports_intervals_for_model_baselines_and_segments(
    schema, validate_params, tmp_path, monkeypatch
):
    from sklearn.linear_model import LogisticRegression

    from pipelines import evaluate as stage
    from pipelines.cleaning import clean_rows
    from pipelines.evaluate import evaluate
    from pipelines.features import FeatureTransform
    from pipelines.plots import render_curve_plots
    from tests.conftest import make_frame
    from tests.unit.test_evaluate_register import evaluate_params

    frame = clean_rows(make_frame(n=1500, seed=5), schema, validate_params).clean
    splits = {"train": frame.iloc[:900], "val": frame.iloc[900:1200], "test": frame.iloc[1200:]}
    transform = FeatureTransform.fit(splits["train"], schema)
    model = LogisticRegression(max_iter=500).fit(
        transform.transform(splits["train"]), splits["train"]["label"]
    )

    def score(rows):
        return model.predict_proba(transform.transform(rows))[:, 1]

    # One baseline, the model itself: gradient boosting's fit would dominate this test's time.
    monkeypatch.setattr(stage, "baseline_models", lambda *_: {"lr": (transform, model)})

    cfg = evaluate_params(noise_levels=[], importance_repeats=0, bootstrap_samples=200)
    report, tables = evaluate(score, transform, splits, schema, cfg, seed=0)
    for name in METRICS:
        low, high = report[f"{name}_ci"]
        assert low <= high and list(report).index(f"{name}_ci") == list(report).index(name) + 1
    for baseline in report["baselines"].values():
        assert baseline["pr_auc_ci"][0] <= baseline["pr_auc_ci"][1]
    for entry in report["segments"]["values"].values():
        assert ("pr_auc_ci" in entry) == (entry["pr_auc"] is not None)
        assert entry["reliable"] is (entry["positives"] >= cfg.min_positives)
    segments = tables["segments"].dropna(subset=["pr_auc"])
    assert (segments["pr_auc_low"] <= segments["pr_auc_high"]).all()
    assert report["reliability"]["test_positives"] == splits["test"]["label"].sum()
    assert report["bootstrap"] == {"samples": 200, "confidence": 0.95}
    render_curve_plots(tables, report, tmp_path)
    assert {"pr_curve.png", "roc_curve.png"} <= {p.name for p in tmp_path.iterdir()}

    off, off_tables = evaluate(
        score, transform, splits, schema, cfg.model_copy(update={"bootstrap_samples": 0}), seed=0
    )
    assert not [key for key in off if key.endswith("_ci")] and "pr_band" not in off_tables
    assert all(off[name] == report[name] for name in METRICS)  # point estimates do not move


def test_summary_prints_intervals_and_says_when_a_split_is_unreliable():
    from pipelines import paths
    from pipelines.summary import render

    evaluate = {
        "pr_auc": 0.5292,
        "pr_auc_ci": [0.4712, 0.5931],
        "roc_auc": 0.91,
        "roc_auc_ci": [0.88, 0.94],
        "reliability": {"reliable": True, "min_positives": 30, "val_positives": 40},
        "baselines": {"logistic_regression": {"pr_auc": 0.4, "roc_auc": 0.8}},
    }
    register = {
        "tracking_uri": paths.MLFLOW_DEFAULT_URI,
        "model_name": "m",
        "version": 1,
        "alias": "champion",
        "reason": "first model",
    }
    parts = (
        {"rows": 10},
        {"rows_quarantined": 0, "quarantined": {}},
        evaluate,
        {"serving_artifact": "float"},
        register,
    )
    text = render(*parts)
    assert "test PR-AUC        0.5292 [0.47, 0.59]\n" in text
    assert "ROC-AUC       0.9100 [0.88, 0.94]" in text
    assert "PR-AUC 0.4000, ROC-AUC 0.8000" in text  # a report without intervals still renders
    evaluate["reliability"] |= {"reliable": False, "test_positives": 4}
    assert "UNRELIABLE: positives test 4 < evaluate.min_positives 30" in render(*parts)


def test_intervals_reach_mlflow_as_low_and_high_metrics():
    from pipelines.lineage import metric_values

    report = {
        "pr_auc": 0.5,
        "pr_auc_ci": [0.4, 0.6],
        "reliability": {"reliable": False, "test_positives": 4},
        "segments": {"column": "color", "values": {"red": {"pr_auc_ci": [0.1, 0.9]}}},
    }
    assert metric_values(report) == {
        "pr_auc": 0.5,
        "pr_auc_ci_low": 0.4,
        "pr_auc_ci_high": 0.6,
        "reliability.test_positives": 4,
        "segments.values.red.pr_auc_ci_low": 0.1,
        "segments.values.red.pr_auc_ci_high": 0.9,
    }
    assert metric_values(report, flat=False) == {
        "pr_auc": 0.5,
        "pr_auc_ci_low": 0.4,
        "pr_auc_ci_high": 0.6,
    }
