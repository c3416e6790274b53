"""TFLite conversion, the LiteRT interpreter, and how variants are timed.

What the quantize stage (and the benchmarks) need to turn a Keras model into TFLite bytes,
score those bytes, and time them fairly on a shared machine. No gating and no I/O here.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import cache
from importlib import metadata

import numpy as np

from pipelines.tf_runtime import tensorflow

log = logging.getLogger(__name__)

LATENCY_CALLS = 200
# A model so slow that LATENCY_CALLS calls would outlast this (the eager Keras reference, about
# 15 ms a call against microseconds in LiteRT) gets fewer: its calls are far above the clock's
# resolution, and ten windows of them still give a median.
LATENCY_SECONDS = 0.5
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


class KerasExport:
    """``model`` saved and loaded once, as the SavedModel that every TFLite conversion of it
    starts from.

    ``TFLiteConverter.from_keras_model`` writes the model to a temporary SavedModel on each
    ``convert()`` and loads it back twice (its graph, then its trackable object), which is most
    of a small model's conversion time. Each converter from ``converter()`` is handed this one
    export. It is saved and loaded with the calls TensorFlow's ``_convert_keras_to_saved_model``
    makes for a tf-keras model (that function is replaced, not called), so each variant's
    bytes are those of a conversion of its own (asserted in tests/integration/test_quantize.py,
    which catches a TensorFlow upgrade that changes these private steps). Saving it here also
    skips that function's Keras 3 check, which imports Keras 3 (and with it scikit-learn and
    matplotlib) for a model that is tf-keras's. Use it as a context manager: the export is
    removed on exit.
    """

    def __init__(self, model):
        self.model = model
        self.folder = tempfile.mkdtemp(prefix="keras-export-")
        self.saved = False
        self.loaded: tuple | None = None

    def __enter__(self) -> KerasExport:
        return self

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def converter(self):
        tf, _ = tensorflow()
        from tensorflow.lite.python import lite

        converter = tf.lite.TFLiteConverter.from_keras_model(self.model)

        def load_the_export(_temporary_folder: str):
            if not self.saved:
                tf.saved_model.save(
                    self.model,
                    self.folder,
                    options=tf.saved_model.SaveOptions(save_debug_info=True),
                )
                self.saved = True
            converter.saved_model_dir = self.folder
            converter._saved_model_tags = {tf.saved_model.SERVING}
            converter._saved_model_exported_names = [
                tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
            ]
            converter._parse_saved_model_args(
                always_enable_saved_model_import=converter.experimental_lower_to_saved_model
            )
            if not converter.saved_model_dir:  # TensorFlow's fallback: the frozen Keras graph
                return None, None, None
            if self.loaded is None:
                graph = converter._load_saved_model(self.folder, converter._saved_model_tags)
                self.loaded = (graph, lite._load(self.folder, converter._saved_model_tags))
            graph, trackable = self.loaded
            converter._trackable_obj = trackable
            return graph

        converter._convert_keras_to_saved_model = load_the_export
        return converter


def convert(
    source, variant: str, representative: np.ndarray | None = None, **settings: object
) -> bytes:
    """TFLite bytes of ``source``, a Keras model or its ``KerasExport``, for a post-training
    variant (``qat`` converts like ``int8``).

    ``settings`` are extra converter attributes; the pipeline uses none, the size benchmark
    measures alternatives with them.
    """
    tf, _ = tensorflow()
    if isinstance(source, KerasExport):
        converter = source.converter()
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(source)
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
        if representative is None:
            raise ValueError(f"the {variant} variant needs representative rows to calibrate")
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
    latency = _seconds_per_call(call, [one] * latency_calls(call, one))
    call(batches[0])
    per_batch = _seconds_per_call(call, list(batches))
    return {
        "latency_batch1_ms": latency * 1000,
        "throughput_batch256_rows_s": THROUGHPUT_BATCH / per_batch,
    }


def latency_calls(call: Callable[[np.ndarray], object], one: np.ndarray) -> int:
    """LATENCY_CALLS, or as many as fit in LATENCY_SECONDS, at least one per timing window.

    The fastest of three calls sets the pace, so one preempted call does not cut the count.
    """
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        call(one)
        seconds.append(time.perf_counter() - started)
    fastest = min(seconds)
    return int(np.clip(LATENCY_SECONDS / max(fastest, 1e-9), TIMING_WINDOWS, LATENCY_CALLS))


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
