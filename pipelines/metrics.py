"""The one place metrics are computed: evaluate, quantize and register all score through it.

Ranking metrics (PR-AUC, ROC-AUC) take probabilities; recall, precision and F1 take predicted
labels (0/1 or bool), so that a caller whose model applies its own threshold (register's
pyfunc) and one that applies a threshold here score alike. Thresholds are chosen on validation
only (``choose_threshold``); test is used once, for reporting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as sk

from pipelines.config import EvaluateParams

MAX_CURVE_POINTS = 400


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision, the area under the precision-recall curve."""
    return float(sk.average_precision_score(labels, scores))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(sk.roc_auc_score(labels, scores))


def recall(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Recall of predicted labels; 0 when there is no positive."""
    return float(sk.recall_score(labels, predicted, zero_division=0))


def precision(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Precision of predicted labels; 0 when nothing is predicted positive."""
    return float(sk.precision_score(labels, predicted, zero_division=0))


def f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(sk.f1_score(labels, predicted, zero_division=0))


def brier(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(sk.brier_score_loss(labels, scores))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int) -> float:
    """Mean |predicted - observed| positive rate over equal-width score bins, row-weighted."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(scores[in_bin].mean() - labels[in_bin].mean())
    return float(total)


def quality(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """PR-AUC, ROC-AUC and recall at ``threshold``: what the quantization gate compares."""
    return {
        "pr_auc": pr_auc(labels, scores),
        "roc_auc": roc_auc(labels, scores),
        "recall": recall(labels, scores >= threshold),
    }


def metrics_at_threshold(
    labels: np.ndarray, scores: np.ndarray, threshold: float, bins: int
) -> dict:
    """Every test metric at ``threshold``, with the confusion counts and split size."""
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = sk.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "pr_auc": pr_auc(labels, scores),
        "roc_auc": roc_auc(labels, scores),
        "f1": f1(labels, predicted),
        "precision": precision(labels, predicted),
        "recall": recall(labels, predicted),
        "brier": brier(labels, scores),
        "ece": expected_calibration_error(labels, scores, bins),
        "threshold": threshold,
        "true_positives": int(tp),
        "false_positives": int(fp),
        "true_negatives": int(tn),
        "false_negatives": int(fn),
        "test_rows": int(len(labels)),
        "test_positives": int(labels.sum()),
    }


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 on the given (validation) data."""
    precisions, recalls, thresholds = sk.precision_recall_curve(labels, scores)
    f1s = 2 * precisions[:-1] * recalls[:-1] / np.maximum(precisions[:-1] + recalls[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1s))])


def min_cost_threshold(
    labels: np.ndarray, scores: np.ndarray, cost_fp: float, cost_fn: float
) -> float:
    """The threshold minimising cost_fp x false positives + cost_fn x false negatives."""
    order = np.argsort(-scores, kind="stable")
    ranked, ranked_labels = scores[order], labels[order]
    true_pos = np.cumsum(ranked_labels)
    false_pos = np.cumsum(1 - ranked_labels)
    # Flagging everything scoring >= ranked[i] flags rows 0..last[i], ties included.
    last = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]
    cost = cost_fp * false_pos[last] + cost_fn * (labels.sum() - true_pos[last])
    if cost_fn * labels.sum() < cost.min():  # flagging nothing is cheapest
        return float(np.nextafter(ranked[0], np.inf))
    return float(ranked[last][int(np.argmin(cost))])


def choose_threshold(labels: np.ndarray, scores: np.ndarray, cfg: EvaluateParams) -> float:
    """The decision threshold by ``cfg.threshold_objective``; pass validation data only."""
    if cfg.threshold_objective == "cost":
        return min_cost_threshold(labels, scores, cfg.cost_fp, cfg.cost_fn)
    return best_f1_threshold(labels, scores)


def operating_points(labels: np.ndarray, scores: np.ndarray, cfg: EvaluateParams) -> dict:
    """Recall at the target precision and precision at the target recall (0 if unreachable)."""
    precisions, recalls, _ = sk.precision_recall_curve(labels, scores)
    reach_precision = precisions >= cfg.target_precision
    reach_recall = recalls >= cfg.target_recall
    return {
        "recall_at_precision": float(recalls[reach_precision].max())
        if reach_precision.any()
        else 0.0,
        "precision_at_recall": float(precisions[reach_recall].max()) if reach_recall.any() else 0.0,
        "target_precision": cfg.target_precision,
        "target_recall": cfg.target_recall,
    }


def curves(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    bins: int,
    val_labels: np.ndarray,
    val_scores: np.ndarray,
) -> dict[str, pd.DataFrame]:
    """Test PR, ROC, confusion and calibration tables, and validation's threshold curve."""
    precisions, recalls, _ = sk.precision_recall_curve(labels, scores)
    fpr, tpr, _ = sk.roc_curve(labels, scores)
    observed, predicted = _calibration(labels, scores, bins)
    val_precisions, val_recalls, val_thresholds = sk.precision_recall_curve(val_labels, val_scores)
    return {
        "threshold": _thin(
            pd.DataFrame(
                {
                    "threshold": val_thresholds,
                    "precision": val_precisions[:-1],
                    "recall": val_recalls[:-1],
                }
            )
        ),
        "pr": _thin(pd.DataFrame({"recall": recalls, "precision": precisions})),
        "roc": _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
        "confusion": pd.DataFrame(
            {"actual": labels.astype(int), "predicted": (scores >= threshold).astype(int)}
        ),
        "calibration": pd.DataFrame({"mean_predicted": predicted, "fraction_positive": observed}),
    }


def _calibration(
    labels: np.ndarray, scores: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.calibration import calibration_curve

    return calibration_curve(labels, scores, n_bins=bins, strategy="quantile")


def _thin(curve: pd.DataFrame) -> pd.DataFrame:
    """At most MAX_CURVE_POINTS evenly spaced rows, so plots files stay small."""
    if len(curve) <= MAX_CURVE_POINTS:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, MAX_CURVE_POINTS).astype(int))
    return curve.iloc[keep].reset_index(drop=True)
