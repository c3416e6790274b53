"""The train stage's controls on a real TensorFlow: resume after a kill, and the model's knobs."""

import json
import re
import signal

import numpy as np
import pandas as pd
import pytest

from pipelines import paths
from pipelines.batches import steps_per_epoch, training_stream
from pipelines.model import build_model, float32_copy
from pipelines.tf_runtime import tensorflow
from pipelines.tflite import convert
from tests.integration.conftest import train_repo

pytestmark = pytest.mark.integration

EPOCHS = 10
EPOCH_LINE = re.compile(rf"\bepoch (\d+)/{EPOCHS} loss")
KILLED_AFTER = 3
RESUMABLE = {
    "epochs": EPOCHS,
    # Small patiences, so that early stopping's and the LR schedule's counters carry over the
    # kill and matter after it.
    "early_stopping_patience": 4,
    "reduce_lr_patience": 2,
    "hidden_units": [8],
    "dropout": 0.2,  # its masks must continue where they were, not restart
    "batch_size": 32,
    # The other controls ride along, so the real entry point exercises them too.
    "loss": "focal",
    "l2": 0.0001,
    "deterministic": True,
}


def _weights(repo) -> list[np.ndarray]:
    _, keras = tensorflow()
    model = keras.models.load_model(repo.root / paths.KERAS_MODEL, compile=False)
    return model.get_weights()


def test_a_killed_and_resumed_training_reaches_the_uninterrupted_model(tmp_path):
    """SIGKILL after epoch 3 (PIPELINE_FAULT_AT), resume: same epochs, same history, same best
    validation PR-AUC and the same weights as one uninterrupted run with the same seed."""
    whole = train_repo(tmp_path / "whole", RESUMABLE)
    whole.python("-m", "pipelines.train", check=True, timeout=300)
    repo = train_repo(tmp_path / "killed", RESUMABLE)
    fault = {"PIPELINE_FAULT_AT": f"train:epoch={KILLED_AFTER}"}
    killed = repo.python("-m", "pipelines.train", env_extra=fault, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    assert [int(n) for n in EPOCH_LINE.findall(killed.stderr)] == list(range(1, KILLED_AFTER + 1))
    assert (repo.root / paths.TRAIN_BACKUP / "chief" / "checkpoint").exists()

    second = repo.python("-m", "pipelines.train", timeout=300)
    assert second.returncode == 0, second.stderr[-4000:]
    assert f"resuming from the backup at epoch {KILLED_AFTER + 1}/{EPOCHS}" in second.stderr
    expected = pd.read_csv(whole.root / paths.TRAINING_HISTORY)
    history = pd.read_csv(repo.root / paths.TRAINING_HISTORY)
    assert history["epoch"].tolist() == expected["epoch"].tolist()
    pd.testing.assert_frame_equal(history, expected, atol=1e-6)
    report = json.loads((repo.root / paths.TRAIN_REPORT).read_text())
    uninterrupted = json.loads((whole.root / paths.TRAIN_REPORT).read_text())
    assert report["first_epoch"] == KILLED_AFTER + 1 and uninterrupted["first_epoch"] == 1
    for key in ("best_val_pr_auc", "best_epoch", "epochs_run"):
        assert report[key] == pytest.approx(uninterrupted[key], abs=1e-6), key
    for resumed, straight in zip(_weights(repo), _weights(whole), strict=True):
        np.testing.assert_allclose(resumed, straight, atol=1e-6)
    assert not (repo.root / paths.TRAIN_BACKUP).exists()  # deleted once training succeeded
    assert any((repo.root / paths.TENSORBOARD).rglob("events.out.tfevents.*"))


def test_model_knobs_mixed_precision_l2_and_focal_loss(train_params):
    _, keras = tensorflow()
    cfg = train_params(
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


def test_embedding_model_trains_saves_loads_and_converts(tmp_path, train_params):
    from pipelines.tf_runtime import load_keras_model

    _, keras = tensorflow()
    cfg = train_params(
        epochs=1,
        batch_size=16,
        learning_rate=0.01,
        dropout=0.1,
        early_stopping_patience=1,
        categorical_encoding="embedding",
    )
    levels = [4, 101]  # two code columns after three numeric ones
    rng = np.random.default_rng(0)
    rows = np.column_stack(
        [rng.normal(size=(64, 3)), rng.integers(0, 4, 64), rng.integers(0, 101, 64)]
    ).astype("float32")
    rows[:2, 3:] = [3, 100]  # the unknown slot, the last code, is a valid row of each table
    labels = (rows[:, 3] == 1).astype("float32")
    model = build_model(5, cfg, levels=levels)
    tables = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    assert [(t.input_dim, t.output_dim) for t in tables] == [(4, 3), (101, 16)]
    before = model.predict(rows, verbose=0)
    model.fit(rows, labels, batch_size=16, epochs=2, verbose=0)
    scores = model.predict(rows, verbose=0)
    assert scores.shape == (64, 1) and np.isfinite(scores).all()
    assert not np.allclose(scores, before)  # it learned something
    # Codes are rounded, not truncated: a code quantization moved a little is still itself.
    np.testing.assert_allclose(
        model.predict(rows + np.r_[0, 0, 0, 0.3, -0.3].astype("float32"), verbose=0)[:, 0],
        model.predict(rows + np.r_[0, 0, 0, 0, 0].astype("float32"), verbose=0)[:, 0],
        atol=1e-6,
    )
    model.save(tmp_path / "model.keras")
    loaded = load_keras_model(tmp_path / "model.keras")  # safe mode, no custom objects
    np.testing.assert_allclose(loaded.predict(rows, verbose=0), scores, atol=1e-6)

    mixed = build_model(5, cfg, policy="mixed_float16", levels=levels)
    mixed.set_weights(model.get_weights())
    assert mixed.output.dtype == "float32"
    exported = float32_copy(mixed, 5, cfg, levels)  # the same architecture, all float32
    assert {layer.compute_dtype for layer in exported.layers[1:]} == {"float32"}
    np.testing.assert_allclose(exported.predict(rows, verbose=0), scores, atol=1e-6)
    assert convert(exported, "dynamic_range")


def test_the_training_stream_gives_every_row_once_per_epoch_in_a_fresh_seeded_order():
    features, labels = np.arange(10, dtype="float32")[:, None], np.arange(10) % 2
    steps = steps_per_epoch(len(features), 4)

    def epochs(seed: int, count: int = 3) -> list[list[int]]:
        stream = training_stream(features, labels, 4, seed).take(steps * count)
        batches = list(stream.as_numpy_iterator())
        assert [len(x) for x, _ in batches] == [4, 4, 2] * count
        assert all((x[:, 0] % 2 == y).all() for x, y in batches)  # labels stay with their rows
        rows = [x[:, 0].astype(int).tolist() for x, _ in batches]
        return [sum(rows[i * steps : (i + 1) * steps], []) for i in range(count)]

    orders = epochs(42)
    assert all(sorted(order) == list(range(10)) for order in orders)
    assert len({tuple(order) for order in orders}) == len(orders)
    assert orders == epochs(42)
    assert orders != epochs(43)
