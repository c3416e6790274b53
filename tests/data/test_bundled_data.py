"""The committed schema's expectation suites, run on the bundled simulator's data."""

import pandas as pd
import pytest

from pipelines import drift, paths
from pipelines.config import load_params
from pipelines.datasets import schema_path
from pipelines.schema import load_schema
from pipelines.simulate import simulate_day
from pipelines.validate import validate


@pytest.fixture(scope="module")
def params():
    return load_params(paths.PARAMS)


@pytest.fixture(scope="module")
def schema(params):
    return load_schema(schema_path(params.data))


def days(params, first: int, count: int) -> pd.DataFrame:
    return pd.concat(
        [simulate_day(d, params.simulate, params.seed) for d in range(first, first + count)],
        ignore_index=True,
    )


def test_default_data_passes_the_committed_schema(params, schema, tmp_path):
    raw = days(params, 0, 3)
    cleaned = validate(raw, schema, params.validate_, tmp_path)
    assert len(cleaned.clean) > 0.97 * len(raw)
    assert set(cleaned.quarantined) <= {"duplicate_row", "duplicate_id:transaction_id"}
    assert "customer_email" not in cleaned.clean.columns
    assert (tmp_path / "index.html").exists()


def test_a_week_of_simulated_drift_stays_below_the_warning_level(params, schema, tmp_path):
    reference = drift.profile(
        validate(days(params, 0, 7), schema, params.validate_, tmp_path).clean, schema
    )
    later = validate(days(params, 7, 1), schema, params.validate_, tmp_path, reference)
    assert max(later.drift.values()) < params.validate_.drift_warn
