import numpy as np
import pandas as pd
import pytest

from pipelines.config import DataParams
from pipelines.datasets import reference_path, schema_path
from pipelines.errors import PipelineError
from pipelines.schema import (
    canonical_label,
    infer_schema,
    load_schema,
    save_schema,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        (1.0, "1"),
        ("1", "1"),
        (" 1.0 ", "1"),
        (True, "true"),
        ("False", "false"),
        ("yes", "yes"),
        (0.5, "0.5"),
    ],
)
def test_canonical_label(value, expected):
    assert canonical_label(value) == expected


def test_infers_roles(schema):
    assert schema.columns["row_id"].role == "id"
    assert schema.columns["amount"].role == "numeric"
    assert schema.columns["age"].role == "numeric"
    assert schema.columns["color"].role == "categorical"
    assert schema.columns["color"].categories == ["blue", "green", "red"]
    assert schema.columns["label"].role == "target"
    assert schema.label_values == ["0", "1"]
    assert schema.positive_label == "1"


def test_ranges_are_robust_to_outliers_and_negative_dirt(frame, data_params):
    dirty = frame.copy()
    dirty.loc[:1, "amount"] = 9.9e9
    dirty.loc[2:2, "amount"] = -5.0
    schema = infer_schema(dirty, data_params, 10, 0.5, 10)
    assert schema.columns["amount"].max < 1e6
    assert schema.columns["amount"].min == 0.0


def test_timestamps_and_high_cardinality_text_are_not_features(frame, data_params):
    frame = frame.assign(
        when=pd.date_range("2026-01-01", periods=len(frame), freq="h").astype(str),
        customer=[f"c{i % 150}" for i in range(len(frame))],
    )
    schema = infer_schema(frame, data_params, 10, 0.5, 10)
    assert schema.columns["when"].role == "timestamp"
    assert schema.columns["customer"].role == "ignored"
    assert "when" not in schema.feature_columns


def test_single_class_label_is_rejected(frame, data_params):
    with pytest.raises(PipelineError, match="exactly 2 values"):
        infer_schema(frame.assign(label=0), data_params, 10, 0.5, 10)


def test_positive_label_must_exist(frame):
    params = DataParams(source="x", target="label", positive_label="fraud")
    with pytest.raises(PipelineError, match="data.positive_label"):
        infer_schema(frame, params, 10, 0.5, 10)


def test_string_labels(frame):
    params = DataParams(source="x", target="label", positive_label="yes")
    frame = frame.assign(label=np.where(frame["label"] == 1, "yes", "no"))
    assert infer_schema(frame, params, 10, 0.5, 10).label_values == ["no", "yes"]


def test_roundtrip_and_path(tmp_path, schema):
    path = tmp_path / "s.yaml"
    save_schema(schema, path)
    assert load_schema(path) == schema
    legacy = DataParams(source="s3://bucket/raw/cc.csv", target="Class", positive_label=1)
    assert schema_path(legacy).name == "cc__Class.yaml"
    named = legacy.model_copy(update={"name": "cards"})
    assert (schema_path(named).name, reference_path(named).name) == ("cards.yaml", "cards.json")


def test_invalid_schema_file_names_the_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "target: y\npositive_label: '1'\nlabel_values: ['0', '1']\nmin_rows: 1\ncolumns: {a: {kind: float, role: nonsense}}\n"
    )
    with pytest.raises(PipelineError, match="columns.a.role"):
        load_schema(path)
