"""Quantization goals, measured side by side on the pipeline's trained model (run `make run` first).

Prints, for every variant against the unquantized float32 TFLite model: size ratio, batch-1
latency ratio (the stage's own, timed in windows alternating with the float32 model, which the
gate holds to ``quantize.max_latency_ratio``) and batch-256 throughput ratio (LiteRT
interpreter, one thread), plus PR-AUC drop against the float Keras model, and checks the
issue's goals: int8 at least 3.5x smaller than float TFLite, the chosen variant's PR-AUC drop
at most 0.01, and its batch-1 latency no worse than float TFLite. Then every variant's latency
ratio again over --repeats fresh measurements (8 by default), to show how steady it is.

Then it accounts for every byte of each file (tensor data, quantization parameters, metadata,
graph structure; per tensor for float32 and int8), derives the largest size ratio int8 can
reach for this model, and measures what the converter settings the pipeline does not use would
change (cumulatively): no conversion metadata, per-tensor Dense weights, int8 input/output,
and names stripped. For a model with embeddings (``train.categorical_encoding: embedding``) it
also prints, for each variant with an int8 input quantization, the input range that one scale
for all columns represents, the categorical codes it clips, and how far the test rows holding
them move against the float model.

With ``--widths`` it measures only how the int8/float32 size ratio grows with the model's
width: for each ``hidden_units`` given (e.g. ``--widths 64,32 256,128``), the stage's model
(``build_model`` with the default train params, the stage's FeatureTransform input and
embeddings) is converted to float32 and int8 TFLite, int8 calibrated on the stage's
representative rows. The models are not trained: a file's size depends on the tensors' shapes
and types, not on the weight values, with one exception: the converter drops an all-zero bias,
which every fresh Dense layer has, so the weights are set to seeded random values first. At
the default width this gives the trained model's float32 and int8 sizes to the byte.

    python -m bench.quantize_variants [--repeats 8]
    python -m bench.quantize_variants --widths 64,32 256,128 1024,512
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from bench.common import default_params
from bench.tflite_sizes import flatbuffer_utils, size_breakdown
from pipelines import paths
from pipelines.contracts import DecisionThreshold
from pipelines.features import FeatureTransform
from pipelines.io import read_parquet
from pipelines.metrics import quality
from pipelines.model import build_model
from pipelines.quantize import quantize
from pipelines.schema import load_enforced_schema
from pipelines.tf_runtime import load_keras_model, predict_proba, tensorflow
from pipelines.tflite import TFLiteScorer, convert, latency_ratio, representative_sample

GOAL_RATIO = 3.5


def print_goals(report: dict) -> None:
    reference = report["float_tflite"]
    print(
        f"float32 TFLite: {reference['bytes']} bytes, "
        f"batch-1 {reference['latency_batch1_ms'] * 1000:.1f} us ({report['interpreter']}, one thread)"
    )
    print(
        f"{'variant':14s} {'smaller':>8s} {'latency':>8s} {'throughput':>10s} {'PR-AUC drop':>11s} eligible"
    )
    for name, entry in report["variants"].items():
        print(
            f"{name:14s} {entry['size_ratio']:>7.2f}x "
            f"{entry['latency_ratio']:>7.2f}x "
            f"{entry['throughput_batch256_rows_s'] / reference['throughput_batch256_rows_s']:>9.2f}x "
            f"{entry['pr_auc_drop']:>11.4f} {entry['eligible']}"
        )
    chosen = report["serving_artifact"]
    print(f"serving artifact: {chosen}")
    if "int8" in report["variants"]:
        ratio = report["variants"]["int8"]["size_ratio"]
        print(
            f"goal int8 >= {GOAL_RATIO}x smaller than float TFLite: {ratio:.2f}x "
            f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}"
        )
    if chosen != "float":
        entry = report["variants"][chosen]
        print(
            f"goal chosen PR-AUC drop <= 0.01: {entry['pr_auc_drop']:.4f} "
            f"{'met' if entry['pr_auc_drop'] <= 0.01 else 'NOT met'}"
        )
        slower = entry["latency_ratio"]
        print(
            f"goal chosen batch-1 latency <= float TFLite: {slower:.2f}x "
            f"{'met' if slower <= 1.0 else 'NOT met'}"
        )


def print_latency_spread(
    built: dict[str, bytes], float_tflite: bytes, x_test: np.ndarray, repeats: int
) -> None:
    """Each variant's batch-1 latency ratio over ``repeats`` fresh measurements: how close to
    the gate's line a variant sits decides how often a rerun could flip its eligibility."""
    float_scorer = TFLiteScorer(float_tflite)
    print(f"\nbatch-1 latency / float32 TFLite's, {repeats} fresh measurements each:")
    for name, tflite in built.items():
        scorer = TFLiteScorer(tflite)
        ratios = [latency_ratio(scorer, float_scorer, x_test) for _ in range(repeats)]
        low, middle, high = np.percentile(ratios, [0, 50, 100])
        print(f"  {name:14s} min {low:.2f}x, median {middle:.2f}x, max {high:.2f}x")


def print_breakdown(breakdowns: dict[str, dict]) -> None:
    print(
        "\nsize breakdown (bytes): file = tensor data + quantization params + metadata + structure"
    )
    print(
        f"{'variant':14s} {'file':>6s} {'data':>6s} {'quant':>6s} {'meta':>5s} "
        f"{'struct':>6s} {'dup':>4s} {'smaller':>8s}"
    )
    reference = breakdowns["float32"]["file_bytes"]
    for name, entry in breakdowns.items():
        print(
            f"{name:14s} {entry['file_bytes']:>6d} {entry['tensor_data_bytes']:>6d} "
            f"{entry['quantization_bytes']:>6d} {entry['metadata_bytes']:>5d} "
            f"{entry['structure_bytes']:>6d} {entry['duplicated_constant_bytes']:>4d} "
            f"{reference / entry['file_bytes']:>7.2f}x"
        )
    for name in ("float32", "int8"):
        if name not in breakdowns:
            continue
        print(f"\nper tensor, {name} (data = constant bytes, quant = scales and zero points):")
        print(f"  {'dtype':8s} {'shape':10s} {'data':>6s} {'quant':>6s}  tensor")
        for row in breakdowns[name]["tensors"]:
            shape = "x".join(str(n) for n in row["shape"])
            print(
                f"  {row['dtype']:8s} {shape:10s} {row['data_bytes']:>6d} "
                f"{row['quantization_bytes']:>6d}  {row['tensor'][:70]}"
            )


def print_bound(float32: dict, int8: dict) -> None:
    """Why the int8 ratio stops where it does, from the two breakdowns."""
    file_f, data_f = float32["file_bytes"], float32["tensor_data_bytes"]
    file_i, data_i = int8["file_bytes"], int8["tensor_data_bytes"]
    other_f, other_i = file_f - data_f, file_i - data_i
    # Biases are the int32 constants with a scale; the other int32 constants (slice bounds,
    # shapes: the embedding model's column slicing) are the same bytes as in float32.
    biases = sum(
        row["data_bytes"]
        for row in int8["tensors"]
        if row["dtype"] == "INT32" and row["quantization_bytes"]
    )
    budget = file_f / GOAL_RATIO - data_i
    print(f"\nint8 against float32 TFLite: {file_f / file_i:.2f}x")
    print(
        f"  tensor data alone: {data_f} / {data_i} = {data_f / data_i:.2f}x "
        f"(int8 weights are 1 byte, but its {biases} bytes of biases stay int32)"
    )
    print(
        f"  int8 bytes besides tensor data: {other_i} (quantization {int8['quantization_bytes']}, "
        f"metadata {int8['metadata_bytes']}, structure {int8['structure_bytes']}); "
        f"float32's: {other_f}"
    )
    print(
        f"  for {GOAL_RATIO}x the int8 file may hold at most {file_f:.0f} / {GOAL_RATIO} - {data_i}"
        f" = {budget:.0f} bytes besides its tensor data"
    )
    # The int8 graph has every tensor and operator of the float32 one, plus the quantize and
    # dequantize at its float interface (and, with embeddings, a dequantize before each code's
    # cast to int32) and a scale and zero point per quantized tensor, so it cannot need fewer
    # non-data bytes than the float32 graph does.
    print(
        f"  bound: with no more non-data bytes than float32 ({other_f}), int8 would be at most "
        f"{file_f / (data_i + other_f):.2f}x smaller"
    )


def strip(tflite_model: bytes) -> bytes:
    """Tensor names and signature removed (flatbuffer_utils.strip_strings)."""
    utils = flatbuffer_utils()
    model = utils.convert_bytearray_to_object(bytearray(tflite_model))
    utils.strip_strings(model)
    return bytes(utils.convert_object_to_bytearray(model))


def print_what_if(model, sample: np.ndarray, x_test, labels, threshold: float, reference) -> None:
    """Converter settings the pipeline does not use, applied cumulatively to int8."""
    tf, _ = tensorflow()
    float_scores = predict_proba(model, x_test)
    reference_quality = quality(labels, float_scores, threshold)
    steps = [
        ("no conversion metadata", {"exclude_conversion_metadata": True}),
        (
            "+ per-tensor Dense weights",
            {"_experimental_disable_per_channel_quantization_for_dense_layers": True},
        ),
        (
            "+ int8 input/output",
            {"inference_input_type": tf.int8, "inference_output_type": tf.int8},
        ),
    ]
    print("\nwhat-if, cumulative on int8 (not used by the pipeline):")
    print(
        f"  {'setting':34s} {'bytes':>6s} {'smaller':>8s} {'PR-AUC drop':>11s} {'max |diff|':>10s}"
    )
    settings: dict = {}
    tflite = b""
    for label, extra in steps:
        settings |= extra
        tflite = convert(model, "int8", sample, **settings)
        scored = "  not scored: int8 interface"
        if "inference_input_type" not in settings:  # a float interface: scored like the pipeline
            scores = TFLiteScorer(tflite).predict(x_test)
            drop = reference_quality["pr_auc"] - quality(labels, scores, threshold)["pr_auc"]
            scored = f"{drop:>11.4f} {np.abs(scores - float_scores).max():>10.4f}"
        print(f"  {label:34s} {len(tflite):>6d} {reference / len(tflite):>7.2f}x {scored}")
    stripped = strip(tflite)
    float_stripped = strip(convert(model, "float32", exclude_conversion_metadata=True))
    print(
        f"  {'+ names and signature stripped':34s} {len(stripped):>6d} "
        f"{reference / len(stripped):>7.2f}x  ({len(float_stripped)} bytes float32 stripped "
        f"alike: {len(float_stripped) / len(stripped):.2f}x)"
    )


def input_range(tflite_model: bytes) -> tuple[float, float] | None:
    """The float range the model's int8 input quantization can represent (None: no int8 input).

    A float-interface int8 model starts with a QUANTIZE of its input to one per-tensor scale
    and zero point; every column of the input, categorical codes included, is clipped to it.
    """
    utils = flatbuffer_utils()
    graph = utils.convert_bytearray_to_object(bytearray(tflite_model)).subgraphs[0]
    for operator in graph.operators:
        if graph.inputs[0] not in operator.inputs:
            continue
        tensor = graph.tensors[operator.outputs[0]]
        params = tensor.quantization
        if utils.type_to_name(tensor.type) == "INT8" and params is not None and params.scale:
            scale, zero = float(params.scale[0]), int(params.zeroPoint[0])
            return (-128 - zero) * scale, (127 - zero) * scale
    return None


def print_code_clipping(
    built: dict[str, bytes],
    float_scores: np.ndarray,
    x_test: np.ndarray,
    transform: FeatureTransform,
) -> None:
    """Embedding model: the categorical codes each int8-input variant cannot represent, and how
    far the test rows holding them move against the float model."""
    first = x_test.shape[1] - len(transform.categorical)
    codes = x_test[:, first:]
    print("\ncategorical codes through the int8 input quantization (one scale for all columns):")
    for name, tflite in built.items():
        represented = input_range(tflite)
        if represented is None:
            continue
        low, high = represented
        print(f"  {name}: input range [{low:.2f}, {high:.2f}]")
        for column, levels in zip(transform.categorical, transform.levels, strict=True):
            lost = [code for code in range(levels) if code > high + 0.5]
            clipped_codes = f"{lost}, read as {int(high + 0.5)}" if lost else "none"
            print(f"    {column} (codes 0-{levels - 1}): clipped {clipped_codes}")
        clipped = (codes > high + 0.5).any(axis=1)
        diff = np.abs(TFLiteScorer(tflite).predict(x_test) - float_scores)
        print(
            f"    max |probability diff|: {diff[~clipped].max():.3f} on the {int((~clipped).sum())}"
            f" test rows with no clipped code, {diff[clipped].max() if clipped.any() else 0:.3f}"
            f" on the {int(clipped.sum())} with one"
        )


def print_widths(widths: list[list[int]], params, transform: FeatureTransform, sample) -> None:
    """The int8/float32 TFLite size ratio of the stage's model at each ``hidden_units``."""
    _, keras = tensorflow()
    levels = transform.levels if transform.encoding == "embedding" else []
    rng = np.random.default_rng(params.seed)
    print(
        "\nint8 against float32 TFLite by model width (untrained, seeded random weights: "
        "size depends on shapes and types, not weight values)"
    )
    print(
        f"{'hidden units':>14s} {'parameters':>10s} {'float32':>9s} {'int8':>9s} "
        f"{'smaller':>8s} {'data share':>10s}"
    )
    for units in widths:
        cfg = params.train.model_copy(update={"hidden_units": units})
        # Layer names, and so tensor names and the file's bytes, are the stage's ("dense",
        # not "dense_7") only in a fresh Keras session.
        keras.backend.clear_session()
        model = build_model(transform.width, cfg, levels=levels)
        model.set_weights(
            [rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()]
        )
        float32 = size_breakdown(convert(model, "float32"))
        int8 = convert(model, "int8", sample)
        print(
            f"{','.join(map(str, units)):>14s} {model.count_params():>10d} "
            f"{float32['file_bytes']:>9d} {len(int8):>9d} "
            f"{float32['file_bytes'] / len(int8):>7.3f}x "
            f"{float32['tensor_data_bytes'] / float32['file_bytes']:>10.1%}"
        )


def widths_arg(text: str) -> list[int]:
    return [int(units) for units in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=8, help="chosen/float32 batch-1 latency measurements"
    )
    parser.add_argument(
        "--widths",
        type=widths_arg,
        nargs="+",
        metavar="UNITS",
        help="only the int8/float32 size ratio at these hidden_units, e.g. 64,32 256,128",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = default_params()
    transform = FeatureTransform.load(paths.FEATURE_TRANSFORM)
    train = read_parquet(paths.AUGMENTED_TRAIN)
    if args.widths:
        sample = representative_sample(
            transform.transform(train),
            params.quantize.representative_rows,
            params.seed,
            transform.code_columns,
        )
        print_widths(args.widths, params, transform, sample)
        return
    schema = load_enforced_schema()
    test = read_parquet(paths.SPLIT_TEST)
    model = load_keras_model(paths.KERAS_MODEL)
    x_train, x_test = transform.transform(train), transform.transform(test)
    labels = test[schema.target].to_numpy()
    threshold = DecisionThreshold.load().threshold
    report, built = quantize(
        model,
        x_train,
        train[schema.target].to_numpy(),
        x_test,
        labels,
        threshold,
        params.quantize,
        params.seed,
        transform.code_columns,
    )
    print_goals(report)
    float_tflite = convert(model, "float32")
    print_latency_spread(built, float_tflite, x_test, args.repeats)
    breakdowns = {"float32": size_breakdown(float_tflite)}
    breakdowns |= {name: size_breakdown(tflite) for name, tflite in built.items()}
    print_breakdown(breakdowns)
    if "int8" in breakdowns:
        print_bound(breakdowns["float32"], breakdowns["int8"])
        sample = representative_sample(
            x_train, params.quantize.representative_rows, params.seed, transform.code_columns
        )
        print_what_if(model, sample, x_test, labels, threshold, len(float_tflite))
    if transform.encoding == "embedding" and transform.categorical:
        float_scores = predict_proba(model, x_test)
        print_code_clipping(built, float_scores, x_test, transform)


if __name__ == "__main__":
    main()
