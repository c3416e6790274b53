"""predict_proba's two paths (one batch, or Keras' batched predict) give the same scores, and
TensorFlow comes without Keras 3."""

import subprocess
import sys

import numpy as np
import pytest

from pipelines.tf_runtime import PREDICT_BATCH, predict_proba, tensorflow


@pytest.mark.parametrize("rows", [1, 37, PREDICT_BATCH, PREDICT_BATCH + 5])
def test_predict_proba_equals_keras_predict_on_every_path(rows):
    _, tf_keras = tensorflow()
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            tf_keras.Input((4,)),
            tf_keras.layers.Dense(8, "relu"),
            tf_keras.layers.Dense(1, "sigmoid"),
        ]
    )
    features = np.random.default_rng(0).normal(size=(rows, 4)).astype("float32")

    scores = predict_proba(model, features)

    expected = model.predict(features, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
    assert scores.dtype == np.float64 and scores.shape == (rows,)
    np.testing.assert_array_equal(scores, expected.astype("float64"))


def test_tensorflow_comes_with_tf_keras_and_without_keras_3():
    probe = (
        "import os, sys; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n"
        "from pipelines.tf_runtime import tensorflow\n"
        "tf, tf_keras = tensorflow()\n"
        "print(tf.keras.Model is tf_keras.Model, 'keras' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["True", "False"], done.stdout + done.stderr
