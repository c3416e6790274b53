"""Quantize: TFLite variants of the float model, each measured and gated on the test split.

Variants (``quantize.variants``):

* ``dynamic_range``: int8 weights, float activations;
* ``float16``: float16 weights;
* ``int8``: full integer ops, calibrated on a representative sample of the training split
  (float input and output, so the served interface does not change);
* ``qat``: quantization-aware training with tensorflow-model-optimization, a short
  fine-tune of the trained model on one device (tfmot does not support distribution
  strategies), then int8 conversion like ``int8``.

Each variant is scored through the LiteRT interpreter (``ai-edge-litert``; TensorFlow's
deprecated ``tf.lite.Interpreter`` only where no LiteRT wheel exists) on the test split: PR-AUC,
ROC-AUC and recall at the threshold evaluate chose on validation, against the float model, plus
file size, batch-1 latency and batch-256 throughput (single-threaded interpreter). An
unquantized float32 TFLite conversion is measured too, as the size and speed reference. A
variant is eligible only if its PR-AUC drop is at most ``max_pr_auc_drop``, its recall drop at
most ``max_recall_drop``, no test probability moves more than ``parity_tolerance``, and its
batch-1 latency is at most ``max_latency_ratio`` times the float32 TFLite model's (measured in
alternating windows, so that machine load hits both alike). The eligible variant that
``serving_policy`` prefers (smallest file, or lowest measured batch-1 latency) becomes
``model.tflite``; with none eligible the float model stays the serving one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from importlib import metadata

import numpy as np
import pandas as pd
from sklearn import metrics

from pipelines import paths
from pipelines.config import QuantizeParams, load_params
from pipelines.features import FeatureTransform
from pipelines.io import atomic_path, read_json, read_parquet, write_json_atomic, write_text_atomic
from pipelines.schema import load_schema, schema_path
from pipelines.stage import run_stage
from pipelines.tf_runtime import load_keras_model, predict_proba, tensorflow

log = logging.getLogger(__name__)

LATENCY_CALLS = 200
THROUGHPUT_BATCH = 256
THROUGHPUT_BATCHES = 20
# Calls are timed in windows and the median window counts. A single-threaded call of these
# models takes microseconds, so one loop over all calls lasts about a millisecond, and one
# preemption on a shared machine dominated it (batch-1 ratios between two variants ranged from
# 0.9x to 5.7x over 8 repeats; 1.0x to 1.2x with windows).
TIMING_WINDOWS = 10
# A variant's batch-1 latency against the float32 TFLite model's: the two alternate in short
# windows, so that load on a shared machine hits both alike, and the median window ratio counts.
RATIO_WINDOWS = 40
RATIO_WINDOW_CALLS = 50


def convert(
    model, variant: str, representative: np.ndarray | None = None, **settings: object
) -> bytes:
    """TFLite bytes of ``model`` for a post-training variant (``qat`` converts like ``int8``).

    ``settings`` are extra converter attributes; the pipeline uses none, the size benchmark
    measures alternatives with them.
    """
    tf, _ = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    for name, value in settings.items():
        setattr(converter, name, value)
    if variant == "float32":  # the unquantized reference
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant in ("int8", "qat"):
        # The converter insists on calibration rows for int8-only ops, even after QAT
        # (whose learned ranges then take precedence).
        rows = representative.astype("float32")
        converter.representative_dataset = lambda: ([row[None, :]] for row in rows)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def representative_sample(
    features: np.ndarray, rows: int, seed: int, code_columns: dict[int, int] | None = None
) -> np.ndarray:
    """The int8 calibration rows: a seeded sample of the training features.

    With ``code_columns`` (matrix column -> highest code, the embedding encoding's), two rows
    are added: the first sampled row with every code at 0 and at its highest code. The model
    has one float input, which int8 quantizes with one range, the range calibration saw; a
    rare code (the unknown slot above all) missing from the sample would otherwise be clipped
    to a lower code and looked up in the wrong embedding row.
    """
    rng = np.random.default_rng(seed)
    sample = features[rng.permutation(len(features))[:rows]]
    if not code_columns or not len(sample):
        return sample
    lowest, highest = sample[:1].copy(), sample[:1].copy()
    for column, code in code_columns.items():
        lowest[0, column], highest[0, column] = 0, code
    return np.vstack([sample, lowest, highest])


def quantization_aware(
    model, features: np.ndarray, labels: np.ndarray, cfg: QuantizeParams, seed: int
):
    """Fine-tune a quantization-aware copy of ``model`` on the training features.

    A model with Embedding layers (``train.categorical_encoding: embedding``) has layers tfmot
    cannot annotate (Embedding, Rescaling): only its Dense layers are made quantization-aware,
    and the int8 converter calibrates the rest from the representative rows. A model without
    them is annotated whole, as ``quantize_model`` does.
    """
    import tensorflow_model_optimization as tfmot

    _, keras = tensorflow()
    keras.utils.set_random_seed(seed)
    qat = tfmot.quantization.keras
    if any(isinstance(layer, keras.layers.Embedding) for layer in model.layers):
        annotated = keras.models.clone_model(
            model,
            clone_function=lambda layer: (
                qat.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()))
                if isinstance(layer, keras.layers.Dense)
                else layer.__class__.from_config(layer.get_config())
            ),
        )
        annotated.set_weights(model.get_weights())
        aware = qat.quantize_apply(annotated)
    else:
        aware = qat.quantize_model(model)
    aware.compile(
        optimizer=keras.optimizers.Adam(cfg.qat_learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
    )
    aware.fit(features, labels.astype("float32"), epochs=cfg.qat_epochs, batch_size=256, verbose=0)
    return aware


@cache
def interpreter_class() -> tuple[type, str]:
    """The TFLite interpreter to run variants with, and its name and version for the report."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        # ai-edge-litert is a locked dependency; this only happens on a platform it ships no
        # wheel for. tf.lite.Interpreter still works in TF 2.21, but is deprecated.
        log.warning("ai-edge-litert is not installed: running variants with tf.lite.Interpreter")
        tf, _ = tensorflow()
        return tf.lite.Interpreter, f"tensorflow {tf.__version__} (tf.lite.Interpreter)"
    return Interpreter, f"ai-edge-litert {metadata.version('ai-edge-litert')}"


def flatbuffer_utils():
    """LiteRT's flatbuffer tools (TensorFlow's copy where no LiteRT wheel exists)."""
    try:
        from ai_edge_litert.tools import flatbuffer_utils as utils
    except ImportError:
        from tensorflow.lite.tools import flatbuffer_utils as utils
    return utils


def size_breakdown(tflite_model: bytes) -> dict:
    """Where the bytes of a TFLite flatbuffer go, so that size ratios can be explained.

    Per tensor: its constant data (weights and biases; activations have none) and its
    quantization parameters, which the TFLite schema stores as a float32 scale and an int64
    zero point per channel (plus float32 min/max where present). Then the metadata buffers,
    constant data that repeats an earlier buffer byte for byte (a duplicated constant), and the
    rest: the graph itself (tensor and operator tables, names, shapes, signature, padding).
    """
    utils = flatbuffer_utils()
    model = utils.convert_bytearray_to_object(bytearray(tflite_model))
    tensors, buffers, seen, duplicated = [], set(), set(), 0
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            # Tensors sharing one buffer store it once: only the first of them counts it.
            data_bytes = 0 if data is None or tensor.buffer in buffers else len(data)
            buffers.add(tensor.buffer)
            if data_bytes:
                content = bytes(data)
                duplicated += data_bytes if content in seen else 0
                seen.add(content)
            params = tensor.quantization
            quant_bytes = 0
            if params is not None:
                quant_bytes = 8 * len(_or_empty(params.zeroPoint)) + 4 * sum(
                    len(_or_empty(values)) for values in (params.scale, params.min, params.max)
                )
            tensors.append(
                {
                    "tensor": (tensor.name or b"").decode(),
                    "dtype": utils.type_to_name(tensor.type),
                    "shape": [int(n) for n in _or_empty(tensor.shape)],
                    "data_bytes": data_bytes,
                    "quantization_bytes": quant_bytes,
                }
            )
    metadata_bytes = sum(
        len(_or_empty(model.buffers[entry.buffer].data)) for entry in model.metadata or []
    )
    data_bytes = sum(row["data_bytes"] for row in tensors)
    quant_bytes = sum(row["quantization_bytes"] for row in tensors)
    return {
        "file_bytes": len(tflite_model),
        "tensor_data_bytes": data_bytes,
        "quantization_bytes": quant_bytes,
        "metadata_bytes": metadata_bytes,
        "duplicated_constant_bytes": duplicated,
        "structure_bytes": len(tflite_model) - data_bytes - quant_bytes - metadata_bytes,
        "tensors": tensors,
    }


def _or_empty(values):
    return [] if values is None else values


class TFLiteScorer:
    """One interpreter per variant, reused for scoring and timing."""

    def __init__(self, tflite_model: bytes):
        interpreter, _ = interpreter_class()
        self.interpreter = interpreter(model_content=tflite_model, num_threads=1)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.batch = -1

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if len(features) != self.batch:
            self.interpreter.resize_tensor_input(self.input_index, list(features.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(features)
        self.interpreter.set_tensor(self.input_index, features.astype("float32"))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).reshape(-1).astype("float64")

    def predict(self, features: np.ndarray, batch: int = 1024) -> np.ndarray:
        return np.concatenate(
            [self(features[start : start + batch]) for start in range(0, len(features), batch)]
        )


def measure_speed(call: Callable[[np.ndarray], object], features: np.ndarray) -> dict[str, float]:
    """Batch-1 latency and batch-256 throughput of ``call`` on rows drawn from ``features``."""
    one = features[:1]
    batches = np.resize(features, (THROUGHPUT_BATCHES, THROUGHPUT_BATCH, features.shape[1]))
    call(one)
    latency = _seconds_per_call(call, [one] * LATENCY_CALLS)
    call(batches[0])
    per_batch = _seconds_per_call(call, list(batches))
    return {
        "latency_batch1_ms": latency * 1000,
        "throughput_batch256_rows_s": THROUGHPUT_BATCH / per_batch,
    }


def _seconds_per_call(call: Callable[[np.ndarray], object], inputs: list[np.ndarray]) -> float:
    """``call`` over ``inputs`` in TIMING_WINDOWS equal windows: the median window's mean."""
    times = []
    for window in np.array_split(np.arange(len(inputs)), TIMING_WINDOWS):
        started = time.perf_counter()
        for index in window:
            call(inputs[index])
        times.append((time.perf_counter() - started) / len(window))
    return float(np.median(times))


def latency_ratio(
    candidate: Callable[[np.ndarray], object],
    reference: Callable[[np.ndarray], object],
    features: np.ndarray,
) -> float:
    """Batch-1 latency of ``candidate`` over ``reference``'s, from alternating timing windows."""
    one = features[:1]
    candidate(one)
    reference(one)

    def window(call: Callable[[np.ndarray], object]) -> float:
        started = time.perf_counter()
        for _ in range(RATIO_WINDOW_CALLS):
            call(one)
        return time.perf_counter() - started

    ratios = []
    for index in range(RATIO_WINDOWS):
        if index % 2:  # neither side always runs first
            reference_seconds = window(reference)
            candidate_seconds = window(candidate)
        else:
            candidate_seconds = window(candidate)
            reference_seconds = window(reference)
        ratios.append(candidate_seconds / reference_seconds)
    return float(np.median(ratios))


def quality(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        "pr_auc": float(metrics.average_precision_score(labels, scores)),
        "roc_auc": float(metrics.roc_auc_score(labels, scores)),
        "recall": float(metrics.recall_score(labels, scores >= threshold, zero_division=0)),
    }


def gate(variants: dict[str, dict], reference: dict[str, float], cfg: QuantizeParams) -> str:
    """Mark each variant eligible or not; return the serving choice per ``serving_policy``."""
    for entry in variants.values():
        entry["pr_auc_drop"] = reference["pr_auc"] - entry["pr_auc"]
        entry["recall_drop"] = reference["recall"] - entry["recall"]
        entry["eligible"] = bool(
            entry["pr_auc_drop"] <= cfg.max_pr_auc_drop
            and entry["recall_drop"] <= cfg.max_recall_drop
            and entry["max_abs_diff"] <= cfg.parity_tolerance
            and entry["latency_ratio"] <= cfg.max_latency_ratio
        )
    eligible = [name for name, entry in variants.items() if entry["eligible"]]
    if not eligible:
        return "float"
    key = "bytes" if cfg.serving_policy == "smallest" else "latency_batch1_ms"
    return min(eligible, key=lambda name: variants[name][key])


def quantize(
    model,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    threshold: float,
    cfg: QuantizeParams,
    seed: int,
    code_columns: dict[int, int] | None = None,
) -> tuple[dict, dict[str, bytes]]:
    """Build, score and gate every variant; return the report and each variant's bytes.

    ``code_columns`` is ``FeatureTransform.code_columns``: int8 calibration covers every code.
    """
    float_scores = predict_proba(model, test_features)
    reference = quality(test_labels, float_scores, threshold) | measure_speed(
        lambda rows: model(rows, training=False), test_features
    )
    sample = representative_sample(train_features, cfg.representative_rows, seed, code_columns)
    float_tflite = convert(model, "float32")
    reference_scorer = TFLiteScorer(float_tflite)
    reference_tflite = {"bytes": len(float_tflite)} | measure_speed(reference_scorer, test_features)
    built, variants = {}, {}
    for variant in cfg.variants:
        started = time.perf_counter()
        source = model
        if variant == "qat":
            source = quantization_aware(model, train_features, train_labels, cfg, seed)
        built[variant] = convert(source, variant, sample)
        scorer = TFLiteScorer(built[variant])
        scores = scorer.predict(test_features)
        variants[variant] = (
            {"bytes": len(built[variant]), "size_ratio": len(float_tflite) / len(built[variant])}
            | quality(test_labels, scores, threshold)
            | {"max_abs_diff": float(np.abs(scores - float_scores).max())}
            | measure_speed(scorer, test_features)
            | {"latency_ratio": latency_ratio(scorer, reference_scorer, test_features)}
            | {"build_seconds": time.perf_counter() - started}
        )
        log.info(
            "quantized %s: %d bytes, test PR-AUC %.4f",
            variant,
            len(built[variant]),
            variants[variant]["pr_auc"],
        )
    serving = gate(variants, reference, cfg)
    report = {
        "float": reference | {"bytes": None},
        "float_tflite": reference_tflite,
        "variants": variants,
        "threshold": threshold,
        "serving_artifact": serving,
        "interpreter": interpreter_class()[1],
    }
    return report, built


def comparison_table(report: dict) -> pd.DataFrame:
    rows = [{"variant": "float (Keras)", **report["float"]}]
    rows += [{"variant": "float32 TFLite (reference)", **report["float_tflite"]}]
    rows += [{"variant": name, **entry} for name, entry in report["variants"].items()]
    columns = [
        "variant",
        "bytes",
        "size_ratio",
        "pr_auc",
        "roc_auc",
        "recall",
        "pr_auc_drop",
        "recall_drop",
        "max_abs_diff",
        "latency_batch1_ms",
        "latency_ratio",
        "throughput_batch256_rows_s",
        "eligible",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def markdown_table(report: dict) -> str:
    table = comparison_table(report).round(4).astype(object).where(lambda t: t.notna(), "")
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += [
        "| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return (
        "\n".join(lines)
        + f"\n\nserving artifact: {report['serving_artifact']}\n"
        + f"measured with: {report['interpreter']}, one thread\n"
    )


def main() -> None:
    params = load_params()
    cfg = params.quantize
    schema = load_schema(schema_path(params.data))
    model = load_keras_model(paths.KERAS_MODEL)
    transform = FeatureTransform.load(paths.FEATURE_TRANSFORM)
    train, test = read_parquet(paths.AUGMENTED_TRAIN), read_parquet(paths.SPLIT_TEST)
    report, built = quantize(
        model,
        transform.transform(train),
        train[schema.target].to_numpy(),
        transform.transform(test),
        test[schema.target].to_numpy(),
        float(read_json(paths.EVALUATE_METRICS)["threshold"]),
        cfg,
        params.seed,
        transform.code_columns,
    )
    report["float"]["bytes"] = paths.KERAS_MODEL.stat().st_size
    serving = report["serving_artifact"]
    # model.tflite is the served variant, or, when none passed the gate, the most accurate one
    # (kept for inspection; register serves the float model then).
    kept = (
        serving
        if serving != "float"
        else max(report["variants"], key=lambda name: report["variants"][name]["pr_auc"])
    )
    report["tflite_file_variant"] = kept
    with atomic_path(paths.TFLITE_MODEL) as tmp:
        tmp.write_bytes(built[kept])
    write_json_atomic(report, paths.QUANTIZE_METRICS)
    write_text_atomic(markdown_table(report), paths.QUANTIZE_TABLE)
    log.info("quantization gate:\n%s", comparison_table(report).round(4).to_string(index=False))
    log.info("serving artifact: %s", serving)


if __name__ == "__main__":
    run_stage("quantize", main)
