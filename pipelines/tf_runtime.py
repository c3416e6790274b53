"""Import TensorFlow and tf-keras on demand, with quiet C++ logging.

tf-keras (Keras 2) is the Keras of this project because tensorflow-model-optimization's
quantization-aware training needs it. Stages import TensorFlow through this helper, so no
module pays TensorFlow's import cost (or its log spam) unless it trains or predicts.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from pipelines.errors import PipelineError

KERAS_ZIP_MAGIC = b"PK\x03\x04"


def tensorflow() -> tuple[ModuleType, ModuleType]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # tf.keras is then tf-keras too, as it is for tfmot: without this, importing TensorFlow
    # also imports Keras 3 (with scikit-learn and matplotlib), about 1.5 s of every train run.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import tf_keras

    return tf, tf_keras


def load_keras_model(path: Path):
    """Load a saved model with safe_mode on: no arbitrary code (Lambda layers) is run. Only
    the native ``.keras`` zip is loaded: safe_mode does not cover HDF5, whatever its name."""
    with Path(path).open("rb") as stream:
        if stream.read(len(KERAS_ZIP_MAGIC)) != KERAS_ZIP_MAGIC:
            raise PipelineError(f"{path}: not a native .keras zip; refusing to load it")
    _, tf_keras = tensorflow()
    return tf_keras.models.load_model(path, safe_mode=True, compile=False)


PREDICT_BATCH = 4096


def predict_proba(model, features) -> object:
    """Positive-class probabilities as a flat float64 array.

    Up to one batch goes through ``predict_on_batch``: ``predict`` builds a tf.data pipeline
    per call, about 50 ms, which SHAP's and permutation importance's hundreds of small calls
    paid over and over (tens of seconds of evaluate). Both run the same forward pass on the
    same one batch, so the scores are identical."""
    if len(features) <= PREDICT_BATCH:
        scores = model.predict_on_batch(features)
    else:
        scores = model.predict(features, batch_size=PREDICT_BATCH, verbose=0)
    return scores.reshape(-1).astype("float64")
