import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.augment import augment
from pipelines.cleaning import clean_rows
from pipelines.config import AugmentParams
from pipelines.errors import PipelineError
from pipelines.origin import ORIGIN_COLUMN


def params(**changes) -> AugmentParams:
    base = dict(
        methods=["gaussian", "mixup", "swap"],
        fraction=0.5,
        noise_scale=0.2,
        mixup_alpha=0.4,
        swap_probability=0.3,
        exclude=[],
    )
    return AugmentParams(**(base | changes))


@pytest.fixture
def train(frame, schema, validate_params):
    return clean_rows(frame, schema, validate_params).clean.assign(**{ORIGIN_COLUMN: "original"})


def test_each_method_adds_marked_rows_with_the_same_schema(train, schema):
    out, report = augment(train, schema, params(), seed=0)
    assert report["rows_added"] == {
        m: round(len(train) * 0.5) for m in ("gaussian", "mixup", "swap")
    }
    assert out.dtypes.equals(train.dtypes)
    counts = out[ORIGIN_COLUMN].value_counts()
    assert counts["original"] == len(train) and counts["augment_mixup"] == round(len(train) * 0.5)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**16), method=st.sampled_from(["gaussian", "mixup", "swap"]))
def test_values_stay_in_range_and_in_vocabulary(train, schema, seed, method):
    out, _ = augment(train, schema, params(methods=[method]), seed=seed)
    added = out[out[ORIGIN_COLUMN] != "original"]
    assert set(added["color"]) <= set(train["color"])
    for column in schema.numeric:
        assert added[column].between(train[column].min(), train[column].max()).all()
    assert set(added["label"]) <= {0, 1}


def test_mixup_and_swap_only_mix_rows_of_one_class(train, schema):
    negatives_only = train[train["label"] == 0]
    positives = train[train["label"] == 1]
    out, _ = augment(train, schema, params(methods=["swap"], swap_probability=1.0), seed=0)
    added_positive = out[(out[ORIGIN_COLUMN] == "augment_swap") & (out["label"] == 1)]
    # With every feature swapped, a positive row's values all come from positive rows.
    assert added_positive["amount"].isin(positives["amount"]).all()
    assert (
        not added_positive["amount"].isin(negatives_only["amount"].drop_duplicates()).all()
        or positives.empty
    )


def test_gaussian_perturbs_and_exclude_protects(train, schema):
    out, _ = augment(train, schema, params(methods=["gaussian"], exclude=["age"]), seed=0)
    added = out[out[ORIGIN_COLUMN] == "augment_gaussian"]
    assert added["age"].isin(train["age"]).all()
    assert not added["amount"].isin(train["amount"]).all()
    with pytest.raises(PipelineError, match=r"augment.exclude: \['nope'\]"):
        augment(train, schema, params(exclude=["nope"]), seed=0)


def test_seeded(train, schema):
    one, _ = augment(train, schema, params(), seed=5)
    assert one.equals(augment(train, schema, params(), seed=5)[0])
    assert not one.equals(augment(train, schema, params(), seed=6)[0])
    assert np.isfinite(one[schema.numeric].to_numpy()).all()
