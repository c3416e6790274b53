"""Shared fixtures: tiny in-memory frames and a schema for them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.config import DataParams, ValidateParams
from pipelines.schema import infer_schema


@pytest.fixture
def data_params() -> DataParams:
    return DataParams(source="data/landing", target="label", positive_label=1)


@pytest.fixture
def validate_params() -> ValidateParams:
    return ValidateParams(
        max_categories=10,
        min_rows=10,
        null_policy="impute",
        out_of_range_policy="clip",
        unseen_category_policy="unknown",
        range_margin=0.5,
        pii_policy="drop",
        drift_warn=0.1,
        drift_fail=0.25,
    )


def make_frame(n: int = 400, positive_rate: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """A small mixed-type binary classification frame with a learnable signal."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < positive_rate).astype("int64")
    return pd.DataFrame(
        {
            "row_id": [f"r{i:05d}" for i in range(n)],
            "amount": np.round(rng.lognormal(3, 1, n) * (1 + 2 * label), 2),
            "age": rng.integers(18, 90, n).astype("int64"),
            "color": rng.choice(["red", "green", "blue"], n),
            "label": label,
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def schema(frame, data_params, validate_params):
    return infer_schema(
        frame,
        data_params,
        validate_params.max_categories,
        validate_params.range_margin,
        validate_params.min_rows,
    )
