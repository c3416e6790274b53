"""Train: a Keras MLP on the transformed training split, under a tf.distribute strategy.

Categorical features enter the MLP one-hot encoded, or (``train.categorical_encoding:
embedding``) as integer codes that the model looks up in one learned Embedding per feature,
``train.embedding_dim`` wide (``auto``: fastai's min(16, round(1.6 x levels^0.56))).

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

Training is resumable: ``BackupAndRestore`` checkpoints every epoch under
``data/models/train_backup`` (not a DVC output), so a killed run started again resumes after
the last finished epoch. The backup is deleted when training succeeds, and discarded when it
was made with other params or data. TensorBoard logs go to ``data/models/tensorboard``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
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


def safe_steps_per_execution(requested: int, replicas: int) -> int:
    """``requested`` on one replica; 1 across several, where several steps per call crash.

    With TF 2.21, Keras 3's multi-step loop under MirroredStrategy on two logical CPU devices
    fails ("You must feed a value for placeholder tensor" in multi_step_on_iterator). tf-keras
    2.21, which this project uses, ran 2 to 50 steps per call there without error, but under
    MultiWorkerMirroredStrategy with the embedding model it fails: inside the multi-step loop
    the embeddings' sparse gradients are all-gathered, and when the workers' batches differ in
    size (the last one of an epoch) the collective aborts on a shape mismatch ([32,3] against
    [64,3]). Several replicas on GPUs could not be tested here, so the guard covers every
    multi-replica run. On one replica, several steps per call give the same weights as one
    (bench/train_speed.py: 1.2x to 1.5x the samples/s on this CPU).
    """
    if requested > 1 and replicas > 1:
        return 1
    return requested


def dtype_policy(setting: str, gpus: int) -> str:
    """mixed_float16 only on GPU: CPUs have no fast float16 math, so it would only lose precision."""
    return "mixed_float16" if setting == "auto" and gpus > 0 else "float32"


def embedding_dim(levels: int, setting: str | int = "auto") -> int:
    """Embedding width for a feature with ``levels`` codes (unknown slot included).

    ``auto`` is fastai's rule of thumb, min(16, round(1.6 x levels^0.56)): 2 levels -> 2,
    4 -> 3, 10 -> 6, 100 -> 21 capped at 16.
    """
    if setting == "auto":
        return min(16, round(1.6 * levels**0.56))
    return int(setting)


def build_model(
    width: int,
    cfg: TrainParams,
    policy: str = "float32",
    steps_per_execution: int = 1,
    levels: Sequence[int] = (),
):
    """The MLP over one float32 input ``features`` of ``width`` columns.

    With ``levels`` (the transform's ``embedding`` encoding), the last ``len(levels)``
    columns hold integer codes: each is cut out, looked up in its own
    ``Embedding(levels[i], dim)`` and flattened. The first Dense layer then takes the numeric
    columns and the embeddings through two kernels whose outputs are added (the same function
    as one Dense over their concatenation): a concatenation of the numeric input columns with
    the embeddings would force full-integer int8 to give them one scale, which also becomes the
    input's, set by the standardised numbers, so higher codes were clipped to a lower one.
    Only stock tf-keras layers (Reshape, Cropping1D, Rescaling, Embedding, Flatten,
    Concatenate, Add, Activation), so the saved model loads in safe mode without custom
    objects, and the TFLite converters see plain slices and gathers.
    """
    _, keras = tensorflow()
    regularizer = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    inputs = keras.Input(shape=(width,), name="features")
    parts = [inputs]
    if levels:
        parts = _embedded(keras, inputs, width, list(levels), cfg.embedding_dim, policy)

    for units in cfg.hidden_units:
        hidden = _dense(keras, parts, units, "relu", regularizer, policy, None)
        if cfg.dropout:
            hidden = keras.layers.Dropout(cfg.dropout, dtype=policy)(hidden)
        parts = [hidden]
    # float32 output under mixed precision too: float16 keeps ~3 significant digits, so
    # probabilities near 0 or 1 would round to exactly 0 or 1 and destabilise the loss.
    outputs = _dense(keras, parts, 1, "sigmoid", regularizer, "float32", "probability")
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


def _dense(keras, parts: list, units: int, activation: str, regularizer, dtype: str, name):
    """A Dense layer over ``parts`` (one tensor, or [numeric, embedded]): one kernel per
    part, their outputs added, then one bias and the activation."""
    if len(parts) == 1:
        return keras.layers.Dense(
            units, activation=activation, kernel_regularizer=regularizer, dtype=dtype, name=name
        )(parts[0])
    prefix = name or "dense_in"
    kernels = [
        keras.layers.Dense(
            units,
            use_bias=part_name == "numeric",
            kernel_regularizer=regularizer,
            dtype=dtype,
            name=f"{prefix}_{part_name}",
        )(part)
        for part, part_name in zip(parts, ("numeric", "embedded"), strict=True)
    ]
    summed = keras.layers.Add(dtype=dtype, name=f"{prefix}_sum")(kernels)
    return keras.layers.Activation(activation, dtype=dtype, name=name)(summed)


def _embedded(keras, inputs, width: int, levels: list[int], dim_setting, policy: str) -> list:
    """[the numeric columns, the code columns' embeddings concatenated], or the one present."""
    numeric = width - len(levels)
    if numeric < 0:
        raise PipelineError(f"{len(levels)} code columns do not fit in {width} input columns")
    columns = keras.layers.Reshape((width, 1), name="columns")(inputs)
    parts, embedded = [], []
    if numeric:
        block = keras.layers.Cropping1D((0, len(levels)), name="numeric_columns")(columns)
        parts.append(keras.layers.Flatten(name="numeric")(block))
    for i, count in enumerate(levels):
        at = numeric + i
        code = keras.layers.Cropping1D((at, width - at - 1), name=f"code_column_{i}")(columns)
        code = keras.layers.Reshape((1,), name=f"code_{i}")(code)
        # Embedding casts its float input to int32 by truncation: +0.5 makes that rounding,
        # so a code that int8 quantization of the input moved by less than 0.5 stays itself.
        code = keras.layers.Rescaling(1.0, offset=0.5, name=f"code_{i}_rounded")(code)
        vectors = keras.layers.Embedding(
            count, embedding_dim(count, dim_setting), dtype=policy, name=f"embedding_{i}"
        )(code)
        embedded.append(keras.layers.Flatten(name=f"embedded_{i}")(vectors))
    if len(embedded) > 1:
        embedded = [keras.layers.Concatenate(name="embedded_features", dtype=policy)(embedded)]
    return parts + embedded


def float32_copy(model, width: int, cfg: TrainParams, levels: Sequence[int] = ()):
    """The same weights in an all-float32 model, outside any strategy.

    Mixed precision is a training speed-up only: TFLite cannot convert float16 MatMuls (the
    quantize stage fails on them), and evaluate and serving expect float32. Under
    mixed_float16 the variables are float32 already, so the copy is exact.
    """
    copy = build_model(width, cfg, levels=levels)
    copy.set_weights(model.get_weights())
    return copy


def fits_in_cache(nbytes: int, cache_max_mb: int) -> bool:
    """Whether the validation arrays fit the cache budget: the cache is a second copy of them."""
    return nbytes <= cache_max_mb * 2**20


def steps_per_epoch(rows: int, global_batch: int) -> int:
    """Batches in one pass over ``rows`` rows, the last one partial."""
    return -(-rows // global_batch)


def training_stream(features: np.ndarray, labels: np.ndarray, global_batch: int, seed: int):
    """Endless training batches; each run of ``steps_per_epoch`` of them is one epoch.

    Every epoch is one seeded permutation of all rows (each row once, a fresh order each
    epoch, the same orders for the same seed). The epoch's rows are gathered in that order
    with one op, and its batches are then plain slices of the result. fit() is given
    ``steps_per_epoch`` and keeps one iterator for the whole training, so the prefetch has
    the next epoch's first batches ready while validation runs. A finite dataset makes Keras
    start a new iterator every epoch, and with tf.data's element-wise
    ``shuffle(len(features))`` each start refilled the buffer row by row before the first
    batch could come out; gathering each batch with its own op costs the train step more
    than slicing one gathered epoch (bench/train_speed.py).
    """
    tf, _ = tensorflow()
    rows = len(features)
    full = rows // global_batch
    cut = full * global_batch
    features, labels = tf.constant(features), tf.constant(labels.astype("float32"))

    def permutation(draw):
        key = tf.stack([draw, tf.constant(seed, tf.int64)])
        return tf.random.experimental.stateless_shuffle(tf.range(rows, dtype=tf.int64), key)

    def batches_of(order):
        shuffled_features, shuffled_labels = tf.gather(features, order), tf.gather(labels, order)
        batches = tf.data.Dataset.from_tensor_slices(
            (
                tf.reshape(shuffled_features[:cut], (full, global_batch, -1)),
                tf.reshape(shuffled_labels[:cut], (full, global_batch)),
            )
        )
        if rows % global_batch:
            rest = (shuffled_features[cut:], shuffled_labels[cut:])
            batches = batches.concatenate(tf.data.Dataset.from_tensors(rest))
        return batches

    dataset = (
        tf.data.Dataset.random(seed=seed)  # one draw per epoch, the same draws for the same seed
        .map(permutation)
        .flat_map(batches_of)
    )
    return _prefetched(tf, dataset)


def evaluation_dataset(features: np.ndarray, labels: np.ndarray, global_batch: int, cache: bool):
    """Batches in row order; ``cache`` keeps them after the first pass instead of re-slicing."""
    tf, _ = tensorflow()
    dataset = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    dataset = dataset.batch(global_batch)
    return _prefetched(tf, dataset.cache() if cache else dataset)


def _prefetched(tf, dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def fingerprint(cfg: TrainParams, seed: int, class_weight: dict | None, *arrays: np.ndarray) -> str:
    """Identifies one training: a backup made under another fingerprint must not be resumed."""
    digest = hashlib.sha256(
        json.dumps([cfg.model_dump(), seed, class_weight], sort_keys=True).encode()
    )
    for array in arrays:
        digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


def claim_backup(backup_dir: Path, stamp: str) -> bool:
    """Keep ``backup_dir`` only if it belongs to this training; return whether one is there."""
    mark = backup_dir / "fingerprint"
    if backup_dir.exists() and (not mark.exists() or mark.read_text() != stamp):
        log.warning("discarding %s: it was made with other params or data", backup_dir)
        shutil.rmtree(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    mark.write_text(stamp)
    return (backup_dir / "chief" / "checkpoint").exists()


def epoch_logger(epochs: int):
    """Concise per-epoch progress lines (Keras' own bar is noise in Airflow logs)."""
    _, keras = tensorflow()
    first: list[int] = []

    def on_epoch_begin(epoch: int, logs: dict | None) -> None:
        if not first:
            first.append(epoch)
            if epoch:
                log.info("resuming from the backup at epoch %d/%d", epoch + 1, epochs)

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

    return keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin, on_epoch_end=log_epoch)


def train(
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    schema: Schema,
    cfg: TrainParams,
    seed: int,
    class_weight: dict[str, float] | None = None,
    backup_dir: Path | None = None,
    tensorboard_dir: Path | None = None,
) -> TrainResult:
    """Fit the model; ``class_weight`` ({"0": w, "1": w}) comes from rebalance's class_weight.

    Writes nothing but the per-epoch backup under ``backup_dir`` and the TensorBoard logs under
    ``tensorboard_dir``, each only when given.
    """
    tf, keras = tensorflow()
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = select_strategy(cfg.strategy)
    keras.utils.set_random_seed(seed)
    if cfg.deterministic:
        # Process-wide and one-way (TF has no public switch back); a stage is one process.
        tf.config.experimental.enable_op_determinism()
    transform = FeatureTransform.fit(train_frame, schema, cfg.categorical_encoding)
    levels = transform.levels if transform.encoding == "embedding" else []
    x_train, y_train = transform.transform(train_frame), train_frame[schema.target].to_numpy()
    x_val, y_val = transform.transform(val_frame), val_frame[schema.target].to_numpy()

    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    # tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
    strategy_name = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}.get(
        type(strategy).__name__, type(strategy).__name__
    )
    devices = replica_device_types(strategy)
    steps = safe_steps_per_execution(cfg.steps_per_execution, replicas)
    if steps != cfg.steps_per_execution:
        log.warning(
            "train.steps_per_execution %d is not safe under %s on %d %s replicas: using 1",
            cfg.steps_per_execution,
            strategy_name,
            replicas,
            "/".join(sorted(devices)),
        )
    policy = dtype_policy(cfg.mixed_precision, len(tf.config.list_logical_devices("GPU")))
    with strategy.scope():
        model = build_model(transform.width, cfg, policy, steps, levels)
    nbytes = sum(a.nbytes for a in (x_train, y_train, x_val, y_val))
    cache = fits_in_cache(x_val.nbytes + y_val.nbytes, cfg.cache_max_mb)
    log.info(
        "training on %d rows x %d features, %s with %d replica(s), global batch %d, %s, "
        "%d step(s) per execution, input %.1f MB, validation batches %s",
        len(x_train),
        transform.width,
        strategy_name,
        replicas,
        global_batch,
        policy,
        steps,
        nbytes / 2**20,
        "cached" if cache else "not cached",
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
    resuming = False
    if backup_dir is not None:
        if chief:
            stamp = fingerprint(cfg, seed, class_weight, x_train, y_train, x_val, y_val)
            resuming = claim_backup(Path(backup_dir), stamp)
        # Before the epoch logger: when "epoch N" is logged, epoch N's backup is on disk.
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    if tensorboard_dir is not None:
        if chief and not resuming:  # a fresh training starts fresh curves; a resumed one adds
            shutil.rmtree(tensorboard_dir, ignore_errors=True)
        callbacks.append(
            keras.callbacks.TensorBoard(str(tensorboard_dir), profile_batch=cfg.profile_batch)
        )
    callbacks.append(epoch_logger(cfg.epochs))

    started = time.perf_counter()
    fit = model.fit(
        training_stream(x_train, y_train, global_batch, seed),
        steps_per_epoch=steps_per_epoch(len(x_train), global_batch),
        validation_data=evaluation_dataset(x_val, y_val, global_batch, cache),
        epochs=cfg.epochs,
        callbacks=callbacks,
        class_weight={int(k): v for k, v in class_weight.items()} if class_weight else None,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    if policy != "float32":
        model = float32_copy(model, transform.width, cfg, levels)
    history = pd.DataFrame(fit.history)
    # After a resume, history, early stopping and the LR schedule cover only the epochs this
    # process ran (the callbacks' counters are not in the backup), so the best weights and
    # best_epoch are the best since the resume. fit.epoch numbers those epochs.
    history.insert(0, "epoch", np.asarray(fit.epoch) + 1)
    best = int(history["val_pr_auc"].idxmax())
    report = {
        "strategy": strategy_name,
        "replicas": replicas,
        "global_batch": global_batch,
        "dtype_policy": policy,
        "steps_per_execution": steps,
        "first_epoch": int(history["epoch"].iloc[0]),
        "epochs_run": len(history),
        "best_epoch": int(history["epoch"].iloc[best]),
        "best_val_pr_auc": float(history["val_pr_auc"].iloc[best]),
        "train_seconds": round(seconds, 3),
        "samples_per_second": round(len(x_train) * len(history) / seconds, 1),
        "train_rows": len(x_train),
        "features": transform.width,
        "categorical_encoding": transform.encoding,
        "embedding_dims": {
            name: embedding_dim(count, cfg.embedding_dim)
            for name, count in zip(transform.categorical, transform.levels, strict=True)
            if levels
        },
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
        backup_dir=paths.TRAIN_BACKUP,
        tensorboard_dir=paths.TENSORBOARD,
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
    # BackupAndRestore removed its checkpoints when fit ended; what is left is our fingerprint.
    shutil.rmtree(paths.TRAIN_BACKUP, ignore_errors=True)
    log.info(
        "trained %d epochs in %.1fs (best val PR-AUC %.4f at epoch %d)",
        result.report["epochs_run"],
        result.report["train_seconds"],
        result.report["best_val_pr_auc"],
        result.report["best_epoch"],
    )


if __name__ == "__main__":
    run_stage("train", main)
