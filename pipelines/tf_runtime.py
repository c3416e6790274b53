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


def predict_proba(model, features) -> object:
    """Positive-class probabilities as a flat float64 array."""
    return model.predict(features, batch_size=4096, verbose=0).reshape(-1).astype("float64")
