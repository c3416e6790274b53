"""Quantize: convert the float model to a dynamic-range TFLite model, gated on test PR-AUC.

The TFLite variant is scored through the TFLite interpreter on the same test split as the
float model. It is eligible for serving only if its PR-AUC drop is at most
``quantize.max_pr_auc_drop``; otherwise the float model stays the serving artifact.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import average_precision_score

from pipelines import paths
from pipelines.config import QuantizeParams, load_params
from pipelines.features import FeatureTransform
from pipelines.io import atomic_path, read_parquet, write_json_atomic
from pipelines.schema import load_schema, schema_path
from pipelines.stage import run_stage
from pipelines.tf_runtime import load_keras_model, predict_proba, tensorflow

log = logging.getLogger(__name__)


def convert_dynamic_range(model) -> bytes:
    tf, _ = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def tflite_predict(tflite_model: bytes, features: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Run a TFLite model over ``features`` in batches; return flat float64 scores."""
    tf, _ = tensorflow()
    interpreter = tf.lite.Interpreter(model_content=tflite_model)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    scores = []
    for start in range(0, len(features), batch):
        chunk = features[start : start + batch]
        interpreter.resize_tensor_input(input_index, list(chunk.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, chunk)
        interpreter.invoke()
        scores.append(interpreter.get_tensor(output_index).reshape(-1))
    return np.concatenate(scores).astype("float64")


def gate(float_pr_auc: float, tflite_pr_auc: float, cfg: QuantizeParams) -> dict:
    drop = float_pr_auc - tflite_pr_auc
    eligible = drop <= cfg.max_pr_auc_drop
    return {
        "float_pr_auc": float_pr_auc,
        "dynamic_range_pr_auc": tflite_pr_auc,
        "dynamic_range_pr_auc_drop": drop,
        "dynamic_range_eligible": bool(eligible),
        "serving_artifact": "dynamic_range" if eligible else "float",
    }


def main() -> None:
    params = load_params()
    schema = load_schema(schema_path(params.data))
    model = load_keras_model(paths.KERAS_MODEL)
    transform = FeatureTransform.load(paths.FEATURE_TRANSFORM)
    test = read_parquet(paths.SPLIT_TEST)
    features, labels = transform.transform(test), test[schema.target].to_numpy()
    tflite_model = convert_dynamic_range(model)
    report = gate(
        float(average_precision_score(labels, predict_proba(model, features))),
        float(average_precision_score(labels, tflite_predict(tflite_model, features))),
        params.quantize,
    )
    report["float_bytes"] = paths.KERAS_MODEL.stat().st_size
    report["dynamic_range_bytes"] = len(tflite_model)
    with atomic_path(paths.TFLITE_MODEL) as tmp:
        tmp.write_bytes(tflite_model)
    write_json_atomic(report, paths.QUANTIZE_METRICS)
    verdict = "eligible" if report["dynamic_range_eligible"] else "REJECTED, serving stays float"
    log.info(
        "dynamic-range TFLite: %d bytes (float %d), PR-AUC drop %.4f: %s",
        len(tflite_model),
        report["float_bytes"],
        report["dynamic_range_pr_auc_drop"],
        verdict,
    )


if __name__ == "__main__":
    run_stage("quantize", main)
