"""Train: fit the model (pipelines.model) on the transformed training split, resumably.

The strategy comes from ``train.strategy`` (pipelines.distribution), the model is built inside
``strategy.scope()`` and the global batch is ``train.batch_size x num_replicas_in_sync``
(pipelines.batches feeds it). Early stopping watches validation PR-AUC and restores the best
weights; ReduceLROnPlateau watches the same metric. The learning rate, widths, dropout and
batch size come from the tune stage's ``TunedConfig`` (params.yaml's values unless tuning chose
others).

Training is resumable: ``BackupAndRestore`` checkpoints every epoch under
``data/models/train_backup`` (not a DVC output), so a killed run started again resumes after
the last finished epoch, and pipelines.resume saves what the checkpoint lacks (early stopping's
best weights and counters, the LR schedule, the history), so the resumed run ends with the
model an uninterrupted one ends with. The backup is deleted when training succeeds, and
discarded when it was made with other params or data. TensorBoard logs go to
``data/models/tensorboard``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import faults, paths
from pipelines.batches import evaluation_dataset, fits_in_cache, steps_per_epoch, training_stream
from pipelines.config import TrainParams, load_params
from pipelines.contracts import ClassWeights, TunedConfig
from pipelines.distribution import (
    replica_device_types,
    safe_steps_per_execution,
    select_strategy,
    strategy_name,
)
from pipelines.features import FeatureTransform
from pipelines.io import atomic_dir, read_parquet, write_csv_atomic
from pipelines.model import build_model, dtype_policy, embedding_dim, float32_copy
from pipelines.reports import stage_headline, write_results
from pipelines.resume import EpochState, first_epoch
from pipelines.schema import Schema, load_enforced_schema
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


@dataclass(frozen=True)
class Placement:
    """How one training runs on its strategy: replicas, batch, steps per call, dtype policy."""

    strategy: str
    replicas: int
    global_batch: int
    steps_per_execution: int
    policy: str


def placement(strategy, cfg: TrainParams) -> Placement:
    """The global batch, a safe steps-per-execution and the dtype policy under ``strategy``."""
    tf, _ = tensorflow()
    name = strategy_name(strategy)
    replicas = strategy.num_replicas_in_sync
    steps = safe_steps_per_execution(cfg.steps_per_execution, replicas)
    if steps != cfg.steps_per_execution:
        log.warning(
            "train.steps_per_execution %d is not safe under %s on %d %s replicas: using 1",
            cfg.steps_per_execution,
            name,
            replicas,
            "/".join(sorted(replica_device_types(strategy))),
        )
    policy = dtype_policy(cfg.mixed_precision, len(tf.config.list_logical_devices("GPU")))
    return Placement(name, replicas, cfg.batch_size * replicas, steps, policy)


def fingerprint(cfg: TrainParams, seed: int, class_weight: dict | None, *arrays: np.ndarray) -> str:
    """Identifies one training: a backup made under another fingerprint must not be resumed."""
    # JSON writes integer labels as "0"/"1": {0: w} and {"0": w} give the same fingerprint.
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
        faults.point(f"train:epoch={epoch + 1}")  # the crash tests' kill, once the backup is saved

    return keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin, on_epoch_end=log_epoch)


def log_start(run: Placement, rows: int, width: int, nbytes: int, cache: bool) -> None:
    """One line on what is about to train, and how."""
    log.info(
        "training on %d rows x %d features, %s with %d replica(s), global batch %d, %s, "
        "%d step(s) per execution, input %.1f MB, validation batches %s",
        rows,
        width,
        run.strategy,
        run.replicas,
        run.global_batch,
        run.policy,
        run.steps_per_execution,
        nbytes / 2**20,
        "cached" if cache else "not cached",
    )


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic``, make TF ops deterministic too."""
    tf, keras = tensorflow()
    keras.utils.set_random_seed(seed)
    # Dropout then draws from a tf.random.Generator, which pipelines.resume reseeds per epoch:
    # a resumed training gets the masks an uninterrupted one gets (a stateful op restarts).
    keras.backend.experimental.enable_tf_random_generator()
    if deterministic:
        # Process-wide and one-way (TF has no public switch back); a stage is one process.
        tf.config.experimental.enable_op_determinism()


def callbacks(
    cfg: TrainParams,
    backup_dir: Path | None,
    tensorboard_dir: Path | None,
    fresh_logs: bool,
    start: int = 0,
    chief: bool = True,
    seed: int = 0,
) -> tuple[list, EpochState]:
    """Early stopping, the LR schedule, their saved state, the backup, TensorBoard and the
    epoch log, in that order; and the state keeper (it holds the history).

    ``fresh_logs`` clears ``tensorboard_dir`` first: a fresh training starts fresh curves, a
    resumed one adds to them. ``start`` is the epoch a resumed training starts at.
    """
    _, keras = tensorflow()
    watch = {"monitor": "val_pr_auc", "mode": "max"}
    stopper = keras.callbacks.EarlyStopping(
        **watch, patience=cfg.early_stopping_patience, restore_best_weights=True
    )
    reduce_lr = None
    if cfg.reduce_lr_patience:
        reduce_lr = keras.callbacks.ReduceLROnPlateau(
            **watch, patience=cfg.reduce_lr_patience, factor=cfg.reduce_lr_factor
        )
    # Restores after the two reset themselves at train begin, saves before the backup does.
    state = EpochState(backup_dir, stopper, reduce_lr, start, seed, writes=chief)
    chosen = [c for c in (stopper, reduce_lr, state.callback()) if c is not None]
    if backup_dir is not None:
        # Before the epoch logger: when "epoch N" is logged, epoch N's backup is on disk.
        chosen.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    if tensorboard_dir is not None:
        if fresh_logs:
            shutil.rmtree(tensorboard_dir, ignore_errors=True)
        chosen.append(
            keras.callbacks.TensorBoard(str(tensorboard_dir), profile_batch=cfg.profile_batch)
        )
    chosen.append(epoch_logger(cfg.epochs))
    return chosen, state


def train_report(
    run: Placement,
    history: pd.DataFrame,
    seconds: float,
    rows: int,
    transform: FeatureTransform,
    cfg: TrainParams,
    start: int = 0,
) -> dict:
    """train.json: how the training ran, how long it took and its best validation epoch.

    ``history`` holds every epoch, those before a resume at 0-based epoch ``start`` too."""
    best = int(history["val_pr_auc"].idxmax())
    return {
        "strategy": run.strategy,
        "replicas": run.replicas,
        "global_batch": run.global_batch,
        "dtype_policy": run.policy,
        "steps_per_execution": run.steps_per_execution,
        "first_epoch": start + 1,
        "epochs_run": len(history),
        "best_epoch": int(history["epoch"].iloc[best]),
        "best_val_pr_auc": float(history["val_pr_auc"].iloc[best]),
        "train_seconds": round(seconds, 3),
        "samples_per_second": round(rows * (len(history) - start) / seconds, 1),
        "train_rows": rows,
        "features": transform.width,
        "categorical_encoding": transform.encoding,
        "embedding_dims": {
            name: embedding_dim(count, cfg.embedding_dim)
            for name, count in zip(transform.categorical, transform.levels, strict=True)
            if transform.encoding == "embedding"
        },
    }


def train(
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    schema: Schema,
    cfg: TrainParams,
    seed: int,
    class_weight: dict[int, float] | None = None,
    backup_dir: Path | None = None,
    tensorboard_dir: Path | None = None,
) -> TrainResult:
    """Fit the model; ``class_weight`` ({0: w, 1: w}) is rebalance's ``ClassWeights.for_keras()``.

    Writes nothing but the per-epoch backup under ``backup_dir`` and the TensorBoard logs under
    ``tensorboard_dir``, each only when given.
    """
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = select_strategy(cfg.strategy)
    seed_everything(seed, cfg.deterministic)
    transform = FeatureTransform.fit(train_frame, schema, cfg.categorical_encoding)
    levels = transform.levels if transform.encoding == "embedding" else []
    x_train, y_train = transform.transform(train_frame), train_frame[schema.target].to_numpy()
    x_val, y_val = transform.transform(val_frame), val_frame[schema.target].to_numpy()

    run = placement(strategy, cfg)
    with strategy.scope():
        model = build_model(transform.width, cfg, run.policy, run.steps_per_execution, levels)
    cache = fits_in_cache(x_val.nbytes + y_val.nbytes, cfg.cache_max_mb)
    nbytes = sum(a.nbytes for a in (x_train, y_train, x_val, y_val))
    log_start(run, len(x_train), transform.width, nbytes, cache)
    chief = strategy.extended.should_checkpoint
    resuming = False
    if backup_dir is not None and chief:
        stamp = fingerprint(cfg, seed, class_weight, x_train, y_train, x_val, y_val)
        resuming = claim_backup(Path(backup_dir), stamp)
    start = first_epoch(Path(backup_dir), discard=chief) if backup_dir is not None else 0
    fit_callbacks, state = callbacks(
        cfg, backup_dir, tensorboard_dir, chief and not resuming, start, chief, seed
    )

    started = time.perf_counter()
    model.fit(
        training_stream(x_train, y_train, run.global_batch, seed, first_epoch=start),
        steps_per_epoch=steps_per_epoch(len(x_train), run.global_batch),
        validation_data=evaluation_dataset(x_val, y_val, run.global_batch, cache),
        epochs=cfg.epochs,
        callbacks=fit_callbacks,
        class_weight=class_weight,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    if run.policy != "float32":
        model = float32_copy(model, transform.width, cfg, levels)
    history = state.history()
    report = train_report(run, history, seconds, len(x_train), transform, cfg, start)
    return TrainResult(model, transform, history, report, chief)


def main() -> None:
    params = load_params()
    schema = load_enforced_schema()
    result = train(
        read_parquet(paths.AUGMENTED_TRAIN),
        read_parquet(paths.SPLIT_VAL),
        schema,
        TunedConfig.load().train_params(params.train),
        params.seed,
        class_weight=ClassWeights.load().for_keras(),
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
    metrics = stage_headline("train", val_pr_auc=result.report["best_val_pr_auc"])
    write_results(result.report, paths.TRAIN_REPORT, metrics, paths.TRAIN_METRICS)
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
