"""Quantization goals, measured side by side on the pipeline's trained model (run `make run` first).

Prints, for every variant against the unquantized float32 TFLite model: size ratio, batch-1
latency ratio and batch-256 throughput ratio, plus PR-AUC drop against the float Keras model,
and checks the issue's goals: int8 at least 3.5x smaller than float TFLite, the chosen
variant's PR-AUC drop at most 0.01, and its batch-1 latency no worse than float TFLite.

    python bench/quantize_variants.py
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import default_params  # noqa: E402
from pipelines import paths  # noqa: E402
from pipelines.features import FeatureTransform  # noqa: E402
from pipelines.io import read_json, read_parquet  # noqa: E402
from pipelines.quantize import quantize  # noqa: E402
from pipelines.schema import load_schema, schema_path  # noqa: E402
from pipelines.tf_runtime import load_keras_model  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    params = default_params()
    schema = load_schema(schema_path(params.data))
    transform = FeatureTransform.load(paths.FEATURE_TRANSFORM)
    train, test = read_parquet(paths.AUGMENTED_TRAIN), read_parquet(paths.SPLIT_TEST)
    report, _ = quantize(
        load_keras_model(paths.KERAS_MODEL),
        transform.transform(train),
        train[schema.target].to_numpy(),
        transform.transform(test),
        test[schema.target].to_numpy(),
        float(read_json(paths.EVALUATE_METRICS)["threshold"]),
        params.quantize,
        params.seed,
    )
    reference = report["float_tflite"]
    print(
        f"float32 TFLite: {reference['bytes']} bytes, "
        f"batch-1 {reference['latency_batch1_ms'] * 1000:.1f} us"
    )
    print(
        f"{'variant':14s} {'smaller':>8s} {'latency':>8s} {'throughput':>10s} {'PR-AUC drop':>11s} eligible"
    )
    for name, entry in report["variants"].items():
        print(
            f"{name:14s} {reference['bytes'] / entry['bytes']:>7.2f}x "
            f"{entry['latency_batch1_ms'] / reference['latency_batch1_ms']:>7.2f}x "
            f"{entry['throughput_batch256_rows_s'] / reference['throughput_batch256_rows_s']:>9.2f}x "
            f"{entry['pr_auc_drop']:>11.4f} {entry['eligible']}"
        )
    chosen = report["serving_artifact"]
    print(f"serving artifact: {chosen}")
    if "int8" in report["variants"]:
        ratio = reference["bytes"] / report["variants"]["int8"]["bytes"]
        print(
            f"goal int8 >= 3.5x smaller than float TFLite: {ratio:.2f}x {'met' if ratio >= 3.5 else 'NOT met'}"
        )
    if chosen != "float":
        entry = report["variants"][chosen]
        print(
            f"goal chosen PR-AUC drop <= 0.01: {entry['pr_auc_drop']:.4f} "
            f"{'met' if entry['pr_auc_drop'] <= 0.01 else 'NOT met'}"
        )
        slower = entry["latency_batch1_ms"] / reference["latency_batch1_ms"]
        print(
            f"goal chosen batch-1 latency <= float TFLite: {slower:.2f}x "
            f"{'met' if slower <= 1.0 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
