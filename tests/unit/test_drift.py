import logging

import numpy as np
import pytest

from pipelines import drift
from pipelines.cleaning import clean_rows
from pipelines.errors import PipelineError
from pipelines.validate import validate
from tests.conftest import make_frame


@pytest.fixture
def reference(schema, validate_params):
    return drift.profile(clean_rows(make_frame(seed=1), schema, validate_params).clean, schema)


def test_same_distribution_has_small_psi(schema, validate_params, reference):
    current = clean_rows(make_frame(seed=2), schema, validate_params).clean
    psi = drift.compare(reference, current, schema)
    assert set(psi) == {"amount", "age", "color", "label"}
    assert max(psi.values()) < 0.1


def test_shifted_features_and_label_are_each_flagged(schema, validate_params, reference):
    frame = make_frame(seed=2)
    frame["amount"] = frame["amount"] * 4
    frame["color"] = np.where(frame.index % 5 == 0, "red", "blue")
    frame["label"] = (frame.index % 3 == 0).astype("int64")
    psi = drift.compare(reference, clean_rows(frame, schema, validate_params).clean, schema)
    assert psi["amount"] > 0.25 and psi["color"] > 0.25 and psi["label"] > 0.25
    assert psi["age"] < 0.1


def test_psi_is_zero_for_identical_shares_and_grows_with_distance():
    assert drift.population_stability([0.5, 0.5], [0.5, 0.5]) == 0
    small = drift.population_stability([0.5, 0.5], [0.45, 0.55])
    large = drift.population_stability([0.5, 0.5], [0.1, 0.9])
    assert 0 < small < large


def test_failing_drift_stops_validation_and_names_the_column(
    schema, validate_params, reference, tmp_path
):
    frame = make_frame(seed=2)
    frame["age"] = np.clip(frame["age"] + 40, 0, 120)
    with pytest.raises(PipelineError, match=r"drift_fail=0.25: column 'age' PSI \d"):
        validate(frame, schema, validate_params, tmp_path, reference)


def test_warning_drift_is_logged_and_reported(schema, validate_params, reference, tmp_path, caplog):
    frame = make_frame(seed=2)
    lenient = validate_params.model_copy(update={"drift_warn": 0.001, "drift_fail": 10.0})
    with caplog.at_level(logging.WARNING):
        cleaned = validate(frame, schema, lenient, tmp_path, reference)
    assert cleaned.drift["amount"] > 0.001
    assert "drift warning: column 'amount'" in caplog.text


def test_the_drift_gate_is_one_check_per_column_in_name_order():
    checks = drift.gate({"b": 0.3, "a": 0.1, "label": 0.25}, 0.25)
    assert [c.name for c in checks] == ["psi:a", "psi:b", "psi:label"]
    assert [c.passed for c in checks] == [True, False, True]
    assert checks[1].reason == "column 'b' PSI 0.300" and checks[1].limit == 0.25


def test_a_boolean_column_scored_raw_matches_its_validated_reference(schema):
    """Validated rows hold a boolean as "true"/"false"; raw rows to score hold booleans (or,
    with nulls, objects). The same values must not read as drift (once a PSI of 17)."""
    import pandas as pd

    flags = np.arange(300) % 3 == 0
    frame = make_frame(n=300)
    validated = frame.assign(flag=np.where(flags, "true", "false"))
    with_flag = schema.model_copy(deep=True)
    with_flag.columns["flag"] = with_flag.columns["color"].model_copy(
        update={"kind": "bool", "categories": ["false", "true"]}
    )
    reference = drift.profile(validated, with_flag)
    assert set(reference["categorical"]["flag"]) == {"false", "true"}
    raw = pd.Series(flags)
    with_nulls = pd.Series([*flags[:-1], None], dtype=object)
    for window in (raw, with_nulls):
        assert drift.window_psi(reference, pd.DataFrame({"flag": window}))["flag"] < 0.01
