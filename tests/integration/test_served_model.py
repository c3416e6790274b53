"""The registered pyfunc as packaging logs it, in a real MLflow store (sqlite, local artifacts).

One tiny model is trained in-process and registered three times: quantize's served TFLite
variant (``dynamic_range``), the float32 TFLite conversion (what serves when no variant
passed quantize's gate), and the Keras flavour. Each must score raw rows like the float Keras
model within its tolerance, carry its served-artifact tags, and be refused, naming the
file, when any of its stored files is modified, removed or added to.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import artifacts, paths, promotion
from pipelines.config import DataParams
from pipelines.contracts import ServedVariant
from pipelines.errors import PipelineError
from pipelines.features import FeatureTransform
from pipelines.packaging import log_pyfunc
from pipelines.schema import infer_schema
from tests.conftest import make_frame

pytestmark = pytest.mark.integration
NAME = "served-model-test"
# The float32 TFLite conversion and Keras run the same float32 weights: only the order of
# floating-point sums differs.
FLOAT32_TOLERANCE = 1e-5
# dynamic_range quantizes weights to int8; quantize's gate allows up to its parity_tolerance
# (params.yaml) on validation. This tiny model moves probabilities by far less.
DYNAMIC_RANGE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A working directory holding the float model, its transform, model.tflite, and an
    MLflow store with versions 1 (dynamic_range), 2 (float32 TFLite) and 3 (keras)."""
    import mlflow
    from pipelines.tf_runtime import predict_proba, tensorflow
    from pipelines.tflite import convert

    root = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        # A uv project, as the repository is: its lock must not ship with the model.
        (root / "uv.lock").write_text("version = 1\n")
        (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
        frame = make_frame(n=600, positive_rate=0.2, seed=3)
        # A boolean feature: a client sends booleans; the validated test split, which
        # register's gate scores and packaging takes its input example from, holds the text
        # "true"/"false".
        frame["member"] = np.arange(len(frame)) % 3 == 0
        validated = frame.assign(member=frame["member"].map({True: "true", False: "false"}))
        schema = infer_schema(
            frame, DataParams(source="x.csv", target="label", positive_label=1), 10, 0.5, 10
        )
        transform = FeatureTransform.fit(frame, schema)
        features = transform.transform(frame)
        _, keras = tensorflow()
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((features.shape[1],)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(features, frame["label"].to_numpy(), epochs=3, verbose=0)
        paths.MODEL_DIR.mkdir(parents=True)
        model.save(paths.KERAS_MODEL)
        transform.save(paths.FEATURE_TRANSFORM)
        paths.TFLITE_MODEL.write_bytes(convert(model, "dynamic_range"))
        quantized = ServedVariant(
            serving_artifact="dynamic_range", tflite_file_variant="dynamic_range"
        )
        no_variant = ServedVariant(serving_artifact="float", tflite_file_variant="int8")
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        versions = {}
        with mlflow.start_run():
            for served, flavour in ((quantized, "tflite"), (no_variant, "tflite"), (None, "keras")):
                packaged = log_pyfunc(0.5, validated, schema, served or quantized, flavour)
                tags = packaged.tags | {"model_fingerprint": "test"}
                version = mlflow.register_model(packaged.model_uri, NAME, tags=tags)
                versions[str(version.version)] = packaged.tags
        rows = frame[schema.feature_columns]
        yield {
            "root": root,
            "rows": rows,
            "validated_rows": validated[schema.feature_columns],
            "keras": predict_proba(model, features),
            "versions": versions,
        }


def test_each_flavour_scores_raw_rows_like_the_float_model(store):
    tolerance = {"1": DYNAMIC_RANGE_TOLERANCE, "2": FLOAT32_TOLERANCE, "3": FLOAT32_TOLERANCE}
    for version, limit in tolerance.items():
        scored = artifacts.load_verified_model(f"models:/{NAME}/{version}").predict(store["rows"])
        assert list(scored.columns) == ["probability", "label"]
        difference = np.abs(scored["probability"].to_numpy() - store["keras"]).max()
        assert difference <= limit, f"v{version}: max |diff| {difference:.2e} > {limit}"
        assert (scored["label"] == (scored["probability"] >= 0.5)).all()
    assert artifacts.load_verified_model(f"models:/{NAME}/1").predict(store["rows"].head(0)).empty


def test_validated_rows_score_like_raw_rows(store):
    """What register's gate feeds a version (the validated test split) and what a client
    sends differ in type for a boolean column; MLflow's input check once refused the former."""
    for version in ("1", "2", "3"):
        model = artifacts.load_verified_model(f"models:/{NAME}/{version}")
        validated = model.predict(store["validated_rows"])["probability"].to_numpy()
        raw = model.predict(store["rows"])["probability"].to_numpy()
        assert np.array_equal(validated, raw), f"v{version}"


def test_versions_are_tagged_with_the_served_artifact(store):
    tflite, float32, keras = (store["versions"][v] for v in ("1", "2", "3"))
    assert (tflite["served_flavour"], tflite["served_variant"]) == ("tflite", "dynamic_range")
    assert int(tflite["served_bytes"]) == paths.TFLITE_MODEL.stat().st_size
    assert (float32["served_flavour"], float32["served_variant"]) == ("tflite", "float32")
    assert (keras["served_flavour"], keras["served_variant"]) == ("keras", "keras")
    assert int(keras["served_bytes"]) == paths.KERAS_MODEL.stat().st_size
    for tags in (tflite, float32, keras):
        assert float(tags["served_latency_batch1_ms"]) > 0
        recorded = json.loads(tags[artifacts.MANIFEST_TAG])
        assert {"MLmodel", "serving.py", "artifacts/transform.json"} <= set(recorded)
        assert "artifacts/model.keras" in recorded  # logged beside the served model
        assert not any(name.startswith("code/") for name in recorded)
        assert not {"uv.lock", "pyproject.toml"} & set(recorded)
    assert "artifacts/model.tflite" in json.loads(tflite[artifacts.MANIFEST_TAG])
    assert "artifacts/model.tflite" not in json.loads(keras[artifacts.MANIFEST_TAG])


def _stored_folder(version: str) -> Path:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    source = client.get_model_version(NAME, version).source
    location = mlflow.get_logged_model(source.removeprefix("models:/")).artifact_location
    return Path(location.removeprefix("file://"))


@pytest.mark.parametrize(
    ("version", "stored"),
    [
        ("1", "serving.py"),
        ("1", "artifacts/transform.json"),
        ("1", "artifacts/model.tflite"),
        ("3", "artifacts/model.keras"),
        ("1", "MLmodel"),
        ("1", "artifacts/serving_config.json"),
        ("1", "requirements.txt"),
    ],
)
def test_a_tampered_file_is_refused_naming_it(store, version, stored):
    from mlflow import MlflowClient

    target = _stored_folder(version) / stored
    original = target.read_bytes()
    try:
        target.write_bytes(original + b"\nimport os  # appended by an attacker\n")
        with pytest.raises(PipelineError, match=f"modified: {stored}"):
            artifacts.load_verified_model(f"models:/{NAME}/{version}")
        with pytest.raises(PipelineError, match=f"modified: {stored}"):
            promotion.check_serves(MlflowClient(), NAME, version)
    finally:
        target.write_bytes(original)
    artifacts.load_verified_model(f"models:/{NAME}/{version}")


def test_an_added_or_removed_file_is_refused(store):
    folder = _stored_folder("2")
    added = folder / "code" / "pipelines" / "__init__.py"
    added.parent.mkdir(parents=True)
    added.write_text("raise SystemExit('pwned')\n")
    try:
        with pytest.raises(PipelineError, match="unexpected: code/pipelines/__init__.py"):
            artifacts.load_verified_model(f"models:/{NAME}/2")
    finally:
        shutil.rmtree(folder / "code")
    moved = folder / "artifacts" / "model.tflite"
    moved.rename(folder / "elsewhere.tflite")
    try:
        with pytest.raises(PipelineError, match="missing: artifacts/model.tflite"):
            artifacts.load_verified_model(f"models:/{NAME}/2")
    finally:
        (folder / "elsewhere.tflite").rename(moved)


def test_a_version_without_a_manifest_is_not_loaded(store):
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_registered_model_alias(NAME, "champion", "2")
    recorded = client.get_model_version(NAME, "2").tags[artifacts.MANIFEST_TAG]
    client.delete_model_version_tag(NAME, "2", artifacts.MANIFEST_TAG)
    try:
        with pytest.raises(PipelineError, match="carries no artifact_manifest tag"):
            artifacts.load_verified_model(f"models:/{NAME}@champion")
    finally:
        client.set_model_version_tag(NAME, "2", artifacts.MANIFEST_TAG, recorded)
    assert (
        len(
            artifacts.load_verified_model(f"models:/{NAME}@champion").predict(
                pd.DataFrame(store["rows"].head(2))
            )
        )
        == 2
    )
