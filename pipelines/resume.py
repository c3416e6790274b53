"""What a resumed training needs beyond Keras' ``BackupAndRestore``, so that it reaches the
model an uninterrupted one reaches.

``BackupAndRestore`` checkpoints the weights, the optimizer and the epoch. Early stopping's
best weights, best value and wait counter, ReduceLROnPlateau's counters and the learning rate,
and the history of the epochs before the kill live in the callbacks and are lost with the
process. ``EpochState`` writes them beside the backup at the end of every epoch (before the
backup's own save, keeping the last two epochs, so that whichever of the two saves a kill
interrupts, the state of the backup's epoch is on disk) and puts them back when fit resumes.
The shuffle order and dropout masks are the other half: the stream skips the epochs already
run (pipelines.batches), and the dropout layers' generators (train.seed_everything) are reseeded
from the seed and the epoch at each epoch's start, since their state is not in the checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.tf_runtime import tensorflow

log = logging.getLogger(__name__)

STATE = "state"
KEPT = 2


def backup_epoch(backup_dir: Path) -> int | None:
    """The last epoch (0-based) ``BackupAndRestore`` saved under ``backup_dir``, if any."""
    tf, _ = tensorflow()
    checkpoint = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    if checkpoint is None:
        return None
    reader = tf.train.load_checkpoint(checkpoint)
    for name in reader.get_variable_to_shape_map():
        if "ckpt_saved_epoch" in name:
            return int(reader.get_tensor(name))
    return None


def first_epoch(backup_dir: Path, discard: bool = True) -> int:
    """The epoch (0-based) a training under ``backup_dir`` starts at: after the backup's epoch
    when the state of that epoch was saved too; otherwise 0, and with ``discard`` (the chief's
    call) a backup without it is deleted."""
    if (epoch := backup_epoch(backup_dir)) is None or epoch < 0:
        return 0
    if (backup_dir / STATE / f"epoch-{epoch}.json").exists():
        return epoch + 1
    if not discard:
        return 0
    log.warning("discarding %s: the callbacks' state of epoch %d is missing", backup_dir, epoch + 1)
    for child in backup_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    return 0


class EpochState:
    """Saves and restores the callbacks' state around ``BackupAndRestore``; keeps the history."""

    def __init__(
        self,
        backup_dir: Path | None,
        early_stopping,
        reduce_lr,
        start: int,
        seed: int,
        writes: bool = True,
    ):
        self.dir = Path(backup_dir) / STATE if backup_dir is not None else None
        self.early_stopping, self.reduce_lr, self.start = early_stopping, reduce_lr, start
        self.writes = writes  # the chief's; the other workers of a multi-worker run only read
        self.seed = seed
        self.rows: list[dict[str, Any]] = []

    def callback(self):
        _, keras = tensorflow()
        return keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs: self.restore(),
            on_epoch_begin=self.reseed,
            on_epoch_end=self.save,
        )

    def reseed(self, epoch: int, logs: dict | None) -> None:
        """Dropout masks from (seed, epoch, layer): the same in a resumed and a whole run."""
        layers = self.early_stopping.model.layers
        for index, layer in enumerate(layers):
            generator = getattr(getattr(layer, "_random_generator", None), "_generator", None)
            if generator is not None:
                generator.reset_from_seed([self.seed, epoch, index])

    def history(self) -> pd.DataFrame:
        """Every epoch's metrics, those before a resume included, with a 1-based ``epoch``."""
        return pd.DataFrame(self.rows)

    def save(self, epoch: int, logs: dict | None) -> None:
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        if self.dir is None or not self.writes:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        _, keras = tensorflow()  # get_value reads a distributed variable too
        stopper = self.early_stopping
        state = {
            "epoch": epoch,
            "rows": self.rows,
            "lr": float(keras.backend.get_value(stopper.model.optimizer.learning_rate)),
            "early_stopping": _fields(stopper, "wait", "best", "best_epoch", "stopped_epoch"),
            "reduce_lr": _fields(self.reduce_lr, "wait", "best", "cooldown_counter"),
        }
        if stopper.best_weights is not None:
            weights = self.dir / f"best-{epoch}.npz"
            np.savez(str(weights) + ".tmp.npz", *stopper.best_weights)
            os.replace(str(weights) + ".tmp.npz", weights)
        tmp = self.dir / f".epoch-{epoch}.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / f"epoch-{epoch}.json")
        for old in range(epoch - KEPT, -1, -1):
            for stale in (self.dir / f"epoch-{old}.json", self.dir / f"best-{old}.npz"):
                stale.unlink(missing_ok=True)

    def restore(self) -> None:
        """Run after the callbacks' own on_train_begin (which resets them) and before fit's
        first resumed epoch."""
        if not self.start or self.dir is None:
            return
        epoch = self.start - 1
        state = json.loads((self.dir / f"epoch-{epoch}.json").read_text())
        self.rows = state["rows"]
        _, keras = tensorflow()
        stopper = self.early_stopping
        for name, value in state["early_stopping"].items():
            setattr(stopper, name, value)
        if self.reduce_lr is not None:
            for name, value in state["reduce_lr"].items():
                setattr(self.reduce_lr, name, value)
        keras.backend.set_value(stopper.model.optimizer.learning_rate, state["lr"])
        weights = self.dir / f"best-{epoch}.npz"
        if weights.exists():
            with np.load(weights) as saved:
                stopper.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        log.info("restored early stopping, the LR schedule and %d epoch(s) of history", epoch + 1)


def _fields(callback, *names: str) -> dict[str, Any]:
    if callback is None:
        return {}
    return {name: _plain(getattr(callback, name)) for name in names}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
