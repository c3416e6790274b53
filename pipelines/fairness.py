"""Disparity across the groups of declared sensitive columns (``evaluate.sensitive_columns``).

For each column, the test rows are grouped by its value; each group's recall and false
positive rate at the decision threshold are reported, and so is their ratio across groups
(lowest group over highest: 1 is parity). The disparity of a column is 1 - the smaller of the
two ratios. Intervals come from the same stratified bootstrap as every other metric
(``pipelines.intervals``): each resample recomputes every group's rates and both ratios. A
group without positives has no recall (and one without negatives no FPR); it is left out of
that ratio and reported as such.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.errors import PipelineError
from pipelines.intervals import percentile_interval, stratified_indices

MAX_GROUPS = 20


def _rates(codes: np.ndarray, labels: np.ndarray, flagged: np.ndarray, groups: int) -> tuple:
    """Per-group recall and FPR (NaN where undefined), from counts."""
    positives = np.bincount(codes, weights=labels, minlength=groups)
    negatives = np.bincount(codes, weights=1 - labels, minlength=groups)
    hits = np.bincount(codes, weights=labels * flagged, minlength=groups)
    alarms = np.bincount(codes, weights=(1 - labels) * flagged, minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / positives, alarms / negatives


def ratio(values: np.ndarray) -> float:
    """Lowest over highest of the defined values; 1.0 when all are zero or fewer than two."""
    defined = values[~np.isnan(values)]
    if len(defined) < 2 or defined.max() == 0:
        return 1.0
    return float(defined.min() / defined.max())


def column_disparity(
    groups: pd.Series,
    labels: np.ndarray,
    flagged: np.ndarray,
    samples: int,
    confidence: float,
    seed: int,
) -> dict:
    """One sensitive column's per-group rates, ratios and disparity, with intervals."""
    names, codes = np.unique(groups.astype(str).to_numpy(), return_inverse=True)
    if len(names) > MAX_GROUPS:
        raise PipelineError(
            f"evaluate.sensitive_columns: {groups.name!r} has {len(names)} values; at most "
            f"{MAX_GROUPS} groups are compared"
        )
    labels, flagged = labels.astype(float), flagged.astype(float)
    recall, fpr = _rates(codes, labels, flagged, len(names))
    recall_ratio, fpr_ratio = ratio(recall), ratio(fpr)
    report: dict = {
        # A list, not a dict keyed by value: group values need not be valid MLflow metric names.
        "groups": [
            {
                "group": str(name),
                "rows": int((codes == i).sum()),
                "positives": int(labels[codes == i].sum()),
                "recall": None if np.isnan(recall[i]) else float(recall[i]),
                "fpr": None if np.isnan(fpr[i]) else float(fpr[i]),
            }
            for i, name in enumerate(names)
        ],
        "recall_ratio": recall_ratio,
        "fpr_ratio": fpr_ratio,
        "disparity": 1 - min(recall_ratio, fpr_ratio),
    }
    if samples > 0 and 0 < labels.sum() < len(labels):
        rng = np.random.default_rng(seed)
        resampled: dict[str, list[float]] = {"recall_ratio": [], "fpr_ratio": [], "disparity": []}
        for rows in stratified_indices(labels.astype(int), samples, rng):
            r, f = _rates(codes[rows], labels[rows], flagged[rows], len(names))
            resampled["recall_ratio"].append(ratio(r))
            resampled["fpr_ratio"].append(ratio(f))
            resampled["disparity"].append(1 - min(ratio(r), ratio(f)))
        for key, values in resampled.items():
            report[f"{key}_ci"] = percentile_interval(np.asarray(values), confidence)
    return report


def disparities(
    test: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    target: str,
    columns: list[str],
    samples: int,
    confidence: float,
    seed: int,
) -> dict:
    """``column_disparity`` for each sensitive column of the test split."""
    missing = [name for name in columns if name not in test.columns]
    if missing:
        raise PipelineError(
            f"evaluate.sensitive_columns: {', '.join(map(repr, missing))} not in the test split"
        )
    labels, flagged = test[target].to_numpy(), np.asarray(scores) >= threshold
    return {
        name: column_disparity(test[name], labels, flagged, samples, confidence, seed)
        for name in columns
    }
