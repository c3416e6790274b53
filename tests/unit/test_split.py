import pandas as pd
import pytest

from pipelines.cleaning import clean_rows
from pipelines.config import SplitParams
from pipelines.errors import PipelineError
from pipelines.split import split, split_report
from tests.conftest import make_frame


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
    with pytest.raises(ValueError, match="group_column applies to methods 'hash' and 'stratified'"):
        params(method="out_of_time", group_column="customer")


def test_out_of_time_with_no_recent_positives_is_refused(clean, timed_schema):
    recent_first = clean.sort_values("when", ascending=False)
    no_recent_fraud = recent_first.assign(
        label=[0] * 120 + recent_first["label"].iloc[120:].tolist()
    )
    with pytest.raises(PipelineError, match="the test split has .* 0 positives"):
        split(no_recent_fraud, timed_schema, params(method="out_of_time"), seed=0)


def membership(parts, column="row_id") -> dict:
    return {key: name for name, part in zip("tvs", parts, strict=True) for key in part[column]}


def more_rows(n: int, seed: int, prefix: str) -> pd.DataFrame:
    rows = make_frame(n=n, seed=seed)
    return rows.assign(row_id=[f"{prefix}{i:05d}" for i in range(n)])


def test_hash_split_keeps_every_row_in_its_split_when_new_rows_arrive(schema):
    old = more_rows(2000, seed=1, prefix="a")
    before = membership(split(old, schema, params(method="hash"), seed=3))
    # A retrain: new rows appended, the old ones in another order and with one label corrected.
    grown = pd.concat([more_rows(1000, seed=2, prefix="b"), old.iloc[::-1]], ignore_index=True)
    grown.loc[grown["row_id"] == "a00007", "label"] ^= 1
    after = membership(split(grown, schema, params(method="hash"), seed=3))
    assert {key: after[key] for key in before} == before
    assert len(after) == len(grown)
    assert membership(split(old, schema, params(method="hash"), seed=4)) != before


def test_hash_split_fractions_and_class_ratio_hold_within_tolerance(schema):
    rows = more_rows(6000, seed=5, prefix="r")
    parts = split(rows, schema, params(method="hash"), seed=0)
    for part, share in zip(parts, (0.55, 0.2, 0.25), strict=True):
        assert len(part) / len(rows) == pytest.approx(share, abs=0.02)
        assert part["label"].mean() == pytest.approx(rows["label"].mean(), abs=0.02)


def test_hash_split_without_an_id_column_hashes_the_feature_values(schema):
    columns = dict(schema.columns)
    columns["row_id"] = columns["row_id"].model_copy(update={"role": "ignored"})
    no_id = schema.model_copy(update={"columns": columns})
    features = ["amount", "age", "color"]

    def placed(rows: pd.DataFrame) -> dict:
        parts = split(rows, no_id, params(method="hash"), seed=0)
        return {
            key: name
            for name, part in zip("tvs", parts, strict=True)
            for key in part[features].itertuples(index=False)
        }

    old = more_rows(2000, seed=1, prefix="a").drop(columns="row_id")
    before = placed(old)
    # New rows appended, old ones reordered, columns in another order: the same places.
    grown = pd.concat([old.iloc[::-1], more_rows(500, seed=2, prefix="b")], ignore_index=True)
    after = placed(grown[["label", "color", "age", "amount"]])
    assert {key: after[key] for key in before} == before


def test_hash_split_with_groups_keeps_each_group_in_one_split(clean, timed_schema):
    parts = split(clean, timed_schema, params(method="hash", group_column="customer"), seed=0)
    groups = [set(part["customer"]) for part in parts]
    assert (
        not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    )
    assert sum(map(len, parts)) == len(clean)


def test_hash_split_with_a_split_left_without_positives_stops_naming_the_counts(schema):
    rows = more_rows(400, seed=1, prefix="a")
    test_ids = set(split(rows, schema, params(method="hash"), seed=0)[2]["row_id"])
    no_test_fraud = rows.assign(label=rows["label"].where(~rows["row_id"].isin(test_ids), 0))
    with pytest.raises(PipelineError, match="split.method=hash: the test split has .* 0 positives"):
        split(no_test_fraud, schema, params(method="hash"), seed=0)
