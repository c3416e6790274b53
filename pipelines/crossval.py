"""Small-data mode: the challenger's quality by stratified k-fold CV on train plus validation.

On a small dataset the test split holds a handful of positives and its one PR-AUC is mostly
noise. Cross-validation uses every non-test row for scoring once, so its mean and spread over
the folds say more. Each fold trains the pipeline's configuration the pipeline's way: the
fold's training rows are rebalanced with the chosen strategy (``pipelines.rebalancing``; the
held-out fold is never resampled) and the same model is built and trained for
``train.epochs`` epochs (no early stopping: that would need a third split inside the fold).
Augmentation is left out. Test rows never enter: the caller passes train and validation only.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines import metrics
from pipelines.config import EvaluateParams, RebalanceParams, TrainParams
from pipelines.errors import PipelineError
from pipelines.fitting import fit_model
from pipelines.rebalancing import rebalance
from pipelines.schema import Schema

log = logging.getLogger(__name__)


def wanted(cfg: EvaluateParams, rows: int) -> bool:
    """``evaluate.cv``: on, off, or auto (below ``evaluate.cv_below_rows`` train+val rows)."""
    return cfg.cv == "on" or (cfg.cv == "auto" and rows < cfg.cv_below_rows)


def folds_for(positives: int, negatives: int, requested: int) -> int:
    """The folds to use: ``requested``, or fewer when a class has fewer rows than that."""
    folds = min(requested, positives, negatives)
    if folds < 2:
        raise PipelineError(
            f"evaluate.cv: train+validation hold {positives} positive and {negatives} negative "
            "rows; cross-validation needs at least 2 of each (set evaluate.cv: off)"
        )
    if folds < requested:
        log.warning(
            "evaluate.cv_folds=%d but train+validation hold %d positives: using %d folds",
            requested,
            positives,
            folds,
        )
    return folds


def cross_validate(
    pool: pd.DataFrame,
    schema: Schema,
    cfg: EvaluateParams,
    train: TrainParams,
    rebalance_cfg: RebalanceParams,
    seed: int,
) -> dict:
    """Per-fold and summary PR-AUC and ROC-AUC of ``pool`` (train + validation rows only)."""
    from sklearn.model_selection import StratifiedKFold

    labels = pool[schema.target].to_numpy().astype(int)
    positives = int(labels.sum())
    folds = folds_for(positives, len(labels) - positives, cfg.cv_folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, list[float]] = {"pr_auc": [], "roc_auc": []}
    for number, (fit_rows, held_rows) in enumerate(splitter.split(np.zeros(len(pool)), labels)):
        fold_train, held = pool.iloc[fit_rows], pool.iloc[held_rows]
        resampled, report = rebalance(fold_train, schema, rebalance_cfg, seed)
        weights = report.get("class_weight")
        fitted = fit_model(
            resampled,
            schema,
            train,
            seed,
            class_weight={int(k): v for k, v in weights.items()} if weights else None,
        )
        predicted, truth = fitted.predict(held), labels[held_rows]
        scores["pr_auc"].append(metrics.pr_auc(truth, predicted))
        scores["roc_auc"].append(metrics.roc_auc(truth, predicted))
        log.info(
            "CV fold %d/%d: PR-AUC %.4f, ROC-AUC %.4f",
            number + 1,
            folds,
            scores["pr_auc"][-1],
            scores["roc_auc"][-1],
        )
    return {
        "folds": folds,
        "rows": len(pool),
        "positives": positives,
        "epochs": train.epochs,
        **{
            name: {
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)),
                "folds": [float(v) for v in values],
            }
            for name, values in scores.items()
        },
    }
