"""Packaging: the served model as an MLflow pyfunc.

``pipelines/serving.py`` is logged by path (MLflow's models-from-code) with the Keras model,
the feature transform and the decision threshold as artifacts, the ``pipelines`` package as
its code, a signature of the raw feature columns, an input example in their source types,
and pinned requirements. Register logs it once per model version.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from pipelines import paths
from pipelines.schema import Schema

SERVING_MODULE = Path(__file__).with_name("serving.py")
SERVING_PACKAGES = (
    "mlflow",
    "tensorflow",
    "tf-keras",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pyyaml",
)


def serving_signature(schema: Schema):
    """The served input: raw feature columns. Numeric ones are typed Any because MLflow refuses
    int64 data for a double column (a nullable integer column arrives as either); the feature
    transform itself rejects text in a numeric column, naming it."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, TensorSpec
    from mlflow.types.schema import Schema as ColumnSpecs

    def spec(name: str) -> ColSpec:
        column = schema.columns[name]
        if column.role == "numeric":
            return ColSpec(AnyType(), name)
        return ColSpec("boolean" if column.kind == "bool" else "string", name)

    inputs: list[ColSpec | TensorSpec] = [spec(name) for name in schema.feature_columns]
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("double", "probability"),
        ColSpec("long", "label"),
    ]
    return ModelSignature(
        inputs=ColumnSpecs(inputs),
        outputs=ColumnSpecs(outputs),
    )


def raw_feature_example(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A few rows of features in their source types (validate made them float/str)."""
    example = frame[schema.feature_columns].head(5).copy()
    for name in schema.feature_columns:
        column = schema.columns[name]
        if column.kind == "int" and column.role == "numeric":
            example[name] = example[name].round().astype("int64")
        elif column.kind == "bool":
            example[name] = example[name] == "true"
    return example


def serving_requirements() -> list[str]:
    """What the served pyfunc imports, pinned to this environment. Declared rather than
    inferred: MLflow's inference loads the model in a subprocess, which costs seconds, and
    can miss packages imported lazily."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in SERVING_PACKAGES]


def log_pyfunc(threshold: float, frame: pd.DataFrame, schema: Schema):
    """Log the served model into the active MLflow run; returns MLflow's ``ModelInfo``.

    ``frame`` supplies the input example (its first rows of raw features)."""
    with tempfile.TemporaryDirectory() as scratch:
        serving_config = Path(scratch) / "serving_config.json"
        serving_config.write_text(json.dumps({"threshold": threshold}))
        return _log_model(serving_config, raw_feature_example(frame, schema), schema)


def _log_model(serving_config: Path, example: pd.DataFrame, schema: Schema):
    import mlflow

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(SERVING_MODULE),
        artifacts={
            "keras_model": str(paths.KERAS_MODEL),
            "transform": str(paths.FEATURE_TRANSFORM),
            "serving_config": str(serving_config),
        },
        # The whole package, so the served model imports pipelines.features and tf_runtime.
        code_paths=[str(SERVING_MODULE.parent)],
        pip_requirements=serving_requirements(),
        signature=serving_signature(schema),
        input_example=example,
    )
