"""Packaging: the served model as an MLflow pyfunc, and what its model version is tagged with.

``pipelines/serving.py`` is logged by path (MLflow's models-from-code) as the model's only
code: no ``code_paths``, so loading it runs that one self-contained file and nothing else from
this package. Its artifacts are the feature transform's JSON spec, the decision threshold and
flavour (``serving_config.json``), the float Keras model (always) and, under
``register.served_flavour: tflite``, the TFLite model LiteRT runs:

* quantize's served variant (``model.tflite``), when one passed quantize's gate;
* otherwise the float32 TFLite conversion of the Keras model, made here: the same float
  weights (probabilities within ~1e-6 of Keras) behind the same LiteRT runtime, so serving
  never needs TensorFlow and the flavour does not change with the gate's outcome.

After logging, the stored model is downloaded once: every file's SHA-256 makes the manifest
``pipelines.artifacts`` verifies before any later load, and the downloaded copy is loaded to
time one raw row end to end (transform included). Register tags the version with all of it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import artifacts, paths
from pipelines.config import ServedFlavour
from pipelines.contracts import ServedVariant
from pipelines.errors import PipelineError
from pipelines.schema import Schema

log = logging.getLogger(__name__)

SERVING_MODULE = Path(__file__).with_name("serving.py")
# What serving.py imports, per flavour; nothing else is needed to serve.
BASE_PACKAGES = ("mlflow", "numpy", "pandas")
FLAVOUR_PACKAGES = {"tflite": ("ai-edge-litert",), "keras": ("tensorflow", "tf-keras")}
# Batch-1 latency tag: the median of this many single-row predictions, after a warm-up.
LATENCY_CALLS = 50
LATENCY_WARMUP = 3
UV_AUTO_DETECT = "MLFLOW_UV_AUTO_DETECT"


@dataclass(frozen=True)
class Packaged:
    """The logged model and the tags its registered version carries."""

    model_uri: str
    tags: dict[str, str]


def serving_signature(schema: Schema):
    """The served input: raw feature columns. Numeric ones are typed Any because MLflow refuses
    int64 data for a double column (a nullable integer column arrives as either); the feature
    transform itself rejects text in a numeric column, naming it. Boolean ones are typed Any
    too: the gate scores the validated test split, which holds them as "true"/"false" text,
    while a client sends booleans, and the transform reads both alike."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, TensorSpec
    from mlflow.types.schema import Schema as ColumnSpecs

    def spec(name: str) -> ColSpec:
        column = schema.columns[name]
        if column.role == "numeric" or column.kind == "bool":
            return ColSpec(AnyType(), name)
        return ColSpec("string", name)

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


def serving_requirements(flavour: ServedFlavour) -> list[str]:
    """What the served pyfunc imports, pinned to this environment. Declared rather than
    inferred: MLflow's inference loads the model in a subprocess, which costs seconds, and
    can miss packages imported lazily."""
    from importlib.metadata import version

    packages = (*BASE_PACKAGES, *FLAVOUR_PACKAGES[flavour])
    return [f"{package}=={version(package)}" for package in packages]


def served_tflite(served: ServedVariant, scratch: Path) -> tuple[Path, str]:
    """The TFLite file the pyfunc runs and the variant it holds."""
    if served.serving_artifact != "float":
        if served.tflite_file_variant != served.serving_artifact:
            raise PipelineError(
                f"{paths.TFLITE_MODEL} holds {served.tflite_file_variant!r} but "
                f"{paths.SERVED_VARIANT} serves {served.serving_artifact!r}; rerun quantize"
            )
        return paths.TFLITE_MODEL, served.serving_artifact
    from pipelines.tf_runtime import load_keras_model
    from pipelines.tflite import convert

    target = scratch / "model.tflite"
    target.write_bytes(convert(load_keras_model(paths.KERAS_MODEL), "float32"))
    return target, "float32"


def log_pyfunc(
    threshold: float,
    frame: pd.DataFrame,
    schema: Schema,
    served: ServedVariant,
    flavour: ServedFlavour,
) -> Packaged:
    """Log the served model into the active MLflow run; return its URI and version tags.

    ``frame`` supplies the input example (its first rows of raw features)."""
    import mlflow

    example = raw_feature_example(frame, schema)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model_files = {"keras_model": paths.KERAS_MODEL, "transform": paths.FEATURE_TRANSFORM}
        served_file, variant = paths.KERAS_MODEL, "keras"
        if flavour == "tflite":
            served_file, variant = served_tflite(served, folder)
            model_files["tflite_model"] = served_file
        model_files["serving_config"] = folder / "serving_config.json"
        model_files["serving_config"].write_text(
            json.dumps({"threshold": threshold, "flavour": flavour, "variant": variant})
        )
        with _no_uv_project_files():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVING_MODULE),
                artifacts={key: str(path) for key, path in model_files.items()},
                pip_requirements=serving_requirements(flavour),
                signature=serving_signature(schema),
                input_example=example,
            )
        sources = {f"artifacts/{path.name}": path for path in model_files.values()}
        sources[SERVING_MODULE.name] = SERVING_MODULE
        tags = inspect_logged(info.model_uri, example.head(1), folder / "stored", sources)
        tags |= {
            "served_flavour": flavour,
            "served_variant": variant,
            "served_bytes": str(served_file.stat().st_size),
        }
    log.info(
        "served model: %s %s, %s bytes, batch-1 latency %s ms",
        flavour,
        variant,
        tags["served_bytes"],
        tags["served_latency_batch1_ms"],
    )
    return Packaged(info.model_uri, tags)


@contextmanager
def _no_uv_project_files() -> Iterator[None]:
    """MLflow copies uv.lock and pyproject.toml of the working directory into a model logged
    from a uv project: the whole project's lock (TensorFlow, Airflow, ...) would then be what
    `mlflow models serve --env-manager uv` installs, instead of the few pinned requirements."""
    before = os.environ.get(UV_AUTO_DETECT)
    os.environ[UV_AUTO_DETECT] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(UV_AUTO_DETECT)
        else:
            os.environ[UV_AUTO_DETECT] = before


def inspect_logged(
    model_uri: str, row: pd.DataFrame, scratch: Path, sources: dict[str, Path]
) -> dict[str, str]:
    """Download the stored model: its manifest (also recorded in the run), total size and the
    batch-1 latency of the downloaded copy on one raw row.

    The code and artifacts read back must be the very files logged (``sources``: stored
    name -> local file), so the manifest never vouches for a file swapped in the store
    between upload and download."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(scratch)))
    hashes = artifacts.manifest(local)
    swapped = sorted(
        name
        for name, source in sources.items()
        if hashes.get(name) != artifacts.file_sha256(source)
    )
    if swapped:
        raise PipelineError(
            f"{model_uri}: stored {', '.join(swapped)} differ from the files just logged; "
            "the artifact store changed them"
        )
    mlflow.log_dict(hashes, "model_manifest.json")
    mlflow.set_tag(artifacts.MANIFEST_DIGEST_TAG, artifacts.manifest_digest(hashes))
    model = mlflow.pyfunc.load_model(str(local))
    return {
        artifacts.MANIFEST_TAG: artifacts.manifest_text(hashes),
        artifacts.MANIFEST_DIGEST_TAG: artifacts.manifest_digest(hashes),
        "artifact_bytes": str(sum((local / name).stat().st_size for name in hashes)),
        "served_latency_batch1_ms": f"{batch1_latency_ms(model, row):.3f}",
    }


def batch1_latency_ms(model, row: pd.DataFrame, calls: int = LATENCY_CALLS) -> float:
    """Median wall time of one single-row ``predict``, raw row to label, in milliseconds."""
    for _ in range(LATENCY_WARMUP):
        model.predict(row)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        model.predict(row)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)
