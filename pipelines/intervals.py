"""Uncertainty of the reported metrics: seeded stratified bootstrap intervals and bands.

On a split with a handful of positives one PR-AUC is mostly noise, so every headline metric
comes with a percentile interval. Positives and negatives are resampled separately, so every
resample keeps the split's class counts (and both classes). Nothing is sorted per resample:
the scores are bucketed once (by the positives' scores and the threshold), and every metric
and curve of a resample comes from cumulative sums of its rows' counts per bucket. A split with fewer than
``min_positives`` positives is flagged unreliable, interval or not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

METRICS = ("pr_auc", "roc_auc", "recall", "precision", "f1")
# Curve bands are evaluated on this many evenly spaced recall / false positive rate values.
GRID_POINTS = 101
# Resamples per block: bounds the memory of the (block, rows) index matrices.
BLOCK_ELEMENTS = 2_000_000


def stratified_indices(labels: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of ``n_samples`` resamples, shape (n_samples, rows): each row draws the
    split's positives (first, in the leading columns) and negatives with replacement, each
    from its own class, so every resample has exactly the split's class counts."""
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    return np.concatenate(
        [
            positives[rng.integers(0, len(positives), (n_samples, len(positives)))],
            negatives[rng.integers(0, len(negatives), (n_samples, len(negatives)))],
        ],
        axis=1,
    )


@dataclass(frozen=True)
class Bootstrap:
    """Each metric over the resamples, and the PR and ROC curves on a common grid."""

    values: dict[str, np.ndarray]  # metric -> (n_samples,)
    grid: np.ndarray  # recall for the PR curve, false positive rate for ROC
    precision_at_recall: np.ndarray  # (n_samples, GRID_POINTS)
    tpr_at_fpr: np.ndarray  # (n_samples, GRID_POINTS)


def bootstrap(
    labels: np.ndarray, scores: np.ndarray, threshold: float, n_samples: int, seed: int
) -> Bootstrap | None:
    """The metrics of ``n_samples`` stratified resamples; None with one class only."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype="float64")
    n_pos = int(labels.sum())
    if n_samples <= 0 or n_pos == 0 or n_pos == len(labels):
        return None
    rank, width, flagged = _score_ranks(labels, scores, threshold)
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_ELEMENTS // max(len(labels), width))
    parts = []
    for start in range(0, n_samples, block):
        indices = stratified_indices(labels, min(block, n_samples - start), rng)
        pos = _counts(rank[indices[:, :n_pos]], width)
        neg = _counts(rank[indices[:, n_pos:]], width)
        parts.append(_block_metrics(pos, neg, flagged, grid))
    values = {name: np.concatenate([p[0][name] for p in parts]) for name in METRICS}
    return Bootstrap(
        values=values,
        grid=grid,
        precision_at_recall=np.concatenate([p[1] for p in parts]),
        tpr_at_fpr=np.concatenate([p[2] for p in parts]),
    )


def _score_ranks(
    labels: np.ndarray, scores: np.ndarray, threshold: float
) -> tuple[np.ndarray, int, int]:
    """Each row's score bucket, highest first; the bucket count; how many buckets are flagged.

    Every metric here depends only on where negatives fall relative to the positives' scores
    and the threshold, so the buckets are those cut points themselves (for ties) and the open
    ranges between them: about twice the positives' count instead of one per distinct score.
    """
    cuts = np.unique(np.r_[scores[labels == 1], threshold])
    below = np.searchsorted(cuts, scores, side="left")
    tie = (below < len(cuts)) & (cuts[np.minimum(below, len(cuts) - 1)] == scores)
    width = 2 * len(cuts) + 1
    ascending = 2 * below + tie
    at_threshold = 2 * int(np.searchsorted(cuts, threshold)) + 1
    return width - 1 - ascending, width, width - at_threshold


def _counts(ranks: np.ndarray, width: int) -> np.ndarray:
    """How often each bucket occurs in each resample, shape (resamples, width)."""
    offsets = width * np.arange(len(ranks))[:, None]
    flat = np.bincount((ranks + offsets).ravel(), minlength=width * len(ranks))
    return flat.reshape(len(ranks), width)


def _block_metrics(
    pos: np.ndarray, neg: np.ndarray, flagged: int, grid: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Metrics and curves of a block of resamples from their per-bucket class counts."""
    n_pos, n_neg = int(pos[0].sum()), int(neg[0].sum())  # the same in every resample
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)  # flagging each bucket and above
    # Average precision as scikit-learn defines it: the recall gained at each threshold times
    # the precision there (tp + fp > 0 wherever pos > 0).
    pr_auc = (pos * (tp / np.maximum(tp + fp, 1))).sum(axis=1) / n_pos
    # ROC-AUC as the rank statistic: each positive beats the negatives scoring lower and ties
    # half of those scoring the same.
    roc_auc = (pos * ((n_neg - fp) + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    hits = tp[:, flagged - 1].astype("float64") if flagged else np.zeros(len(pos))
    alarms = fp[:, flagged - 1].astype("float64") if flagged else np.zeros(len(pos))
    predicted = hits + alarms
    values = {
        "pr_auc": pr_auc,
        "roc_auc": roc_auc,
        "recall": hits / n_pos,
        "precision": np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0),
        "f1": 2 * hits / (2 * hits + alarms + (n_pos - hits)),
    }
    # PR band: precision where recall first reaches each grid value (at recall 0, nothing is
    # flagged yet: precision 1, as scikit-learn's curve starts).
    needed = np.ceil(grid * n_pos - 1e-9).astype(int)
    at = _first_reaching(tp, needed, n_pos)
    hit, alarm = _take(tp, at), _take(fp, at)
    precision_at_recall = np.where(needed == 0, 1.0, hit / np.maximum(hit + alarm, 1))
    # ROC band: TPR at the last bucket whose false positives stay within each grid value.
    allowed = np.floor(grid * n_neg + 1e-9).astype(int)
    last = _first_reaching(fp, allowed + 1, n_neg + 1) - 1
    tpr_at_fpr = np.where(last >= 0, _take(tp, last), 0) / n_pos
    return values, precision_at_recall, tpr_at_fpr


def _first_reaching(cumulative: np.ndarray, targets: np.ndarray, top: int) -> np.ndarray:
    """Per row, the first column whose nondecreasing count reaches each target (columns when
    none does). Rows are offset by ``top + 1`` so one searchsorted serves them all."""
    rows, width = cumulative.shape
    offsets = (top + 1) * np.arange(rows)[:, None]
    found = np.searchsorted((cumulative + offsets).ravel(), (targets + offsets).ravel())
    return found.reshape(rows, len(targets)) - width * np.arange(rows)[:, None]


def _take(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[row, columns[row]]`` for each row, columns clipped into range."""
    clipped = np.clip(columns, 0, matrix.shape[1] - 1)
    return np.take_along_axis(matrix, clipped, axis=1)


def percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    """The central ``confidence`` share of the bootstrap values, as [low, high]."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return [float(low), float(high)]


def metric_intervals(
    sample: Bootstrap | None, confidence: float, names: tuple[str, ...] = METRICS
) -> dict[str, list[float]]:
    """``{"<metric>_ci": [low, high]}`` for each metric named; empty without a bootstrap."""
    if sample is None:
        return {}
    return {f"{name}_ci": percentile_interval(sample.values[name], confidence) for name in names}


def beside(report: dict, cis: dict[str, list[float]]) -> dict:
    """``report`` with each ``<metric>_ci`` right after its metric, for a reader of the JSON."""
    out = {}
    for key, value in report.items():
        out[key] = value
        if f"{key}_ci" in cis:
            out[f"{key}_ci"] = cis[f"{key}_ci"]
    return out


def curve_bands(sample: Bootstrap | None, confidence: float) -> dict[str, pd.DataFrame]:
    """Pointwise bands of the PR curve (precision by recall) and of the ROC curve (TPR by FPR);
    empty without a bootstrap."""
    if sample is None:
        return {}
    tail = (1.0 - confidence) / 2.0
    bands = {}
    for name, x, curve in (
        ("pr_band", "recall", sample.precision_at_recall),
        ("roc_band", "fpr", sample.tpr_at_fpr),
    ):
        low, high = np.quantile(curve, [tail, 1.0 - tail], axis=0)
        bands[name] = pd.DataFrame({x: sample.grid, "low": low, "high": high})
    return bands


def reliability(positives: dict[str, int], min_positives: int) -> dict:
    """Whether every split has at least ``min_positives`` positives; a WARNING names each that
    has fewer, since its metrics (and a threshold chosen on it) are mostly noise."""
    short = {split: count for split, count in positives.items() if count < min_positives}
    for split, count in short.items():
        log.warning(
            "the %s split has %d positives (< evaluate.min_positives %d): its metrics are "
            "unreliable; read their intervals, not the point estimates",
            split,
            count,
            min_positives,
        )
    return {
        "reliable": not short,
        "min_positives": min_positives,
        **{f"{split}_positives": count for split, count in positives.items()},
    }


def with_interval(report: dict, metric: str) -> str:
    """``"0.5292 [0.47, 0.59]"``: a metric and its interval, or the metric alone without one."""
    ci = report.get(f"{metric}_ci")
    text = f"{report[metric]:.4f}"
    return f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else text


def cv_estimate(cv: dict, metric: str = "pr_auc") -> str:
    """A cross-validated metric as '0.8123 +/- 0.0412 (5-fold CV on 900 train+val rows, 40
    positives)': the mean and standard deviation over evaluate's folds."""
    return (
        f"{cv[metric]['mean']:.4f} +/- {cv[metric]['std']:.4f} "
        f"({cv['folds']}-fold CV on {cv['rows']} train+val rows, {cv['positives']} positives)"
    )
