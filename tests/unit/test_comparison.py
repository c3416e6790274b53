"""Paired comparisons: the vectorised metrics agree with scikit-learn and with the textbook."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics

from pipelines.comparison import (
    delong,
    paired_bootstrap,
    stratified_counts,
    weighted_average_precision,
)


def scored(seed: int, rows: int, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.1).astype(int)
    labels[:2] = [1, 0]
    a = rng.random(rows) + 0.5 * labels
    b = rng.random(rows) + 0.3 * labels
    if decimals is not None:  # coarse scores: many ties
        a, b = np.round(a, decimals), np.round(b, decimals)
    return labels, a, b


@pytest.mark.parametrize(("seed", "rows", "decimals"), [(0, 50, 1), (1, 500, 2), (2, 2000, None)])
def test_weighted_average_precision_is_scikit_learns_on_every_resample(seed, rows, decimals):
    labels, scores, _ = scored(seed, rows, decimals)
    counts = np.vstack(
        [np.ones(rows, dtype=np.int32), stratified_counts(labels, 5, np.random.default_rng(0))]
    )
    values = weighted_average_precision(labels, scores, counts)
    for value, row in zip(values, counts, strict=True):
        picked = np.repeat(np.arange(rows), row)
        expected = metrics.average_precision_score(labels[picked], scores[picked])
        assert value == pytest.approx(expected, abs=1e-12)


def test_resamples_keep_the_class_counts():
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 1])
    counts = stratified_counts(labels, 200, np.random.default_rng(3))
    assert (counts[:, labels == 1].sum(axis=1) == 3).all()
    assert (counts[:, labels == 0].sum(axis=1) == 5).all()


def test_paired_bootstrap_is_antisymmetric_seeded_and_zero_for_one_model():
    labels, a, b = scored(4, 300)
    forward = paired_bootstrap(labels, a, b, samples=500, confidence=0.9, seed=1)
    backward = paired_bootstrap(labels, b, a, samples=500, confidence=0.9, seed=1)
    assert forward.difference == pytest.approx(
        metrics.average_precision_score(labels, a) - metrics.average_precision_score(labels, b)
    )
    assert forward.lower == pytest.approx(-backward.upper)
    assert forward.lower < forward.difference < forward.upper
    assert paired_bootstrap(labels, a, b, samples=500, confidence=0.9, seed=1) == forward
    same = paired_bootstrap(labels, a, a.copy(), samples=500, confidence=0.9, seed=1)
    assert (same.difference, same.lower, same.upper) == (0.0, 0.0, 0.0)


def test_delong_matches_the_pairwise_definition():
    labels, a, b = scored(5, 120, decimals=1)
    result = delong(labels, a, b, confidence=0.95)
    positive = labels == 1

    def components(scores):
        # psi(x, y) = 1 if x > y, 1/2 on a tie: every positive against every negative.
        pairs = scores[positive][:, None] - scores[~positive][None, :]
        psi = (pairs > 0) + 0.5 * (pairs == 0)
        return psi.mean(axis=1), psi.mean(axis=0)

    (pos_a, neg_a), (pos_b, neg_b) = components(a), components(b)
    variance = np.cov(pos_a - pos_b) / positive.sum() + np.cov(neg_a - neg_b) / (~positive).sum()
    z = (pos_a.mean() - pos_b.mean()) / np.sqrt(variance)
    assert result.difference == pytest.approx(
        metrics.roc_auc_score(labels, a) - metrics.roc_auc_score(labels, b)
    )
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert result.upper - result.difference == pytest.approx(1.959964 * np.sqrt(variance))
    identical = delong(labels, a, a.copy(), confidence=0.95)
    assert (identical.difference, identical.p_value) == (0.0, 1.0)


def test_a_comparison_needs_both_classes_and_the_same_rows():
    with pytest.raises(ValueError, match="0 positives in 3 rows"):
        paired_bootstrap(np.zeros(3), np.ones(3), np.ones(3), samples=10, confidence=0.9, seed=0)
    with pytest.raises(ValueError, match="different rows"):
        delong(np.array([0, 1]), np.ones(2), np.ones(3), confidence=0.9)
