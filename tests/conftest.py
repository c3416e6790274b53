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


# The longest modules that need the tiny pipeline run, started first among those that do.
LONGEST_PIPELINE_MODULES = (
    "tests/integration/test_airflow_dag.py",
    "tests/integration/test_readme_commands.py",
    "tests/integration/test_airflow_celery.py",
    "tests/faults/test_register_faults.py",
    "tests/integration/test_registry.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """Order modules for ``make test``'s two workers (pytest-xdist, one module at a time per
    worker, in this order): first the longest module that needs the shared tiny pipeline run
    (its worker builds the run), then every module that does not need it (the other worker
    works through them meanwhile instead of waiting for the build), then the other modules
    that need it, longest first. Within a module the order is unchanged."""
    needs_pipeline: dict[str, bool] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        needs_pipeline[module] = needs_pipeline.get(module, False) or (
            "pipeline_repo" in getattr(item, "fixturenames", ())
        )

    def rank(module: str) -> tuple[int, int]:
        longest = (
            LONGEST_PIPELINE_MODULES.index(module)
            if module in LONGEST_PIPELINE_MODULES
            else len(LONGEST_PIPELINE_MODULES)
        )
        if not needs_pipeline[module]:
            return (1, 0)
        return (0, 0) if longest == 0 else (2, longest)

    items.sort(key=lambda item: rank(item.nodeid.split("::")[0]))
