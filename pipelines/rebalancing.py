"""How a rebalance strategy is applied to a training split: the strategy table and its core.

Shared by the rebalance stage and the tune stage (which resamples the training split itself in
each trial), so that both apply a strategy the same way. Strategies (``rebalance.strategy``):

* ``none``; ``class_weight``: no resampling, class weights handed to training;
* oversamplers ``smote``, ``borderline_smote``, ``adasyn``, and ``smote_nc`` (SMOTE-NC, for
  mixed numeric and categorical features);
* ``random_under``: drop majority rows;
* ``smote_tomek``, ``smote_enn``: SMOTE, then Tomek-link or ENN cleaning.

How rows are resampled lives in ``pipelines.resampling``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipelines.config import RebalanceParams
from pipelines.origin import ORIGIN_COLUMN, REBALANCE, with_origin
from pipelines.resampling import (
    Oversample,
    adasyn,
    borderline_smote,
    edited_nearest_neighbours,
    random_under,
    smote,
    smote_nc,
    tomek_links,
)
from pipelines.schema import Schema

log = logging.getLogger(__name__)

# (train, schema, params, seed) -> (resampled rows, neighbour count used or None)
Resample = Callable[[pd.DataFrame, Schema, RebalanceParams, int], tuple[pd.DataFrame, int | None]]


@dataclass(frozen=True)
class Strategy:
    """How one ``rebalance.strategy`` is applied."""

    resample: Resample | None = None  # None: the rows pass through unchanged
    class_weights: bool = False  # hand training per-class loss weights instead


STRATEGIES: dict[str, Strategy] = {
    "none": Strategy(),
    "class_weight": Strategy(class_weights=True),
    "random_under": Strategy(resample=random_under),
    "smote": Strategy(resample=Oversample(smote)),
    "smote_nc": Strategy(resample=Oversample(smote_nc)),
    "borderline_smote": Strategy(resample=Oversample(borderline_smote)),
    "adasyn": Strategy(resample=Oversample(adasyn)),
    "smote_tomek": Strategy(resample=Oversample(smote, tomek_links)),
    "smote_enn": Strategy(resample=Oversample(smote, edited_nearest_neighbours)),
}


def class_counts(frame: pd.DataFrame, target: str) -> dict[str, int]:
    positives = int(frame[target].sum())
    return {"negative": len(frame) - positives, "positive": positives}


def class_weights(counts: dict[str, int], ratio: float) -> dict[str, float]:
    """Weights giving positives ``ratio`` times the total weight of negatives, mean weight 1."""
    n_neg, n_pos = counts["negative"], counts["positive"]
    w_pos = max(1.0, ratio * n_neg / n_pos)
    scale = (n_neg + n_pos) / (n_neg + w_pos * n_pos)
    return {"0": scale, "1": w_pos * scale}


def rebalance(
    train: pd.DataFrame, schema: Schema, cfg: RebalanceParams, seed: int
) -> tuple[pd.DataFrame, dict]:
    """Return the rebalanced training split and a report of what changed."""
    strategy = STRATEGIES[cfg.strategy]
    train = with_origin(train)
    before = class_counts(train, schema.target)
    report: dict[str, Any] = {
        "strategy": cfg.strategy,
        "before": before,
        "after": before,
        "k_neighbors_used": None,
        "rows_synthetic": 0,
        "rows_removed": 0,
    }
    if strategy.class_weights:
        report["class_weight"] = class_weights(before, cfg.sampling_ratio)
    if strategy.resample is None or _already_balanced(before, cfg.sampling_ratio):
        return train, report

    started = time.perf_counter()
    out, report["k_neighbors_used"] = strategy.resample(train, schema, cfg, seed)
    report.update(
        after=class_counts(out, schema.target),
        rows_synthetic=int((out[ORIGIN_COLUMN] == REBALANCE).sum()),
        rows_removed=int(len(train) - (out[ORIGIN_COLUMN] != REBALANCE).sum()),
        seconds=round(time.perf_counter() - started, 3),
    )
    return out.reset_index(drop=True), report


def _already_balanced(before: dict[str, int], ratio: float) -> bool:
    # imbalanced-learn truncates the same way: fewer than one row to add means nothing to do.
    if int(ratio * before["negative"] - before["positive"]) >= 1:
        return False
    log.info(
        "minority ratio %d/%d already reaches %.3f; no resampling",
        before["positive"],
        before["negative"],
        ratio,
    )
    return True
