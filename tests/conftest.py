"""Shared fixtures: tiny in-memory frames, a schema for them, and small train params."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from pipelines.config import DataParams, TrainParams, ValidateParams
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


# The required TrainParams fields for a small model on the default strategy; each test names
# what it needs beyond these. Every other field keeps its default (plain BCE, no L2, ...).
SMALL_MODEL = dict(
    strategy="default",
    epochs=3,
    batch_size=32,
    learning_rate=0.001,
    hidden_units=[8],
    dropout=0.0,
    early_stopping_patience=2,
)


@pytest.fixture(scope="session")
def train_params() -> Callable[..., TrainParams]:
    """Builds validated TrainParams: ``train_params(epochs=5, loss="focal")``."""

    def make(**changes) -> TrainParams:
        return TrainParams(**(SMALL_MODEL | changes))

    return make


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
