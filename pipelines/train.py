"""Train: a Keras MLP on the transformed training split, under a tf.distribute strategy.

``train.strategy``:

* ``auto``: MirroredStrategy when two or more GPUs are visible, else the default strategy
  (a single-device MirroredStrategy only adds overhead);
* ``mirrored``: MirroredStrategy over every GPU, or over every logical CPU device when
  there is no GPU (this is how the multi-replica path is tested on CPU);
* ``default``: no distribution.

The model is built inside ``strategy.scope()`` and the global batch is
``train.batch_size x num_replicas_in_sync``. Early stopping watches validation PR-AUC and
restores the best weights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines import paths
from pipelines.config import TrainParams, load_params
from pipelines.features import FeatureTransform
from pipelines.io import atomic_dir, read_json, read_parquet, write_csv_atomic, write_json_atomic
from pipelines.schema import Schema, load_schema, schema_path
from pipelines.stage import run_stage
from pipelines.tf_runtime import tensorflow

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: object
    transform: FeatureTransform
    history: pd.DataFrame
    report: dict


def select_strategy(name: str):
    tf, _ = tensorflow()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


def build_model(width: int, cfg: TrainParams):
    _, keras = tensorflow()
    inputs = keras.Input(shape=(width,), name="features")
    hidden = inputs
    for units in cfg.hidden_units:
        hidden = keras.layers.Dense(units, activation="relu")(hidden)
        if cfg.dropout:
            hidden = keras.layers.Dropout(cfg.dropout)(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(curve="PR", name="pr_auc"), keras.metrics.AUC(name="roc_auc")],
    )
    return model


def make_dataset(
    features: np.ndarray, labels: np.ndarray, global_batch: int, seed: int, shuffle: bool
):
    tf, _ = tensorflow()
    dataset = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    if shuffle:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(global_batch).prefetch(tf.data.AUTOTUNE).with_options(options)


def epoch_logger(epochs: int):
    """Concise per-epoch progress lines (Keras' own bar is noise in Airflow logs)."""
    _, keras = tensorflow()

    def log_epoch(epoch: int, logs: dict | None) -> None:
        logs = logs or {}
        log.info(
            "epoch %d/%d loss %.4f val_loss %.4f val_pr_auc %.4f",
            epoch + 1,
            epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
            logs.get("val_pr_auc", float("nan")),
        )

    return keras.callbacks.LambdaCallback(on_epoch_end=log_epoch)


def train(
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    schema: Schema,
    cfg: TrainParams,
    seed: int,
    class_weight: dict[str, float] | None = None,
) -> TrainResult:
    """Fit the model; ``class_weight`` ({"0": w, "1": w}) comes from rebalance's class_weight."""
    tf, keras = tensorflow()
    keras.utils.set_random_seed(seed)
    transform = FeatureTransform.fit(train_frame, schema)
    x_train, y_train = transform.transform(train_frame), train_frame[schema.target].to_numpy()
    x_val, y_val = transform.transform(val_frame), val_frame[schema.target].to_numpy()

    strategy = select_strategy(cfg.strategy)
    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    with strategy.scope():
        model = build_model(transform.width, cfg)
    log.info(
        "training on %d rows x %d features, %s with %d replica(s), global batch %d",
        len(x_train),
        transform.width,
        type(strategy).__name__,
        replicas,
        global_batch,
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_pr_auc",
            mode="max",
            patience=cfg.early_stopping_patience,
            restore_best_weights=True,
        ),
        epoch_logger(cfg.epochs),
    ]
    started = time.perf_counter()
    fit = model.fit(
        make_dataset(x_train, y_train, global_batch, seed, shuffle=True),
        validation_data=make_dataset(x_val, y_val, global_batch, seed, shuffle=False),
        epochs=cfg.epochs,
        callbacks=callbacks,
        class_weight={int(k): v for k, v in class_weight.items()} if class_weight else None,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    best = int(history["val_pr_auc"].idxmax())
    report = {
        "strategy": type(strategy).__name__,
        "replicas": replicas,
        "global_batch": global_batch,
        "epochs_run": len(history),
        "best_epoch": best + 1,
        "best_val_pr_auc": float(history["val_pr_auc"].iloc[best]),
        "train_seconds": round(seconds, 3),
        "samples_per_second": round(len(x_train) * len(history) / seconds, 1),
        "train_rows": len(x_train),
        "features": transform.width,
    }
    return TrainResult(model, transform, history, report)


def main() -> None:
    params = load_params()
    schema = load_schema(schema_path(params.data))
    result = train(
        read_parquet(paths.AUGMENTED_TRAIN),
        read_parquet(paths.SPLIT_VAL),
        schema,
        params.train,
        params.seed,
        class_weight=read_json(paths.REBALANCE_METRICS).get("class_weight"),
    )
    with atomic_dir(paths.MODEL_DIR) as tmp:
        result.model.save(tmp / paths.KERAS_MODEL.name)
        result.transform.save(tmp / paths.FEATURE_TRANSFORM.name)
    write_csv_atomic(result.history, paths.TRAINING_HISTORY)
    write_json_atomic(result.report, paths.TRAIN_METRICS)
    log.info(
        "trained %d epochs in %.1fs (best val PR-AUC %.4f at epoch %d)",
        result.report["epochs_run"],
        result.report["train_seconds"],
        result.report["best_val_pr_auc"],
        result.report["best_epoch"],
    )


if __name__ == "__main__":
    run_stage("train", main)
