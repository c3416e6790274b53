"""Shared set-up for benchmarks: datasets prepared exactly as the pipeline prepares them."""

from __future__ import annotations

import pandas as pd

from pipelines.cleaning import clean_rows
from pipelines.config import DataParams, Params, load_params
from pipelines.schema import Schema, infer_schema
from pipelines.simulate import simulate_day


def default_params() -> Params:
    return load_params()


def prepare(raw: pd.DataFrame, data: DataParams, params: Params) -> tuple[pd.DataFrame, Schema]:
    """Infer a schema and clean rows the way validate does (without the GE report)."""
    cfg = params.validate_
    schema = infer_schema(raw, data, cfg.max_categories, cfg.range_margin, cfg.min_rows)
    return clean_rows(raw, schema, cfg).clean, schema


def simulated(params: Params) -> tuple[pd.DataFrame, Schema]:
    raw = pd.concat(
        [simulate_day(d, params.simulate, params.seed) for d in range(params.simulate.n_days)],
        ignore_index=True,
    )
    return prepare(raw, DataParams(source="sim", target="is_fraud", positive_label=1), params)


def breast_cancer(params: Params, malignant_share: float = 0.1) -> tuple[pd.DataFrame, Schema]:
    """scikit-learn's breast-cancer data with malignant cases thinned to ``malignant_share``.

    The raw data is 37% malignant, above any sensible rebalancing target, so every strategy
    would be a no-op; thinning the positives (seeded) makes it imbalanced like our users' data.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    raw = bunch.frame.assign(diagnosis=bunch.target.map({0: "malignant", 1: "benign"})).drop(
        columns="target"
    )
    benign = raw[raw["diagnosis"] == "benign"]
    keep = round(malignant_share * len(benign) / (1 - malignant_share))
    malignant = raw[raw["diagnosis"] == "malignant"].sample(n=keep, random_state=params.seed)
    raw = pd.concat([benign, malignant]).sort_index().reset_index(drop=True)
    return prepare(
        raw, DataParams(source="bc", target="diagnosis", positive_label="malignant"), params
    )
