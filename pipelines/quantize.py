"""Quantize: TFLite variants of the float model, each gated on validation, reported on test.

Variants (``quantize.variants``):

* ``dynamic_range``: int8 weights, float activations;
* ``float16``: float16 weights;
* ``int8``: full integer ops, calibrated on a representative sample of the training split
  (float input and output, so the served interface does not change);
* ``qat``: quantization-aware training with tensorflow-model-optimization, a short
  fine-tune of the trained model on one device (tfmot does not support distribution
  strategies), then int8 conversion like ``int8``.

Each variant is scored through the LiteRT interpreter (``ai-edge-litert``; TensorFlow's
deprecated ``tf.lite.Interpreter`` only where no LiteRT wheel exists) on the VALIDATION split:
PR-AUC, ROC-AUC and recall at the threshold evaluate chose on validation, against the float
model, plus file size, batch-1 latency and batch-256 throughput (single-threaded interpreter).
An unquantized float32 TFLite conversion is measured too, as the size and speed reference. A
variant is eligible only if its PR-AUC drop is at most ``max_pr_auc_drop``, its recall drop at
most ``max_recall_drop``, no validation probability moves more than ``parity_tolerance``, and
its batch-1 latency is at most ``max_latency_ratio`` times the float32 TFLite model's (measured
in alternating windows, so that machine load hits both alike). Each check is a
``gates.GateResult``; a variant's ``gate`` in the stage's report gives the reasons of the
checks it failed (of every check when it passed), each with the measured value and the limit.
The eligible variant that ``serving_policy`` prefers (smallest file, or lowest measured
batch-1 latency) becomes ``model.tflite``; with none eligible the float model stays the
serving one. The choice reaches register as ``contracts.ServedVariant``.

Test only reports: once the choice is made, the float model and each variant are scored on the
test split, under each one's ``test`` key (``test_*`` columns of ``quantization.md``). Nothing
the choice reads comes from test. The headline numbers are the served artifact's test PR-AUC
and ROC-AUC, beside evaluate's of the float model; which artifact is served, its size ratio and
the validation-based drops the gate used are in the report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines import gates, paths
from pipelines.config import QuantizeParams, load_params
from pipelines.contracts import DecisionThreshold, ServedVariant
from pipelines.features import FeatureTransform
from pipelines.io import atomic_path, read_parquet, write_text_atomic
from pipelines.metrics import quality
from pipelines.reports import stage_headline, write_results
from pipelines.schema import load_enforced_schema
from pipelines.stage import run_stage
from pipelines.tf_runtime import load_keras_model, predict_proba, tensorflow
from pipelines.tflite import (
    KerasExport,
    TFLiteScorer,
    convert,
    interpreter_class,
    latency_ratio,
    measure_speed,
    representative_sample,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rows:
    """One split as the model sees it: transformed features and their labels."""

    features: np.ndarray
    labels: np.ndarray


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


# Each check: its name (the variant's report key), how a reason says it, and its quantize.* limit.
CHECKS = (
    ("pr_auc_drop", "PR-AUC drop", "max_pr_auc_drop"),
    ("recall_drop", "recall drop", "max_recall_drop"),
    ("max_abs_diff", "max |diff|", "parity_tolerance"),
    ("latency_ratio", "latency ratio", "max_latency_ratio"),
)


def variant_checks(name: str, entry: dict, cfg: QuantizeParams) -> list[gates.GateResult]:
    """The gate's checks of one measured variant, each reason naming the variant, the measured
    value and the limit (e.g. "int8: max |diff| 0.1415 > parity_tolerance 0.1")."""
    checks = []
    for key, label, limit_key in CHECKS:
        measured, limit = entry[key], getattr(cfg, limit_key)
        verdict = "<=" if measured <= limit else ">"
        reason = f"{name}: {label} {measured:.4f} {verdict} {limit_key} {limit:g}"
        checks.append(gates.at_most(key, measured, limit, reason))
    return checks


def gate(variants: dict[str, dict], reference: dict[str, float], cfg: QuantizeParams) -> str:
    """Mark each variant eligible or not, with the reasons under ``gate``; return the serving
    choice per ``serving_policy``."""
    for name, entry in variants.items():
        entry["pr_auc_drop"] = reference["pr_auc"] - entry["pr_auc"]
        entry["recall_drop"] = reference["recall"] - entry["recall"]
        checks = variant_checks(name, entry, cfg)
        entry["eligible"] = gates.passed(checks)
        entry["gate"] = gates.explain(checks)
    eligible = [name for name, entry in variants.items() if entry["eligible"]]
    if not eligible:
        return "float"
    key = "bytes" if cfg.serving_policy == "smallest" else "latency_batch1_ms"
    return min(eligible, key=lambda name: variants[name][key])


def measure_variant(
    tflite: bytes,
    val: Rows,
    float_scores: np.ndarray,
    threshold: float,
    reference_scorer: TFLiteScorer,
    float_tflite_bytes: int,
) -> dict:
    """A built variant on ``val``: its size, quality, largest score change from the float
    model, speed, and batch-1 latency against the float32 TFLite reference."""
    scorer = TFLiteScorer(tflite)
    scores = scorer.predict(val.features)
    return (
        {"bytes": len(tflite), "size_ratio": float_tflite_bytes / len(tflite)}
        | quality(val.labels, scores, threshold)
        | {"max_abs_diff": float(np.abs(scores - float_scores).max())}
        | measure_speed(scorer, val.features)
        | {"latency_ratio": latency_ratio(scorer, reference_scorer, val.features)}
    )


def quantize(
    model,
    train: Rows,
    val: Rows,
    test: Rows,
    threshold: float,
    cfg: QuantizeParams,
    seed: int,
    code_columns: dict[int, int] | None = None,
) -> tuple[dict, dict[str, bytes]]:
    """Build every variant, measure and gate it on ``val``, then report it on ``test``; return
    the report and each variant's bytes.

    The serving choice is made before ``test`` is scored, from validation numbers only.
    ``code_columns`` is ``FeatureTransform.code_columns``: int8 calibration covers every code.
    """
    float_scores = predict_proba(model, val.features)
    reference = quality(val.labels, float_scores, threshold) | measure_speed(
        lambda rows: model(rows, training=False), val.features
    )
    sample = representative_sample(train.features, cfg.representative_rows, seed, code_columns)
    with KerasExport(model) as export:
        float_tflite = convert(export, "float32")
        reference_scorer = TFLiteScorer(float_tflite)
        reference_tflite = {"bytes": len(float_tflite)} | measure_speed(
            reference_scorer, val.features
        )
        built: dict[str, bytes] = {}
        variants: dict[str, dict] = {}
        for variant in cfg.variants:
            started = time.perf_counter()
            if variant == "qat":  # a fine-tuned model of its own, exported on its own
                aware = quantization_aware(model, train.features, train.labels, cfg, seed)
                with KerasExport(aware) as aware_export:
                    built[variant] = convert(aware_export, variant, sample)
            else:
                built[variant] = convert(export, variant, sample)
            variants[variant] = measure_variant(
                built[variant], val, float_scores, threshold, reference_scorer, len(float_tflite)
            ) | {"build_seconds": time.perf_counter() - started}
            log.info(
                "quantized %s: %d bytes, validation PR-AUC %.4f",
                variant,
                len(built[variant]),
                variants[variant]["pr_auc"],
            )
    serving = gate(variants, reference, cfg)
    report_on_test(model, built, reference, variants, test, threshold)
    report = {
        "selected_on": "val",
        "float": reference | {"bytes": None},
        "float_tflite": reference_tflite,
        "variants": variants,
        "threshold": threshold,
        "serving_artifact": serving,
        "interpreter": interpreter_class()[1],
    }
    return report, built


def report_on_test(
    model,
    built: dict[str, bytes],
    reference: dict,
    variants: dict[str, dict],
    test: Rows,
    threshold: float,
) -> None:
    """Add each model's test metrics under its ``test`` key, for reporting only: called after
    the gate, and nothing reads them back to choose."""
    float_scores = predict_proba(model, test.features)
    reference["test"] = quality(test.labels, float_scores, threshold)
    for name, entry in variants.items():
        scores = TFLiteScorer(built[name]).predict(test.features)
        measured = quality(test.labels, scores, threshold)
        entry["test"] = measured | {
            "pr_auc_drop": reference["test"]["pr_auc"] - measured["pr_auc"],
            "max_abs_diff": float(np.abs(scores - float_scores).max()),
        }


def comparison_table(report: dict) -> pd.DataFrame:
    """One row per model: the validation numbers the gate read, then the reported-only test
    numbers as ``test_*`` columns."""

    def row(name: str, entry: dict) -> dict:
        tested = {f"test_{key}": value for key, value in entry.get("test", {}).items()}
        return {"variant": name, **entry, **tested}

    rows = [row("float (Keras)", report["float"])]
    rows += [row("float32 TFLite (reference)", report["float_tflite"])]
    rows += [row(name, entry) for name, entry in report["variants"].items()]
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
        "test_pr_auc",
        "test_recall",
        "test_pr_auc_drop",
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
        + "\n\ngate and serving choice: validation split; test_* columns are reported only\n"
        + f"serving artifact: {report['serving_artifact']}\n"
        + f"measured with: {report['interpreter']}, one thread\n"
    )


def headline_metrics(report: dict) -> dict:
    """The served artifact's TEST PR-AUC and ROC-AUC (reported after the choice, like every
    test number here): the float model's when no variant passed the gate."""
    served = report["serving_artifact"]
    test = (report["float"] if served == "float" else report["variants"][served])["test"]
    return stage_headline("quantize", pr_auc=test["pr_auc"], roc_auc=test["roc_auc"])


def main() -> None:
    params = load_params()
    cfg = params.quantize
    schema = load_enforced_schema()
    model = load_keras_model(paths.KERAS_MODEL)
    transform = FeatureTransform.load(paths.FEATURE_TRANSFORM)
    train, val, test = (
        Rows(transform.transform(frame), frame[schema.target].to_numpy())
        for frame in map(read_parquet, (paths.AUGMENTED_TRAIN, paths.SPLIT_VAL, paths.SPLIT_TEST))
    )
    report, built = quantize(
        model,
        train,
        val,
        test,
        DecisionThreshold.load().threshold,
        cfg,
        params.seed,
        transform.code_columns,
    )
    report["float"]["bytes"] = paths.KERAS_MODEL.stat().st_size
    serving = report["serving_artifact"]
    # model.tflite is the served variant, or, when none passed the gate, the most accurate one
    # on validation (kept for inspection; register serves the float model then).
    kept = (
        serving
        if serving != "float"
        else max(report["variants"], key=lambda name: report["variants"][name]["pr_auc"])
    )
    report["tflite_file_variant"] = kept
    with atomic_path(paths.TFLITE_MODEL) as tmp:
        tmp.write_bytes(built[kept])
    ServedVariant(serving_artifact=serving, tflite_file_variant=kept).write()
    write_results(report, paths.QUANTIZE_REPORT, headline_metrics(report), paths.QUANTIZE_METRICS)
    write_text_atomic(markdown_table(report), paths.QUANTIZE_TABLE)
    log.info(
        "quantization gate:\n%s\n%s",
        comparison_table(report).round(4).to_string(index=False),
        "\n".join(
            f"{'pass' if entry['eligible'] else 'fail'}: {entry['gate']}"
            for entry in report["variants"].values()
        ),
    )
    log.info("serving artifact: %s", serving)


if __name__ == "__main__":
    run_stage("quantize", main)
