"""Small-data mode: k-fold CV on train+validation only, reported beside test."""

import pytest

from pipelines import crossval
from pipelines.config import EvaluateParams, RebalanceParams
from pipelines.errors import PipelineError
from pipelines.intervals import cv_estimate

EVALUATE = EvaluateParams(
    calibration_bins=10,
    threshold_objective="f1",
    cost_fp=1,
    cost_fn=1,
    target_precision=0.8,
    target_recall=0.8,
    baselines=False,
    segment_column=None,
    noise_levels=[],
    importance_repeats=0,
    cv="auto",
    cv_below_rows=500,
    cv_folds=3,
)
REBALANCE = RebalanceParams(
    strategy="class_weight", sampling_ratio=0.5, k_neighbors=3, small_minority="reduce_k"
)


@pytest.mark.parametrize(
    "setting, rows, expected",
    [("auto", 499, True), ("auto", 500, False), ("on", 10**6, True), ("off", 10, False)],
)
def test_wanted_by_setting_and_size(setting, rows, expected):
    assert crossval.wanted(EVALUATE.model_copy(update={"cv": setting}), rows) is expected


def test_too_few_positives_stops_naming_the_counts():
    with pytest.raises(PipelineError, match="1 positive and 50 negative"):
        crossval.folds_for(1, 50, 5)
    assert crossval.folds_for(3, 50, 5) == 3


def test_cross_validation_scores_every_fold(frame, schema, train_params):
    pool, cfg = frame.iloc[:300], EVALUATE.model_copy(update={"cv_folds": 2})
    cv = crossval.cross_validate(pool, schema, cfg, train_params(epochs=1), REBALANCE, 0)
    assert cv["folds"] == 2 and cv["rows"] == 300 and cv["positives"] == int(pool.label.sum())
    assert len(cv["pr_auc"]["folds"]) == 2 and 0 <= cv["roc_auc"]["mean"] <= 1
    expected = f"(2-fold CV on 300 train+val rows, {cv['positives']} positives)"
    assert cv_estimate(cv).endswith(expected)


def test_summary_shows_the_cv_estimate_beside_test():
    from pipelines.summary import cv_lines

    cv = {"folds": 5, "rows": 455, "positives": 170}
    cv |= {name: {"mean": 0.95, "std": 0.02, "folds": []} for name in ("pr_auc", "roc_auc")}
    assert cv_lines({}) == []
    assert cv_lines({"cross_validation": cv})[0] == (
        "  CV PR-AUC          0.9500 +/- 0.0200 (5-fold CV on 455 train+val rows, 170 positives)"
    )
