"""Shared fixtures: tiny in-memory frames, a schema for them, and small train params."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

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
        duplicate_rows="auto",
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


# Seconds each module took in `make test` (2026-12-04, after the Celery cluster stopped
# scheduling the monitor DAG), for those over 10 s; every other module counts as 2 s. They only
# balance the lanes below: a stale figure costs minutes, never a result.
MODULE_SECONDS = {
    "tests/integration/test_airflow_dag.py": 201,  # the tiny pipeline build included
    "tests/integration/test_readme_commands.py": 161,
    "tests/integration/test_airflow_celery.py": 121,
    "tests/integration/test_registry.py": 103,
    "tests/faults/test_register_faults.py": 83,
    "tests/integration/test_breast_cancer_demo.py": 75,
    "tests/integration/test_pipeline.py": 52,
    "tests/integration/test_distributed.py": 31,
    "tests/integration/test_checkout.py": 27,
    "tests/integration/test_validate_stage.py": 26,
    "tests/integration/test_pipeline_faults.py": 26,
    "tests/integration/test_mlflow_trust.py": 26,
    "tests/integration/test_quantize.py": 25,
    "tests/integration/test_train_controls.py": 20,
    "tests/faults/test_register_race.py": 18,
    "tests/integration/test_datasets.py": 16,
    "tests/integration/test_s3_ingest.py": 14,
    "tests/integration/test_score.py": 13,
}
DEFAULT_MODULE_SECONDS = 2


def deal_into_lanes(modules: Iterable[str], lanes: int) -> dict[str, int]:
    """Each module's lane: longest first, each to the lane with the least work so far (ties to
    the lowest lane, modules of equal length by name, so every process deals the same)."""
    load = [0.0] * lanes
    lane_of = {}
    for module in sorted(modules, key=lambda module: (-module_seconds(module), module)):
        lane_of[module] = min(range(lanes), key=lambda lane: (load[lane], lane))
        load[lane_of[module]] += module_seconds(module)
    return lane_of


def module_seconds(module: str) -> float:
    return MODULE_SECONDS.get(module, DEFAULT_MODULE_SECONDS)


def module_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_xdist_make_scheduler(config, log):
    """``make test``'s scheduler (``--dist loadscope``): the modules are dealt into one lane
    per pytest-xdist worker, and each worker runs one lane, in the order below.

    Lanes rather than handing out modules as workers free up: pytest-xdist gives a worker its
    next module while it still runs the last test or two of the current one, so after a run of
    one-test modules one worker held three long ones while the other idled (905 s against
    747 s on 2026-12-04)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):
        lane_of: dict[str, int] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.lane_of is None:
                modules = {module_of(node) for node in self.collection}
                self.lane_of = deal_into_lanes(modules, len(self.nodes))
            return f"lane{self.lane_of[module_of(nodeid)]}"

    return LaneScheduling(config, log)


def pytest_collection_modifyitems(config, items) -> None:
    """Order the tests lane by lane (see ``pytest_xdist_make_scheduler``; one lane without
    pytest-xdist). The longest module that needs the shared tiny pipeline run opens its lane
    (its worker builds the run); every other lane runs the modules that do not need it first,
    meanwhile, then the rest, longest first. Within a module the order is unchanged."""
    lanes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    needs_pipeline: dict[str, bool] = {}
    for item in items:
        module = module_of(item.nodeid)
        needs_pipeline[module] = needs_pipeline.get(module, False) or (
            "pipeline_repo" in getattr(item, "fixturenames", ())
        )
    lane_of = deal_into_lanes(needs_pipeline, lanes)
    pipeline_modules = [module for module in needs_pipeline if needs_pipeline[module]]
    builder = max(pipeline_modules, key=module_seconds, default=None)

    def rank(module: str) -> tuple[int, int, float]:
        if module == builder:
            return (lane_of[module], 0, 0.0)
        return (lane_of[module], 1 + needs_pipeline[module], -module_seconds(module))

    items.sort(key=lambda item: rank(module_of(item.nodeid)))
