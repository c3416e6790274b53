"""Evaluate's optional analyses beyond the headline metrics.

* Small-data mode (``pipelines.crossval``): k-fold CV on train+validation, never test.
* Fairness (``pipelines.fairness``): recall and FPR across the groups of sensitive columns.
* SHAP (``pipelines.explain``): attributions of the float model on raw inputs.

The last two are reported on test, like every other reported metric; none of them chooses
anything the pipeline acts on, apart from register's optional fairness gate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines import crossval, explain, fairness, intervals
from pipelines.config import Params
from pipelines.contracts import TunedConfig
from pipelines.schema import Schema

log = logging.getLogger(__name__)


def analyses(
    report: dict,
    tables: dict[str, pd.DataFrame],
    splits: dict[str, pd.DataFrame],
    score: Callable[[pd.DataFrame], np.ndarray],
    schema: Schema,
    params: Params,
) -> explain.Explanation | None:
    """The optional analyses, added to ``report`` and ``tables``: small-data CV (train+val
    only), fairness across sensitive groups and SHAP (both reported on test)."""
    cfg, seed = params.evaluate, params.seed
    pool = pd.concat([splits["train"], splits["val"]], ignore_index=True)  # never test
    if crossval.wanted(cfg, len(pool)):
        tuned = TunedConfig.load()
        train, rebalance = (
            tuned.train_params(params.train),
            tuned.rebalance_params(params.rebalance),
        )
        report["cross_validation"] = crossval.cross_validate(
            pool, schema, cfg, train, rebalance, seed
        )
        log.info("PR-AUC %s", intervals.cv_estimate(report["cross_validation"]))
    test = splits["test"]
    if cfg.sensitive_columns:
        report["fairness"] = fairness.disparities(
            test,
            score(test),
            report["threshold"],
            schema.target,
            cfg.sensitive_columns,
            cfg.bootstrap_samples,
            cfg.confidence,
            seed,
        )
    explanation = None
    if cfg.shap_rows:
        explanation = explain.explain_model(
            score,
            splits["train"],
            test,
            schema,
            cfg.shap_rows,
            cfg.shap_background,
            cfg.shap_permutations,
            seed,
        )
        table = explanation.table()
        report["shap"] = dict(zip(table["feature"], table["mean_abs_shap"], strict=True))
    tables["shap"] = (
        explanation.table() if explanation else pd.DataFrame(columns=["feature", "mean_abs_shap"])
    )
    return explanation
