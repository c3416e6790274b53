"""The served model: raw source rows in, ``probability`` and ``label`` out.

This one file is ALL the code a registered model ships (MLflow's models-from-code: loading the
model runs this file; no ``code_paths``, nothing unpickled). So it imports only numpy, pandas,
MLflow (``PythonModel``, ``MlflowException``) and, when loading, LiteRT or tf-keras; never the
``pipelines`` package. Its artifacts, each hashed at registration and verified before the
pipeline loads them (``pipelines.artifacts``):

* ``transform``: the feature transform's JSON spec, written by train. ``transform_rows``
  applies it exactly as ``pipelines.features.FeatureTransform.transform`` does (that class
  stays the one definition; a unit test checks the two agree, row for row);
* ``tflite_model`` (flavour ``tflite``): the TFLite variant quantize served, or the float32
  TFLite conversion of the Keras model when no variant passed its gate, run by LiteRT;
* ``keras_model``: the float Keras model, always logged; served under flavour ``keras``, loaded
  from the native ``.keras`` zip only (checked by its magic bytes: an HDF5 file would bypass
  ``safe_mode``) with ``safe_mode`` on;
* ``serving_config``: the flavour, the served variant and evaluate's decision threshold.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

import mlflow

# Mirrors pipelines.schema.UNKNOWN_CATEGORY (a unit test checks they agree).
UNKNOWN_CATEGORY = "__unknown__"
KERAS_ZIP_MAGIC = b"PK\x03\x04"
# Rows per interpreter call: bounds the interpreter's buffers whatever a request holds.
CHUNK_ROWS = 4096


class ServingError(MlflowException, ValueError):
    """Input rows or a model file the served model refuses; the message is one line.

    An ``MlflowException`` with ``INVALID_PARAMETER_VALUE``, so that the REST server answers
    400 with this message (naming the column); any other exception from ``predict`` it
    answers with a generic "unexpected error", the message only inside a stack trace."""

    def __init__(self, message: str):
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


def transform_rows(spec: dict, frame: pd.DataFrame) -> np.ndarray:
    """Raw rows -> the model's float32 matrix, per the transform ``spec`` (train's JSON)."""
    numeric, categorical = spec["numeric"], spec["categorical"]
    missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if missing:
        raise ServingError(f"input rows lack feature column(s) {missing}")
    blocks = []
    if numeric:
        values = np.column_stack([_numeric(frame[name], name) for name in numeric])
        means = np.asarray(spec["means"], dtype="float64")
        values = np.clip(
            values,
            np.asarray(spec["lower"], dtype="float64"),
            np.asarray(spec["upper"], dtype="float64"),
        )
        values = np.where(np.isnan(values), means, values)
        blocks.append((values - means) / np.asarray(spec["stds"], dtype="float64"))
    for name, vocabulary in categorical.items():
        codes = _category_codes(frame[name], vocabulary)
        if spec.get("encoding", "one_hot") == "embedding":
            blocks.append(codes[:, None].astype("float64"))
        else:
            blocks.append(np.eye(len(vocabulary) + 1)[codes])
    if not blocks:
        raise ServingError("the transform declares no numeric or categorical feature")
    return np.hstack(blocks).astype("float32")


def _numeric(series: pd.Series, name: str) -> np.ndarray:
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiu":
        return series.to_numpy("float64")  # already numbers: nothing to coerce or reject
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        examples = series[bad].astype(str).head(3).tolist()
        raise ServingError(f"column {name!r}: expected numbers, got {examples}")
    return values.to_numpy("float64")


def _category_codes(series: pd.Series, vocabulary: list[str]) -> np.ndarray:
    """Each value's position in ``vocabulary``, by its text (booleans as "true"/"false");
    nulls and anything else get ``len(vocabulary)``, the unknown slot. Looked up once per
    distinct value, without building Series: the per-call cost of a single-row request."""
    index = {value: code for code, value in enumerate(vocabulary)}
    codes, distinct = pd.factorize(series, use_na_sentinel=True)
    texts = (str(bool(v)).lower() if isinstance(v, bool | np.bool_) else str(v) for v in distinct)
    lookup = np.array([*(index.get(text, len(vocabulary)) for text in texts), len(vocabulary)])
    return lookup[codes].astype("int64")


def load_keras(path: str | Path):
    """A ``.keras`` zip with safe_mode (no Lambda code); any other format is refused."""
    with open(path, "rb") as stream:
        if stream.read(len(KERAS_ZIP_MAGIC)) != KERAS_ZIP_MAGIC:
            raise ServingError(
                f"{Path(path).name}: not a native .keras zip (HDF5 or other formats skip "
                "safe_mode); refusing to load it"
            )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras

    return tf_keras.models.load_model(path, safe_mode=True, compile=False)


class TFLiteRunner:
    """A LiteRT interpreter over the model's bytes; one call at a time (it is not reentrant)."""

    def __init__(self, content: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=content, num_threads=1)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.rows = -1
        self.lock = threading.Lock()

    def __call__(self, features: np.ndarray) -> np.ndarray:
        with self.lock:
            return np.concatenate(
                [np.empty(0)]
                + [self._invoke(features[at : at + CHUNK_ROWS]) for at in _starts(features)]
            )

    def _invoke(self, chunk: np.ndarray) -> np.ndarray:
        if len(chunk) != self.rows:
            self.interpreter.resize_tensor_input(self.input_index, list(chunk.shape))
            self.interpreter.allocate_tensors()
            self.rows = len(chunk)
        self.interpreter.set_tensor(self.input_index, chunk)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).reshape(-1).astype("float64")


class KerasRunner:
    def __init__(self, path: str | Path):
        self.model = load_keras(path)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        # A direct call, not model.predict: predict's per-call setup dominates small batches.
        return np.concatenate(
            [np.empty(0)]
            + [
                np.asarray(self.model(features[at : at + CHUNK_ROWS], training=False))
                .reshape(-1)
                .astype("float64")
                for at in _starts(features)
            ]
        )


def _starts(features: np.ndarray) -> range:
    return range(0, len(features), CHUNK_ROWS)


class TabularClassifier(PythonModel):
    def load_context(self, context) -> None:
        config = json.loads(Path(context.artifacts["serving_config"]).read_text())
        self.threshold = float(config["threshold"])
        self.spec = json.loads(Path(context.artifacts["transform"]).read_text())
        self.run: TFLiteRunner | KerasRunner
        if config["flavour"] == "tflite":
            self.run = TFLiteRunner(Path(context.artifacts["tflite_model"]).read_bytes())
        else:
            self.run = KerasRunner(context.artifacts["keras_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        scores = self.run(transform_rows(self.spec, model_input))
        return pd.DataFrame(
            {"probability": scores, "label": (scores >= self.threshold).astype("int64")}
        )


mlflow.models.set_model(TabularClassifier())
