"""The train stage's model knobs on a real TensorFlow."""

import numpy as np
import pytest

from pipelines.config import TrainParams
from pipelines.quantize import convert
from pipelines.tf_runtime import tensorflow
from pipelines.train import build_model, float32_copy

pytestmark = pytest.mark.integration


def test_model_knobs_mixed_precision_l2_and_focal_loss():
    _, keras = tensorflow()
    cfg = TrainParams(
        strategy="default",
        epochs=1,
        batch_size=8,
        learning_rate=0.01,
        hidden_units=[8, 4],
        dropout=0.1,
        early_stopping_patience=1,
        l2=0.01,
        loss="focal",
        focal_gamma=3.0,
    )
    # mixed_float16 is built here only to check the model's shape of dtypes; on CPU the
    # stage itself never picks it (see test_train.py's dtype_policy cases).
    model = build_model(5, cfg, policy="mixed_float16")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.compute_dtype for layer in dense] == ["float16", "float16", "float32"]
    assert model.output.dtype == "float32"
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert len(model.losses) == len(dense)  # one L2 penalty per Dense kernel
    assert isinstance(model.loss, keras.losses.BinaryFocalCrossentropy)
    assert model.loss.gamma == 3.0

    exported = float32_copy(model, 5, cfg)  # what train() returns after mixed precision
    assert {layer.compute_dtype for layer in exported.layers[1:]} == {"float32"}
    rows = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    np.testing.assert_allclose(
        exported.predict(rows, verbose=0), model.predict(rows, verbose=0), atol=5e-3
    )
    assert convert(exported, "dynamic_range")  # TFLite cannot convert the float16 MatMuls

    plain = build_model(5, cfg.model_copy(update={"l2": 0.0, "loss": "bce"}))
    assert {layer.compute_dtype for layer in plain.layers[1:]} == {"float32"}
    assert not plain.losses
    assert isinstance(plain.loss, keras.losses.BinaryCrossentropy)
