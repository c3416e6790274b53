"""Quantization on a real trained Keras model: every variant runs, a degraded one is rejected."""

import numpy as np
import pytest
from ai_edge_litert import interpreter as litert

from bench.tflite_sizes import size_breakdown
from pipelines.config import DataParams, QuantizeParams, SplitParams
from pipelines.metrics import quality
from pipelines.quantize import Rows, gate, quantize
from pipelines.schema import infer_schema
from pipelines.split import split
from pipelines.tf_runtime import tensorflow
from pipelines.tflite import TFLiteScorer, convert, representative_sample
from pipelines.train import train
from tests.conftest import make_frame

pytestmark = pytest.mark.integration

CFG = QuantizeParams(
    variants=["dynamic_range", "float16", "int8", "qat"],
    max_pr_auc_drop=0.01,
    max_recall_drop=0.02,
    parity_tolerance=0.1,
    max_latency_ratio=1.05,
    serving_policy="smallest",
    representative_rows=200,
    qat_epochs=1,
    qat_learning_rate=0.0001,
)


@pytest.fixture(scope="module", params=["one_hot", "embedding"])
def trained(request, train_params):
    frame = make_frame(n=3000, positive_rate=0.1, seed=7)
    schema = infer_schema(
        frame, DataParams(source="x", target="label", positive_label=1), 10, 3.0, 10
    )
    split_cfg = SplitParams(
        method="stratified", val_size=0.2, test_size=0.2, time_column=None, group_column=None
    )
    train_frame, val, test = split(frame, schema, split_cfg, seed=0)
    cfg = train_params(
        epochs=5,
        batch_size=64,
        learning_rate=0.003,
        hidden_units=[32, 16],
        early_stopping_patience=5,
        categorical_encoding=request.param,
    )
    result = train(train_frame, val, schema, cfg, seed=1)
    features = result.transform.transform
    return (
        result.model,
        features(train_frame),
        train_frame["label"].to_numpy(),
        features(test),
        test,
        result.transform.code_columns,
        Rows(features(val), val["label"].to_numpy()),
    )


def test_every_variant_converts_loads_and_scores(trained):
    _, keras = tensorflow()
    model, x_train, y_train, x_test, test, code_columns, val = trained
    labels = test["label"].to_numpy()
    report, built = quantize(
        model,
        Rows(x_train, y_train),
        val,
        Rows(x_test, labels),
        0.5,
        CFG,
        seed=0,
        code_columns=code_columns,
    )
    assert set(built) == set(CFG.variants)
    # Converted from one KerasExport of the model, yet byte for byte what a conversion of its
    # own gives (this fails if a TensorFlow upgrade changes the private steps it repeats).
    sample = representative_sample(x_train, CFG.representative_rows, 0, code_columns)
    assert built["dynamic_range"] == convert(model, "dynamic_range")
    assert built["int8"] == convert(model, "int8", sample)
    # Variants run (and are timed) in LiteRT, not TensorFlow's deprecated tf.lite.Interpreter.
    assert report["interpreter"].startswith("ai-edge-litert ")
    for name, tflite in built.items():
        scorer = TFLiteScorer(tflite)
        assert isinstance(scorer.interpreter, litert.Interpreter)
        scores = scorer.predict(x_test)
        assert scores.shape == (len(test),) and np.all((scores >= 0) & (scores <= 1)), name
        # Gated on validation; test is reported, under "test", only.
        assert report["variants"][name]["pr_auc"] == pytest.approx(
            quality(val.labels, scorer.predict(val.features), 0.5)["pr_auc"]
        )
        assert report["variants"][name]["test"]["pr_auc"] == pytest.approx(
            quality(labels, scores, 0.5)["pr_auc"]
        )
        assert report["variants"][name]["latency_ratio"] > 0, name
    assert report["variants"]["float16"]["max_abs_diff"] < 0.01
    # Every byte is accounted for, no constant is stored twice, and full-integer int8 holds
    # every layer's weights as int8 (biases int32, as TFLite's int8 kernels require).
    for name, tflite in built.items():
        sizes = size_breakdown(tflite)
        parts = ("tensor_data_bytes", "quantization_bytes", "metadata_bytes", "structure_bytes")
        assert sum(sizes[part] for part in parts) == sizes["file_bytes"] == len(tflite), name
        assert sizes["duplicated_constant_bytes"] == 0 and sizes["structure_bytes"] > 0, name
    constants = [row for row in size_breakdown(built["int8"])["tensors"] if row["data_bytes"]]
    weights = [row["dtype"] for row in constants if len(row["shape"]) == 2]
    biases = [
        row["dtype"] for row in constants if len(row["shape"]) == 1 and "BiasAdd" in row["tensor"]
    ]
    tables = sum(isinstance(layer, keras.layers.Embedding) for layer in model.layers)
    # Embedding tables (one per categorical feature) are int8 constants too, and so are both
    # kernels of the first Dense layer (numeric columns, embeddings) of an embedding model.
    assert weights == ["INT8"] * (3 + bool(tables) + tables) and biases == ["INT32"] * 3
    assert report["variants"]["int8"]["size_ratio"] == pytest.approx(
        report["float_tflite"]["bytes"] / len(built["int8"])
    )
    assert report["serving_artifact"] in {"float", *CFG.variants}


def test_the_gate_rejects_a_deliberately_degraded_variant(trained):
    model, _, _, x_test, test, _, _ = trained
    labels = test["label"].to_numpy()
    reference = quality(labels, model.predict(x_test, verbose=0).reshape(-1), 0.5)
    degraded = model.__class__.from_config(model.get_config())
    rng = np.random.default_rng(0)
    degraded.set_weights([w + rng.normal(0, 0.5, w.shape) for w in model.get_weights()])
    tflite = convert(degraded, "dynamic_range")
    scores = TFLiteScorer(tflite).predict(x_test)
    variants = {
        "dynamic_range": quality(labels, scores, 0.5)
        | {
            "bytes": len(tflite),
            "latency_ratio": 1.0,  # as fast as the float32 TFLite model: only accuracy fails
            "max_abs_diff": float(
                np.abs(scores - model.predict(x_test, verbose=0).reshape(-1)).max()
            ),
        }
    }
    assert gate(variants, reference, CFG) == "float"
    assert variants["dynamic_range"]["eligible"] is False
    # The recorded reason names the variant and only the checks it failed.
    reasons = variants["dynamic_range"]["gate"].split("; ")
    assert all(r.startswith("dynamic_range: ") and " > " in r for r in reasons)


def test_int8_input_range_holds_every_categorical_code(train_params):
    """int8 quantizes the one input with one range: it must reach the highest code (the
    unknown slot, which no training row holds), not stop where the standardised numbers do."""
    from pipelines.model import build_model

    rng = np.random.default_rng(0)
    levels = 31  # codes 0-29 seen in training, 30 the unknown slot
    x_train = np.column_stack(
        [rng.normal(size=(500, 3)), rng.integers(0, levels - 1, size=(500, 1))]
    ).astype("float32")
    cfg = train_params(
        epochs=1,
        batch_size=64,
        learning_rate=0.003,
        early_stopping_patience=1,
        categorical_encoding="embedding",
    )
    model = build_model(4, cfg, levels=[levels])
    code_columns = {3: levels - 1}
    sample = representative_sample(x_train, 200, seed=0, code_columns=code_columns)
    details = TFLiteScorer(convert(model, "int8", sample)).interpreter.get_tensor_details()
    quantized_input = next(
        d for d in details if d["dtype"] == np.int8 and tuple(d["shape"]) == (1, 4)
    )
    scale, zero_point = quantized_input["quantization"]
    # Codes are rounded (+0.5, then truncated) inside the model: within 0.5 reads right.
    assert (127 - zero_point) * scale > levels - 1 - 0.5
    assert (-128 - zero_point) * scale < 0.5
