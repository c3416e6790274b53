"""Paired comparisons of two models scored on the same rows: is one better, or only luckier?

Two tests of the difference ``a - b`` between two models' scores of the same labelled rows:

- :func:`paired_bootstrap`: resample the rows (positives and negatives separately, so every
  resample keeps the split's class counts), score *both* models on each resample, and take
  the percentile interval of the difference. Pairing cancels the rows' shared difficulty,
  which two separate intervals would count twice. A resample is a vector of row counts, so
  each model's rows are sorted once and every resample is a weighted cumulative sum:
  vectorised, and exact against scikit-learn's average precision with ties.
- :func:`delong`: DeLong, DeLong and Clarke-Pearson's (1988) test of two correlated ROC-AUCs,
  in Sun and Xu's (2014) midrank form; an asymptotic normal interval and a two-sided p-value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

# A metric of one model over many resamples: (labels, scores, counts[resample, row]) -> values.
WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# Resample-by-row matrices are built in chunks of about this many cells (float64: ~32 MB).
CHUNK_CELLS = 4_000_000
BOOTSTRAP = "paired stratified bootstrap"
DELONG = "DeLong"


@dataclass(frozen=True)
class Difference:
    """``a - b`` for one metric, with its interval at ``confidence`` and the test behind it."""

    metric: str
    test: str
    a: float
    b: float
    difference: float
    lower: float
    upper: float
    confidence: float
    samples: int | None = None  # bootstrap resamples
    p_value: float | None = None  # DeLong: two-sided, no difference


def weighted_average_precision(
    labels: np.ndarray, scores: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Average precision (scikit-learn's, ties included) of each resample, a row of ``counts``.

    AP is the mean, over positives, of the precision at the lowest threshold that still flags
    them: the end of their tie group in score order. Rows a resample left out weigh 0. Only
    the rows flagged up to each positive's threshold are summed, segment by segment."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    at = np.flatnonzero(labels[order] == 1)  # the positives' ranks
    # The last rank of each row's tie group: thresholds fall only between distinct scores.
    ends = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]
    positive_end = ends[np.searchsorted(ends, at)]
    cuts = np.unique(positive_end)
    # Segments end at the cuts; a last one past the lowest cut, when there is one, is unused.
    starts = np.r_[0, cuts + 1][: len(cuts) + int(cuts[-1] + 1 < len(ranked))]
    weights = counts[:, order]
    flagged = np.cumsum(np.add.reduceat(weights, starts, axis=1), axis=1, dtype=np.float64)
    flagged = flagged[:, np.searchsorted(cuts, positive_end)]
    kept = weights[:, at].astype(np.float64)
    # Positives flagged at a positive's threshold: itself, those ranked above, its ties.
    true_pos = np.cumsum(kept, axis=1)[:, np.searchsorted(at, positive_end, side="right") - 1]
    precision = np.divide(true_pos, flagged, out=np.zeros_like(true_pos), where=flagged > 0)
    return (kept * precision).sum(axis=1) / kept.sum(axis=1)


def stratified_counts(labels: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``samples`` bootstrap resamples as row counts, each keeping the class counts of ``labels``."""
    counts = np.zeros((samples, len(labels)), dtype=np.int32)
    for stratum in (labels == 1, labels != 1):
        rows = np.flatnonzero(stratum)
        drawn = rng.integers(0, len(rows), size=(samples, len(rows)))
        # One bincount for all resamples: resample i counts its draws in bins i*m .. i*m+m-1.
        flat = (drawn + len(rows) * np.arange(samples)[:, None]).ravel()
        counts[:, rows] = np.bincount(flat, minlength=samples * len(rows)).reshape(samples, -1)
    return counts


def paired_bootstrap(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    samples: int,
    confidence: float,
    seed: int,
    metric: WeightedMetric = weighted_average_precision,
    name: str = "pr_auc",
) -> Difference:
    """The difference ``metric(a) - metric(b)`` on the same rows, with its percentile interval
    over ``samples`` stratified resamples, each scoring both models on the same rows."""
    labels = _check(labels, scores_a, scores_b)
    rng = np.random.default_rng(seed)
    whole = np.ones((1, len(labels)), dtype=np.int32)
    point_a, point_b = (float(metric(labels, s, whole)[0]) for s in (scores_a, scores_b))
    chunk = max(1, CHUNK_CELLS // len(labels))
    differences = []
    for start in range(0, samples, chunk):
        counts = stratified_counts(labels, min(chunk, samples - start), rng)
        differences.append(metric(labels, scores_a, counts) - metric(labels, scores_b, counts))
    spread = np.concatenate(differences)
    tail = (1 - confidence) / 2
    lower, upper = np.quantile(spread, [tail, 1 - tail])
    return Difference(
        metric=name,
        test=BOOTSTRAP,
        a=point_a,
        b=point_b,
        difference=point_a - point_b,
        lower=float(lower),
        upper=float(upper),
        confidence=confidence,
        samples=samples,
    )


def delong(
    labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, *, confidence: float
) -> Difference:
    """DeLong's test of ROC-AUC(a) - ROC-AUC(b) on the same rows."""
    labels = _check(labels, scores_a, scores_b)
    positive = labels == 1
    scores = np.vstack([scores_a, scores_b])
    # Placement values: how each positive ranks among negatives, and each negative among
    # positives (midranks, so ties count a half); their means are the two AUCs.
    ranks_all = stats.rankdata(scores, axis=1)
    ranks_pos = stats.rankdata(scores[:, positive], axis=1)
    ranks_neg = stats.rankdata(scores[:, ~positive], axis=1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    v_pos = (ranks_all[:, positive] - ranks_pos) / n_neg
    v_neg = 1 - (ranks_all[:, ~positive] - ranks_neg) / n_pos
    aucs = v_pos.mean(axis=1)
    covariance = _cov(v_pos) / n_pos + _cov(v_neg) / n_neg
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = float(aucs[0] - aucs[1])
    spread = float(np.sqrt(max(variance, 0.0)))
    if spread > 0:
        p_value = float(2 * stats.norm.sf(abs(difference) / spread))
    else:  # identical rankings (or a single row per class): no evidence of any difference
        p_value = 1.0 if difference == 0 else 0.0
    half = float(stats.norm.ppf((1 + confidence) / 2)) * spread
    return Difference(
        metric="roc_auc",
        test=DELONG,
        a=float(aucs[0]),
        b=float(aucs[1]),
        difference=difference,
        lower=difference - half,
        upper=difference + half,
        confidence=confidence,
        p_value=p_value,
    )


def _cov(placements: np.ndarray) -> np.ndarray:
    """The 2x2 covariance of two models' placement values (0 with a single row)."""
    if placements.shape[1] < 2:
        return np.zeros((2, 2))
    return np.cov(placements)


def _check(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> np.ndarray:
    """0/1 labels of the rows both models scored; a comparison needs both classes."""
    labels = np.asarray(labels).astype(int)
    if not len(labels) == len(scores_a) == len(scores_b):
        raise ValueError(
            f"the two models scored different rows: {len(scores_a)} and {len(scores_b)} "
            f"scores for {len(labels)} labels"
        )
    positives = int((labels == 1).sum())
    if positives == 0 or positives == len(labels):
        raise ValueError(
            f"comparing two models needs both classes: {positives} positives in {len(labels)} rows"
        )
    return labels
