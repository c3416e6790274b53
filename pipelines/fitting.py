"""A plain, single-device fit of the pipeline's model: what tuning trials and CV folds train.

The train stage adds what a production training needs (distribution strategies, mixed
precision, resumable backups, TensorBoard); a trial or a fold needs none of these, only the
same feature transform, model builder, batches and early stopping, so its score says how the
stage's model would do with that configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.batches import evaluation_dataset, steps_per_epoch, training_stream
from pipelines.config import TrainParams
from pipelines.features import FeatureTransform
from pipelines.model import build_model
from pipelines.schema import Schema
from pipelines.tf_runtime import tensorflow


@dataclass
class Fitted:
    model: object
    transform: FeatureTransform
    epochs_run: int

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        features = self.transform.transform(frame)
        return self.model.predict(features, batch_size=1024, verbose=0)[:, 0]  # type: ignore[attr-defined]


def fit_model(
    train_frame: pd.DataFrame,
    schema: Schema,
    cfg: TrainParams,
    seed: int,
    val_frame: pd.DataFrame | None = None,
    class_weight: dict[int, float] | None = None,
    callbacks: Sequence = (),
) -> Fitted:
    """Fit on ``train_frame``; with ``val_frame``, stop early on its PR-AUC (best weights kept),
    without it, run all ``cfg.epochs``."""
    _, keras = tensorflow()
    keras.utils.set_random_seed(seed)
    transform = FeatureTransform.fit(train_frame, schema, cfg.categorical_encoding)
    levels = transform.levels if transform.encoding == "embedding" else []
    x_train = transform.transform(train_frame)
    y_train = train_frame[schema.target].to_numpy()
    model = build_model(transform.width, cfg, levels=levels)
    fit_callbacks = list(callbacks)
    validation = None
    if val_frame is not None:
        x_val, y_val = transform.transform(val_frame), val_frame[schema.target].to_numpy()
        validation = evaluation_dataset(x_val, y_val, cfg.batch_size, cache=True)
        fit_callbacks.insert(
            0,
            keras.callbacks.EarlyStopping(
                monitor="val_pr_auc",
                mode="max",
                patience=cfg.early_stopping_patience,
                restore_best_weights=True,
            ),
        )
    fit = model.fit(
        training_stream(x_train, y_train, cfg.batch_size, seed),
        steps_per_epoch=steps_per_epoch(len(x_train), cfg.batch_size),
        validation_data=validation,
        epochs=cfg.epochs,
        callbacks=fit_callbacks,
        class_weight=class_weight,
        verbose=0,
    )
    return Fitted(model, transform, len(fit.epoch))
