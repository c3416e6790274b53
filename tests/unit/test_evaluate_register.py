import numpy as np
import pytest
from sklearn import metrics

from pipelines.config import RegisterParams
from pipelines.evaluate import best_f1_threshold, expected_calibration_error, metrics_at_threshold
from pipelines.register import gate_decision

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


GATE = RegisterParams(model_name="m", experiment_name="e", min_delta=0.01, min_pr_auc=0.2)


@pytest.mark.parametrize(
    ("challenger", "champion", "promoted"),
    [
        (0.5, None, True),
        (0.1, None, False),
        (0.52, 0.5, True),
        (0.505, 0.5, False),
        (0.4, 0.5, False),
    ],
)
def test_gate_never_promotes_a_worse_model(challenger, champion, promoted):
    decision, reason = gate_decision(challenger, champion, GATE)
    assert decision is promoted
    assert f"{challenger:.4f}" in reason
