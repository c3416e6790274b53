"""Train: a Keras MLP on the transformed training split, under a tf.distribute strategy.

``train.strategy``:

* ``auto``: MirroredStrategy when two or more GPUs are visible, else the default strategy
  (a single-device MirroredStrategy only adds overhead);
* ``mirrored``: MirroredStrategy over every GPU, or over every logical CPU device when
  there is no GPU (this is how the multi-replica path is tested on CPU);
* ``multi_worker``: MultiWorkerMirroredStrategy over the workers that ``TF_CONFIG`` names
  (every worker runs this same stage with its own ``task``);
* ``default``: no distribution.

The model is built inside ``strategy.scope()`` and the global batch is
``train.batch_size x num_replicas_in_sync``. Early stopping watches validation PR-AUC and
restores the best weights; ReduceLROnPlateau watches the same metric.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import paths
from pipelines.config import TrainParams, load_params
from pipelines.errors import PipelineError
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
    chief: bool = True  # False on the non-chief workers of a multi_worker run: they write nothing


def parse_tf_config(raw: str | None) -> tuple[str, int, int]:
    """Check ``TF_CONFIG`` for ``multi_worker``; return (task type, task index, workers).

    MultiWorkerMirroredStrategy silently trains alone when TF_CONFIG is missing, which would
    look like success on every machine, so a missing or malformed one is an error here.
    """
    example = (
        'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not raw or not raw.strip():
        raise PipelineError(f"train.strategy multi_worker needs TF_CONFIG to be set; {example}")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], task["index"]
        members = cluster[task_type]
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PipelineError(
            f"TF_CONFIG is not valid ({type(exc).__name__}: {exc}); {example}"
        ) from exc
    if task_type not in ("chief", "worker") or not isinstance(index, int):
        raise PipelineError(
            f"TF_CONFIG task must be a chief or worker with an integer index; {example}"
        )
    if not 0 <= index < len(members):
        raise PipelineError(
            f"TF_CONFIG task index {index} is outside cluster.{task_type}; {example}"
        )
    return task_type, index, workers


def select_strategy(name: str):
    tf, _ = tensorflow()
    if name == "multi_worker":
        task_type, index, workers = parse_tf_config(os.environ.get("TF_CONFIG"))
        log.info("multi_worker: this is %s %d of %d worker(s)", task_type, index, workers)
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


def replica_device_types(strategy) -> set[str]:
    """Device types ("CPU", "GPU", ...) that hold this worker's replicas."""
    tf, _ = tensorflow()
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        # The default strategy has no device list; it runs where TensorFlow places ops.
        return {"GPU"} if tf.config.list_logical_devices("GPU") else {"CPU"}
    return {tf.DeviceSpec.from_string(d).device_type for d in strategy.extended.worker_devices}


def safe_steps_per_execution(
    requested: int, strategy: str, replicas: int, devices: set[str]
) -> int:
    """``requested``, or 1 where several steps per call are known to crash.

    With TF 2.21, Keras 3's multi-step loop under MirroredStrategy on two logical CPU devices
    fails ("You must feed a value for placeholder tensor" in multi_step_on_iterator). tf-keras
    2.21, which this project uses, ran 2 to 50 steps per call there without error in our
    tests, but the guard stays so that a move to Keras 3 cannot bring the crash back. What it
    gives up is small: mirroring over logical CPU devices is a test path, 3-5x slower than one
    device (bench/train_speed.py). MultiWorkerMirroredStrategy ran fine with tf-keras.
    """
    if requested > 1 and strategy == "MirroredStrategy" and replicas > 1 and "CPU" in devices:
        return 1
    return requested


def dtype_policy(setting: str, gpus: int) -> str:
    """mixed_float16 only on GPU: CPUs have no fast float16 math, so it would only lose precision."""
    return "mixed_float16" if setting == "auto" and gpus > 0 else "float32"


def build_model(
    width: int, cfg: TrainParams, policy: str = "float32", steps_per_execution: int = 1
):
    _, keras = tensorflow()
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    inputs = keras.Input(shape=(width,), name="features")
    hidden = inputs
    for units in cfg.hidden_units:
        hidden = keras.layers.Dense(
            units, activation="relu", kernel_regularizer=regularizer, dtype=policy
        )(hidden)
        if cfg.dropout:
            hidden = keras.layers.Dropout(cfg.dropout, dtype=policy)(hidden)
    # float32 output under mixed precision too: float16 keeps ~3 significant digits, so
    # probabilities near 0 or 1 would round to exactly 0 or 1 and destabilise the loss.
    outputs = keras.layers.Dense(
        1, activation="sigmoid", kernel_regularizer=regularizer, dtype="float32", name="probability"
    )(hidden)
    model = keras.Model(inputs, outputs)
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    if policy == "mixed_float16":
        # Keras only adds loss scaling itself when the global policy is mixed; ours is per layer.
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    loss = (
        keras.losses.BinaryFocalCrossentropy(gamma=cfg.focal_gamma)
        if cfg.loss == "focal"
        else keras.losses.BinaryCrossentropy()
    )
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[keras.metrics.AUC(curve="PR", name="pr_auc"), keras.metrics.AUC(name="roc_auc")],
        steps_per_execution=steps_per_execution,
    )
    return model


def float32_copy(model, width: int, cfg: TrainParams):
    """The same weights in an all-float32 model, outside any strategy.

    Mixed precision is a training speed-up only: TFLite cannot convert float16 MatMuls (the
    quantize stage fails on them), and evaluate and serving expect float32. Under
    mixed_float16 the variables are float32 already, so the copy is exact.
    """
    copy = build_model(width, cfg)
    copy.set_weights(model.get_weights())
    return copy


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
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = select_strategy(cfg.strategy)
    keras.utils.set_random_seed(seed)
    if cfg.deterministic:
        # Process-wide and one-way (TF has no public switch back); a stage is one process.
        tf.config.experimental.enable_op_determinism()
    transform = FeatureTransform.fit(train_frame, schema)
    x_train, y_train = transform.transform(train_frame), train_frame[schema.target].to_numpy()
    x_val, y_val = transform.transform(val_frame), val_frame[schema.target].to_numpy()

    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    # tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
    strategy_name = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}.get(
        type(strategy).__name__, type(strategy).__name__
    )
    devices = replica_device_types(strategy)
    steps = safe_steps_per_execution(cfg.steps_per_execution, strategy_name, replicas, devices)
    if steps != cfg.steps_per_execution:
        log.warning(
            "train.steps_per_execution %d is not safe under %s on %d CPU replicas: using 1",
            cfg.steps_per_execution,
            strategy_name,
            replicas,
        )
    policy = dtype_policy(cfg.mixed_precision, len(tf.config.list_logical_devices("GPU")))
    with strategy.scope():
        model = build_model(transform.width, cfg, policy, steps)
    log.info(
        "training on %d rows x %d features, %s with %d replica(s), global batch %d, %s, "
        "%d step(s) per execution",
        len(x_train),
        transform.width,
        strategy_name,
        replicas,
        global_batch,
        policy,
        steps,
    )
    chief = strategy.extended.should_checkpoint
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_pr_auc",
            mode="max",
            patience=cfg.early_stopping_patience,
            restore_best_weights=True,
        )
    ]
    if cfg.reduce_lr_patience:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_pr_auc",
                mode="max",
                patience=cfg.reduce_lr_patience,
                factor=cfg.reduce_lr_factor,
            )
        )
    callbacks.append(epoch_logger(cfg.epochs))

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
    if policy != "float32":
        model = float32_copy(model, transform.width, cfg)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    best = int(history["val_pr_auc"].idxmax())
    report = {
        "strategy": strategy_name,
        "replicas": replicas,
        "global_batch": global_batch,
        "dtype_policy": policy,
        "steps_per_execution": steps,
        "epochs_run": len(history),
        "best_epoch": int(history["epoch"].iloc[best]),
        "best_val_pr_auc": float(history["val_pr_auc"].iloc[best]),
        "train_seconds": round(seconds, 3),
        "samples_per_second": round(len(x_train) * len(history) / seconds, 1),
        "train_rows": len(x_train),
        "features": transform.width,
    }
    return TrainResult(model, transform, history, report, chief)


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
    if not result.chief:
        # Saving reads variables through collective ops that every worker must join, so the
        # other workers save too, to a scratch folder they drop; only the chief writes outputs.
        with tempfile.TemporaryDirectory() as scratch:
            result.model.save(Path(scratch) / paths.KERAS_MODEL.name)
        log.info("not the chief worker: the chief writes the model")
        return
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
