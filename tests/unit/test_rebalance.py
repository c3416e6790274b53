from typing import get_args

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.cleaning import clean_rows
from pipelines.config import RebalanceParams
from pipelines.errors import PipelineError
from pipelines.origin import ORIGIN_COLUMN
from pipelines.rebalancing import STRATEGIES, class_weights, rebalance
from tests.conftest import make_frame

OVERSAMPLERS = ["smote", "smote_nc", "borderline_smote", "adasyn", "smote_tomek", "smote_enn"]
ALL = ["none", "class_weight", "random_under", *OVERSAMPLERS]


def params(strategy="smote", ratio=0.5, k=5, small_minority="reduce_k") -> RebalanceParams:
    return RebalanceParams(
        strategy=strategy, sampling_ratio=ratio, k_neighbors=k, small_minority=small_minority
    )


def cleaned(schema, validate_params, n=300, rate=0.1, seed=0):
    return clean_rows(make_frame(n=n, positive_rate=rate, seed=seed), schema, validate_params).clean


@pytest.mark.parametrize("strategy", ALL)
def test_every_strategy_keeps_schema_and_valid_values(strategy, frame, schema, validate_params):
    train = cleaned(schema, validate_params)
    out, report = rebalance(train, schema, params(strategy), seed=3)
    assert out.drop(columns=ORIGIN_COLUMN).dtypes.equals(train.dtypes)
    synthetic = out[out[ORIGIN_COLUMN] == "rebalance"]
    assert (synthetic["label"] == 1).all() and synthetic["row_id"].isna().all()
    assert set(out["color"]) <= set(train["color"])
    minority = train[train["label"] == 1]
    for column in schema.numeric:
        assert (
            synthetic[column]
            .between(minority[column].min() - 1e-9, minority[column].max() + 1e-9)
            .all()
        )
    originals = out[out[ORIGIN_COLUMN] == "original"]
    assert originals["row_id"].isin(train["row_id"]).all()
    assert report["after"] == {
        "negative": int((out["label"] == 0).sum()),
        "positive": int(out["label"].sum()),
    }


@pytest.mark.parametrize("strategy", ["smote", "smote_nc", "borderline_smote", "random_under"])
def test_ratio_after_matches_the_request(strategy, schema, validate_params):
    out, report = rebalance(
        cleaned(schema, validate_params), schema, params(strategy, ratio=0.4), seed=0
    )
    after = report["after"]
    assert after["positive"] / after["negative"] == pytest.approx(0.4, abs=0.01)


def test_cleaning_strategies_remove_rows_and_reach_at_least_the_ratio(schema, validate_params):
    for strategy in ("smote_tomek", "smote_enn"):
        _, report = rebalance(
            cleaned(schema, validate_params), schema, params(strategy, ratio=0.4), seed=0
        )
        assert report["after"]["positive"] / report["after"]["negative"] >= 0.4 - 0.01


def test_class_weight_gives_positives_the_requested_mass():
    weights = class_weights({"negative": 900, "positive": 100}, 0.5)
    assert weights["1"] * 100 / (weights["0"] * 900) == pytest.approx(0.5)
    assert (weights["0"] * 900 + weights["1"] * 100) / 1000 == pytest.approx(1.0)


def test_small_minority_policies(schema, validate_params):
    train = cleaned(schema, validate_params)
    three = pd.concat([train[train["label"] == 0], train[train["label"] == 1].head(3)])
    _, report = rebalance(three, schema, params(), seed=0)
    assert report["k_neighbors_used"] == 2
    with pytest.raises(
        PipelineError, match="rebalance.k_neighbors=5 but the training split has only 3"
    ):
        rebalance(three, schema, params(small_minority="fail"), seed=0)
    one = pd.concat([train[train["label"] == 0], train[train["label"] == 1].head(1)])
    with pytest.raises(PipelineError, match="at least 2 are needed"):
        rebalance(one, schema, params(), seed=0)


def test_smote_nc_needs_categorical_features(schema, validate_params):
    numeric_only = schema.model_copy(
        update={"columns": {k: v for k, v in schema.columns.items() if k != "color"}}
    )
    train = cleaned(schema, validate_params).drop(columns="color")
    with pytest.raises(PipelineError, match="smote_nc needs both numeric and categorical"):
        rebalance(train, numeric_only, params("smote_nc"), seed=0)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    strategy=st.sampled_from(["smote", "smote_nc", "borderline_smote", "adasyn"]),
    ratio=st.floats(0.2, 1.0),
    seed=st.integers(0, 2**16),
    data_seed=st.integers(0, 50),
)
def test_properties_hold_for_random_data(schema, validate_params, strategy, ratio, seed, data_seed):
    train = cleaned(schema, validate_params, n=200, rate=0.15, seed=data_seed)
    out, report = rebalance(train, schema, params(strategy, ratio=ratio), seed=seed)
    synthetic = out[out[ORIGIN_COLUMN] == "rebalance"]
    minority = train[train["label"] == 1]
    assert set(synthetic["color"]) <= set(minority["color"]) | set(train["color"])
    for column in schema.numeric:
        assert (
            synthetic[column]
            .between(minority[column].min() - 1e-9, minority[column].max() + 1e-9)
            .all()
        )
    if strategy != "adasyn" and report["rows_synthetic"]:
        after = report["after"]
        assert after["positive"] / after["negative"] == pytest.approx(
            max(ratio, 0), abs=1.5 / after["negative"] + 0.01
        )
    again, _ = rebalance(train, schema, params(strategy, ratio=ratio), seed=seed)
    assert again.equals(out)


def test_a_different_seed_gives_different_rows(schema, validate_params):
    train = cleaned(schema, validate_params)
    one, _ = rebalance(train, schema, params(), seed=1)
    two, _ = rebalance(train, schema, params(), seed=2)
    assert len(one) == len(two) and not one.equals(two)
    assert np.allclose(
        one[one[ORIGIN_COLUMN] == "original"]["amount"],
        two[two[ORIGIN_COLUMN] == "original"]["amount"],
    )


def test_every_configurable_strategy_has_exactly_one_dispatch_entry():
    assert set(STRATEGIES) == set(get_args(RebalanceParams.model_fields["strategy"].annotation))


@pytest.mark.parametrize("strategy", OVERSAMPLERS)
def test_non_feature_columns_of_any_dtype_stay_exact_and_are_missing_on_synthetic_rows(
    strategy, schema, validate_params
):
    """An all-missing column (role ignored) once crashed every oversampler: the synthetic rows'
    missing value was cast to float64 through ``pd.NA``. Non-features of every dtype get a
    missing value their dtype holds, numpy integers and booleans their nullable counterpart."""
    train = cleaned(schema, validate_params)
    extra = {
        "blank": pd.Series(
            np.nan, index=train.index
        ),  # float64, as validate keeps an all-null column
        "seen_at": pd.Series(pd.date_range("2026-01-01", periods=len(train), freq="h")),
        "account": pd.Series(
            2**60 + np.arange(len(train)), dtype="int64"
        ),  # beyond float64's 2**53
        "flag": pd.Series(np.arange(len(train)) % 2 == 0),
    }
    train = train.assign(**extra)
    out, _ = rebalance(train, schema, params(strategy), seed=3)
    synthetic = out[out[ORIGIN_COLUMN] == "rebalance"]
    originals = out[out[ORIGIN_COLUMN] == "original"].index
    assert len(synthetic) > 0
    assert synthetic[list(extra)].isna().all().all()
    assert out["account"].dtype == "Int64" and out["flag"].dtype == "boolean"
    assert out["blank"].dtype == "float64" and out["seen_at"].dtype == train["seen_at"].dtype
    kept = out.loc[originals, "row_id"]
    by_id = train.set_index("row_id").loc[kept]
    assert (out.loc[originals, "account"].to_numpy() == by_id["account"].to_numpy()).all()
    assert (out.loc[originals, "flag"].to_numpy() == by_id["flag"].to_numpy()).all()
