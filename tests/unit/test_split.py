import pandas as pd
import pytest

from pipelines.cleaning import clean_rows
from pipelines.config import SplitParams
from pipelines.errors import PipelineError
from pipelines.split import split, split_report


def params(**changes) -> SplitParams:
    base = dict(
        method="stratified", val_size=0.2, test_size=0.25, time_column=None, group_column=None
    )
    return SplitParams(**(base | changes))


@pytest.fixture
def clean(frame, schema, validate_params):
    rows = clean_rows(frame, schema, validate_params).clean
    return rows.assign(
        when=pd.date_range("2026-01-01", periods=len(rows), freq="h").astype(str).to_numpy()[::-1],
        customer=[f"c{i % 60}" for i in range(len(rows))],
    )


@pytest.fixture
def timed_schema(schema):
    columns = dict(schema.columns)
    columns["when"] = columns["row_id"].model_copy(update={"role": "timestamp", "kind": "string"})
    columns["customer"] = columns["row_id"].model_copy(update={"role": "ignored"})
    return schema.model_copy(update={"columns": columns})


def ids(parts):
    return [set(part["row_id"]) for part in parts]


def test_stratified_split_is_disjoint_complete_and_seeded(clean, timed_schema):
    parts = split(clean, timed_schema, params(), seed=1)
    train, val, test = ids(parts)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train) + len(val) + len(test) == len(clean)
    for part in parts:
        assert part["label"].mean() == pytest.approx(clean["label"].mean(), abs=0.03)
    assert split(clean, timed_schema, params(), seed=1)[2].equals(parts[2])
    assert not split(clean, timed_schema, params(), seed=2)[2].equals(parts[2])


def test_out_of_time_tests_on_the_most_recent_rows(clean, timed_schema):
    train, val, test = split(clean, timed_schema, params(method="out_of_time"), seed=0)
    assert train["when"].max() < val["when"].min() <= val["when"].max() < test["when"].min()
    assert len(test) == round(len(clean) * 0.25)
    report = split_report(
        {"train": train, "val": val, "test": test}, timed_schema, params(method="out_of_time")
    )
    assert report["test"]["time_from"] > report["train"]["time_to"]


def test_group_split_keeps_each_group_in_one_split(clean, timed_schema):
    parts = split(clean, timed_schema, params(group_column="customer"), seed=0)
    groups = [set(part["customer"]) for part in parts]
    assert (
        not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    )
    assert sum(map(len, parts)) == len(clean)


def test_split_errors_name_the_problem(clean, timed_schema, schema):
    few = pd.concat([clean[clean["label"] == 0], clean[clean["label"] == 1].head(4)])
    with pytest.raises(PipelineError, match="too few to split"):
        split(few, timed_schema, params(), seed=0)
    with pytest.raises(PipelineError, match="needs split.time_column"):
        split(clean, schema, params(method="out_of_time"), seed=0)
    with pytest.raises(PipelineError, match="split.group_column: 'nope'"):
        split(clean, timed_schema, params(group_column="nope"), seed=0)
    with pytest.raises(ValueError, match="group_column applies to method 'stratified'"):
        params(method="out_of_time", group_column="customer")


def test_out_of_time_with_no_recent_positives_is_refused(clean, timed_schema):
    recent_first = clean.sort_values("when", ascending=False)
    no_recent_fraud = recent_first.assign(
        label=[0] * 120 + recent_first["label"].iloc[120:].tolist()
    )
    with pytest.raises(PipelineError, match="the test split has .* 0 positives"):
        split(no_recent_fraud, timed_schema, params(method="out_of_time"), seed=0)
