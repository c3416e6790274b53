"""Evaluate's bootstrap intervals against the same resamples scored one by one with sklearn.

``pipelines.intervals.bootstrap`` scores every resample of a split from bucket counts and
cumulative sums; the reference scores each resample with scikit-learn's average precision,
ROC-AUC, recall, precision and F1 (no curves), timed on a few resamples and scaled up.

    python -m bench.intervals_speed [--rows 10000] [--samples 1000] [--reference 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn import metrics

from pipelines.intervals import bootstrap, stratified_indices

THRESHOLD = 0.5


def synthetic(rows: int, positive_rate: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < positive_rate).astype(int)
    return labels, np.clip(0.3 * labels + 0.7 * rng.random(rows), 0, 1)


def reference_seconds(labels: np.ndarray, scores: np.ndarray, samples: int) -> float:
    """Seconds per resample of scikit-learn's five metrics on stratified resamples."""
    indices = stratified_indices(labels, samples, np.random.default_rng(0))
    started = time.perf_counter()
    for row in indices:
        y, s = labels[row], scores[row]
        predicted = s >= THRESHOLD
        metrics.average_precision_score(y, s)
        metrics.roc_auc_score(y, s)
        metrics.recall_score(y, predicted)
        metrics.precision_score(y, predicted, zero_division=0)
        metrics.f1_score(y, predicted)
    return (time.perf_counter() - started) / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--reference", type=int, default=20, help="sklearn resamples timed")
    args = parser.parse_args()
    print(f"{args.rows} rows, {args.samples} resamples (reference: {args.reference}, scaled)")
    print(f"{'positives':>10s} {'bootstrap s':>12s} {'sklearn s':>10s} {'speed-up':>9s}")
    for rate in (0.01, 0.05, 0.5):
        labels, scores = synthetic(args.rows, rate)
        started = time.perf_counter()
        bootstrap(labels, scores, THRESHOLD, args.samples, seed=0)
        ours = time.perf_counter() - started
        theirs = reference_seconds(labels, scores, args.reference) * args.samples
        print(f"{rate:>10.0%} {ours:>12.2f} {theirs:>10.1f} {theirs / ours:>8.0f}x")


if __name__ == "__main__":
    main()
