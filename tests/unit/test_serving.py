"""The served model's own code (pipelines/serving.py) and the artifact manifest.

serving.py ships inside every registered model and may not import the pipelines package, so
it re-implements the feature transform from its JSON spec: these tests hold it to
``FeatureTransform`` row for row, on the rows that tend to differ (nulls, unseen categories,
booleans, integers, out-of-range and non-finite numbers).
"""

from __future__ import annotations

import ast
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import artifacts, serving
from pipelines.errors import PipelineError
from pipelines.features import FeatureTransform
from pipelines.schema import UNKNOWN_CATEGORY

TRANSFORM = dict(
    numeric=["amount", "age", "score"],
    lower=[0.0, 18.0, float("-inf")],
    upper=[1000.0, 90.0, float("inf")],
    means=[50.0, 40.0, 0.5],
    stds=[20.0, 10.0, 0.25],
    categorical={
        "color": ["blue", "green", "red"],
        "active": ["false", "true"],
        "store": ["1", "2", "7"],
        "grade": ["1.0", "2.5"],
    },
)
TRICKY = pd.DataFrame(
    {
        "amount": [12.5, None, np.nan, -3.0, 1e12, np.inf, -np.inf, 7, "42", True],
        "age": pd.array([30, None, 18, 17, 91, 45, 60, 33, 20, 70], dtype="Int64"),
        "score": [0.1, 0.2, None, 1e30, -1e30, 0.0, 0.5, 0.9, 1, 0.3],
        "color": ["red", "mauve", None, UNKNOWN_CATEGORY, "RED", "blue", "", "green", 3, "red"],
        "active": [True, False, None, np.bool_(True), "true", "false", "yes", 1, True, False],
        "store": [1, 2, 7, 8, None, "7", 7.0, np.int64(2), 1, 2],
        "grade": [1.0, 2.5, 1, None, "2.5", 3.0, 1.0, 2.5, 1.0, np.float32(2.5)],
        "ignored": list("abcdefghij"),
    }
)


@pytest.mark.parametrize("encoding", ["one_hot", "embedding"])
def test_serving_transform_equals_feature_transform_on_tricky_rows(encoding, tmp_path):
    transform = FeatureTransform(**TRANSFORM, encoding=encoding)
    transform.save(tmp_path / "transform.json")
    spec = json.loads((tmp_path / "transform.json").read_text())
    expected = transform.transform(TRICKY)
    served = serving.transform_rows(spec, TRICKY)
    assert served.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(served, expected)
    # Plain numpy dtypes take serving's fast path; pandas' nullable and string ones too.
    typed = TRICKY.assign(
        age=np.arange(10, dtype="int64") * 10,
        score=np.linspace(-1, 2, 10).astype("float32"),
        amount=[True, False] * 5,
        color=pd.array(["red", None, "mauve", "blue", "green"] * 2, dtype="string"),
        active=pd.array([True, None, False, True, True] * 2, dtype="boolean"),
        store=pd.array([1, None, 7, 8, 2] * 2, dtype="Int64"),
    )
    np.testing.assert_array_equal(serving.transform_rows(spec, typed), transform.transform(typed))
    # Row by row too: a value's encoding must not depend on the rest of its batch.
    for index in range(len(TRICKY)):
        row = TRICKY.iloc[[index]]
        np.testing.assert_array_equal(serving.transform_rows(spec, row), transform.transform(row))


def test_serving_transform_fails_like_feature_transform(tmp_path):
    transform = FeatureTransform(**TRANSFORM)
    spec = asdict(transform)
    for bad in (TRICKY.drop(columns=["age", "color"]), TRICKY.assign(amount="12,5")):
        with pytest.raises(PipelineError) as expected:
            transform.transform(bad)
        with pytest.raises(serving.ServingError) as served:
            serving.transform_rows(spec, bad)
        assert str(served.value) == str(expected.value)


def test_serving_module_ships_without_the_pipelines_package():
    tree = ast.parse(Path(serving.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "json",
        "os",
        "threading",
        "pathlib",
        "numpy",
        "pandas",
        "mlflow",
        "tf_keras",
        "ai_edge_litert",
    }
    assert serving.UNKNOWN_CATEGORY == UNKNOWN_CATEGORY


def test_an_hdf5_file_named_dot_keras_is_refused(tmp_path):
    from pipelines.tf_runtime import load_keras_model

    fake = tmp_path / "model.keras"
    fake.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(serving.ServingError, match="model.keras: not a native .keras zip"):
        serving.load_keras(fake)
    with pytest.raises(PipelineError, match="model.keras: not a native .keras zip"):
        load_keras_model(fake)


def test_verify_names_each_modified_missing_and_unexpected_file(tmp_path):
    folder = tmp_path / "model"
    (folder / "artifacts").mkdir(parents=True)
    for name in ("MLmodel", "serving.py", "artifacts/transform.json", "artifacts/model.tflite"):
        (folder / name).write_text(name)
    (folder / "registered_model_meta").write_text("written by the client")
    recorded = artifacts.manifest(folder)
    assert "registered_model_meta" not in recorded and len(recorded) == 4
    artifacts.verify(folder, recorded, "m v1")
    (folder / "serving.py").write_text("import os; os.system('id')")
    (folder / "artifacts/model.tflite").unlink()
    (folder / "artifacts/extra.py").write_text("")
    with pytest.raises(PipelineError) as refused:
        artifacts.verify(folder, recorded, "m v1")
    message = str(refused.value)
    assert "modified: serving.py" in message and "missing: artifacts/model.tflite" in message
    assert "unexpected: artifacts/extra.py" in message and message.startswith("m v1: ")
    assert "\n" not in message


def test_a_symbolic_link_in_a_model_is_refused(tmp_path):
    (tmp_path / "MLmodel").symlink_to("/etc/hostname")
    with pytest.raises(PipelineError, match="MLmodel: a symbolic link"):
        artifacts.manifest(tmp_path)


@pytest.mark.parametrize(
    "uri", ["runs:/abc/model", "models:/m-123", "/tmp/model", "models:/name/1/extra"]
)
def test_only_registered_versions_can_be_verified(uri):
    with pytest.raises(PipelineError, match="only registered models"):
        artifacts.registry_version(None, uri)  # type: ignore[arg-type]
