"""Augment: add perturbed copies of training rows (training split only; labels preserved).

Methods (``augment.methods``), each adding ``fraction`` x rows:

* ``gaussian``: noise on numeric features, scaled per feature by its std x ``noise_scale``;
* ``mixup``: a convex mix of two rows of the same class; categoricals come from the row with
  the larger weight;
* ``swap``: each feature, with ``swap_probability``, takes the value of another row of the
  same class.

Numeric values stay inside the training range of their feature, and categoricals are only
ever values seen in training. Features in ``exclude`` are copied unchanged. New rows carry
``_origin = "augment_<method>"``, so they can be counted and filtered out.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines import paths
from pipelines.config import AugmentParams, load_params
from pipelines.errors import PipelineError
from pipelines.io import read_parquet, write_parquet_atomic
from pipelines.origin import ORIGIN_COLUMN, augment_origin, with_origin
from pipelines.reports import stage_headline, write_results
from pipelines.schema import Schema, load_enforced_schema
from pipelines.stage import run_stage

log = logging.getLogger(__name__)


def augment(
    train: pd.DataFrame, schema: Schema, cfg: AugmentParams, seed: int
) -> tuple[pd.DataFrame, dict]:
    unknown = sorted(set(cfg.exclude) - set(schema.feature_columns))
    if unknown:
        raise PipelineError(f"augment.exclude: {unknown} are not feature columns")
    train = with_origin(train)
    rng = np.random.default_rng(seed)
    n_new = int(round(len(train) * cfg.fraction))
    numeric = [c for c in schema.numeric if c not in cfg.exclude]
    categorical = [c for c in schema.categorical if c not in cfg.exclude]
    added, report = [], {"rows_in": len(train), "rows_added": {}}
    for method in cfg.methods:
        if n_new == 0:
            break
        base = train.iloc[rng.choice(len(train), size=n_new, replace=True)].reset_index(drop=True)
        if method == "gaussian":
            rows = _gaussian(base, train, numeric, cfg.noise_scale, rng)
        elif method == "mixup":
            rows = _mixup(base, train, schema.target, numeric, categorical, cfg.mixup_alpha, rng)
        else:
            rows = _swap(
                base, train, schema.target, numeric + categorical, cfg.swap_probability, rng
            )
        lower, upper = train[numeric].min(), train[numeric].max()
        rows[numeric] = rows[numeric].clip(lower=lower, upper=upper, axis=1)
        rows[ORIGIN_COLUMN] = augment_origin(method)
        added.append(rows.astype(train.dtypes.to_dict()))
        report["rows_added"][method] = len(rows)
    out = pd.concat([train, *added], ignore_index=True) if added else train
    return out, report


def _gaussian(
    base: pd.DataFrame, train: pd.DataFrame, numeric: list[str], scale: float, rng
) -> pd.DataFrame:
    std = train[numeric].astype("float64").std(ddof=0).to_numpy()
    base[numeric] = (
        base[numeric].to_numpy("float64") + rng.normal(size=(len(base), len(numeric))) * std * scale
    )
    return base


def _same_class_partners(base: pd.DataFrame, train: pd.DataFrame, target: str, rng) -> pd.DataFrame:
    """For each row of ``base``, a random row of ``train`` with the same label."""
    partners = np.empty(len(base), dtype=int)
    for label in base[target].unique():
        pool = np.flatnonzero(train[target].to_numpy() == label)
        slots = np.flatnonzero(base[target].to_numpy() == label)
        partners[slots] = rng.choice(pool, size=len(slots))
    return train.iloc[partners].reset_index(drop=True)


def _mixup(base, train, target, numeric, categorical, alpha, rng) -> pd.DataFrame:
    partner = _same_class_partners(base, train, target, rng)
    weight = rng.beta(alpha, alpha, size=len(base))
    base[numeric] = base[numeric].to_numpy("float64") * weight[:, None] + partner[numeric].to_numpy(
        "float64"
    ) * (1 - weight[:, None])
    take_partner = weight < 0.5
    for column in categorical:
        base.loc[take_partner, column] = partner.loc[take_partner, column].to_numpy()
    return base


def _swap(base, train, target, features, probability, rng) -> pd.DataFrame:
    for column in features:
        partner = _same_class_partners(base, train, target, rng)
        swapped = rng.random(len(base)) < probability
        base.loc[swapped, column] = partner.loc[swapped, column].to_numpy()
    return base


def main() -> None:
    params = load_params()
    schema = load_enforced_schema()
    train = read_parquet(paths.REBALANCED_TRAIN)
    out, report = augment(train, schema, params.augment, params.seed)
    write_parquet_atomic(out, paths.AUGMENTED_TRAIN)
    metrics = stage_headline("augment", rows=len(out))
    write_results(report, paths.AUGMENT_REPORT, metrics, paths.AUGMENT_METRICS)
    log.info("augment: %d rows in, added %s", report["rows_in"], report["rows_added"])


if __name__ == "__main__":
    run_stage("augment", main)
