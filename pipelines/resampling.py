"""How rebalance resamples rows: imbalanced-learn samplers over a neighbour space.

Neighbours are found on standardised numeric features plus one-hot categories. Synthetic
categories are decoded back to a real category (never an interpolated value), and numeric
values are mapped back to their original scale. Synthetic rows carry ``_origin =
"rebalance"``, with id-like and timestamp columns left empty.

This is not the model's ``FeatureTransform``, though both encode categories through
``features.category_codes``: SMOTE must interpolate and decode back to the training units,
so here numbers are neither clipped nor imputed, and a category's vocabulary is exactly the
strings in the rows at hand (``__unknown__`` included, as an ordinary level), while the
model's transform clips, imputes and keeps a slot for categories it has never seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import RebalanceParams
from pipelines.errors import PipelineError
from pipelines.features import category_codes
from pipelines.origin import ORIGIN_COLUMN, REBALANCE
from pipelines.schema import Schema

log = logging.getLogger(__name__)


class NeighbourSpace:
    """Numeric features standardised, categoricals one-hot, and the way back."""

    def __init__(self, frame: pd.DataFrame, schema: Schema):
        self.numeric, self.categorical = schema.numeric, schema.categorical
        values = frame[self.numeric].to_numpy("float64")
        self.mean = values.mean(axis=0)
        self.std = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
        self.levels = {name: sorted(frame[name].astype(str).unique()) for name in self.categorical}

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """``frame`` in the space; only for the rows the levels were read from (no unknowns)."""
        blocks = [(frame[self.numeric].to_numpy("float64") - self.mean) / self.std]
        for name, levels in self.levels.items():
            blocks.append(np.eye(len(levels))[category_codes(frame[name].astype(str), levels)])
        return np.hstack(blocks)

    def decode(self, matrix: np.ndarray, like: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=range(len(matrix)))
        width = len(self.numeric)
        numeric = matrix[:, :width] * self.std + self.mean
        for i, name in enumerate(self.numeric):
            out[name] = numeric[:, i]
        for name, levels in self.levels.items():
            block = matrix[:, width : width + len(levels)]
            out[name] = np.array(levels, dtype=object)[block.argmax(axis=1)]
            width += len(levels)
        return out.astype({name: like[name].dtype for name in out.columns})


# (space, sampling ratio, k, seed) -> an imbalanced-learn oversampler; () -> a cleaner.
SamplerFactory = Callable[[NeighbourSpace, float, int, int], Any]
CleanerFactory = Callable[[], Any]


def random_under(
    train: pd.DataFrame, schema: Schema, cfg: RebalanceParams, seed: int
) -> tuple[pd.DataFrame, None]:
    """Drop majority rows at random; no neighbours involved."""
    from imblearn.under_sampling import RandomUnderSampler

    sampler = RandomUnderSampler(sampling_strategy=cfg.sampling_ratio, random_state=seed)
    sampler.fit_resample(np.zeros((len(train), 1)), train[schema.target].to_numpy())
    return train.iloc[np.sort(sampler.sample_indices_)], None


@dataclass(frozen=True)
class Oversample:
    """Synthetic minority rows from ``sampler``, then (optionally) ``cleaner``'s cleaning."""

    sampler: SamplerFactory
    cleaner: CleanerFactory | None = None

    def __call__(
        self, train: pd.DataFrame, schema: Schema, cfg: RebalanceParams, seed: int
    ) -> tuple[pd.DataFrame, int]:
        """The resampled rows and the neighbour count used."""
        k = neighbours(int(train[schema.target].sum()), cfg)
        space = NeighbourSpace(train, schema)
        matrix = space.encode(train)
        sampler = self.sampler(space, cfg.sampling_ratio, k, seed)
        try:
            resampled, labels = sampler.fit_resample(matrix, train[schema.target].to_numpy())
        except (ValueError, RuntimeError) as exc:
            if "No samples will be generated" in str(exc):
                # ADASYN spreads a handful of rows by density and can round every share to zero.
                log.warning("rebalance.strategy=%s generated no rows: %s", cfg.strategy, exc)
                return train, k
            raise PipelineError(f"rebalance.strategy={cfg.strategy}: {exc}") from exc
        # imbalanced-learn's oversamplers return the original rows first, then the synthetic ones.
        new = resampled[len(train) :]
        synthetic = _synthetic_rows(space, new, labels[len(train) :], train, schema)
        combined = pd.concat([train, synthetic], ignore_index=True)
        if self.cleaner is not None:
            cleaner = self.cleaner()
            cleaner.fit_resample(np.vstack([matrix, new]), combined[schema.target].to_numpy())
            combined = combined.iloc[np.sort(cleaner.sample_indices_)]
        return combined, k


def _synthetic_rows(
    space: NeighbourSpace,
    new: np.ndarray,
    labels: np.ndarray,
    train: pd.DataFrame,
    schema: Schema,
) -> pd.DataFrame:
    """Decoded synthetic rows shaped like ``train``: its columns and dtypes, with the
    non-features (ids, timestamps, ignored columns) missing (see ``_missing_like``)."""
    synthetic = space.decode(new, train)
    synthetic[schema.target] = labels
    synthetic[ORIGIN_COLUMN] = REBALANCE
    synthetic = synthetic.astype({column: train[column].dtype for column in synthetic.columns})
    for column in train.columns.difference(synthetic.columns):
        synthetic[column] = _missing_like(train[column], synthetic.index)
    return synthetic[train.columns]


def _missing_like(column: pd.Series, index: pd.Index) -> pd.Series:
    """Missing values in ``column``'s dtype, or in its nullable counterpart where that dtype
    cannot hold one: numpy integers become pandas' ``Int64`` (and the like), numpy booleans
    ``boolean``, so that concatenating the synthetic rows keeps every original value exact (an
    integer id through float64 would lose digits beyond 2**53)."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        dtype = pd.api.types.pandas_dtype(
            f"{'UInt' if dtype.kind == 'u' else 'Int'}{dtype.itemsize * 8}"
        )
    elif isinstance(dtype, np.dtype) and dtype.kind == "b":
        dtype = pd.BooleanDtype()
    return pd.Series(index=index, dtype=dtype)


def neighbours(positives: int, cfg: RebalanceParams) -> int:
    """The k to use: ``k_neighbors``, or fewer when the minority is too small to allow it."""
    if positives < 2:
        raise PipelineError(
            f"rebalance.strategy={cfg.strategy}: {positives} positive training row(s); at least 2 are needed"
        )
    if positives > cfg.k_neighbors:
        return cfg.k_neighbors
    if cfg.small_minority == "fail":
        raise PipelineError(
            f"rebalance.k_neighbors={cfg.k_neighbors} but the training split has only {positives} positives "
            "(set rebalance.small_minority: reduce_k, or lower k_neighbors)"
        )
    log.warning(
        "rebalance.k_neighbors=%d but only %d positives: using k=%d",
        cfg.k_neighbors,
        positives,
        positives - 1,
    )
    return positives - 1


def smote(space: NeighbourSpace, ratio: float, k: int, seed: int) -> Any:
    from imblearn.over_sampling import SMOTE

    return SMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed)


def borderline_smote(space: NeighbourSpace, ratio: float, k: int, seed: int) -> Any:
    from imblearn.over_sampling import BorderlineSMOTE

    return BorderlineSMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed)


def adasyn(space: NeighbourSpace, ratio: float, k: int, seed: int) -> Any:
    from imblearn.over_sampling import ADASYN

    return ADASYN(sampling_strategy=ratio, n_neighbors=k, random_state=seed)


def smote_nc(space: NeighbourSpace, ratio: float, k: int, seed: int) -> SmoteNcOnOneHot:
    if not space.categorical or not space.numeric:
        raise PipelineError(
            "rebalance.strategy=smote_nc needs both numeric and categorical features; use smote"
        )
    return SmoteNcOnOneHot(space, ratio, k, seed)


def tomek_links() -> Any:
    from imblearn.under_sampling import TomekLinks

    return TomekLinks()


def edited_nearest_neighbours() -> Any:
    from imblearn.under_sampling import EditedNearestNeighbours

    return EditedNearestNeighbours()


class SmoteNcOnOneHot:
    """SMOTE-NC over (numeric, category codes), presented in the one-hot encoding."""

    def __init__(self, space: NeighbourSpace, ratio: float, k: int, seed: int):
        from imblearn.over_sampling import SMOTENC

        self.space = space
        width = len(space.numeric)
        self.sampler = SMOTENC(
            categorical_features=list(range(width, width + len(space.levels))),
            sampling_strategy=ratio,
            k_neighbors=k,
            random_state=seed,
        )

    def fit_resample(self, matrix: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # SMOTE-NC wants each categorical as one column: give it the one-hot block's argmax.
        width = len(self.space.numeric)
        codes, start = [], width
        for levels in self.space.levels.values():
            codes.append(matrix[:, start : start + len(levels)].argmax(axis=1))
            start += len(levels)
        compact = np.column_stack([matrix[:, :width], *codes])
        resampled, resampled_labels = self.sampler.fit_resample(compact, labels)
        blocks, column = [resampled[:, :width]], width
        for levels in self.space.levels.values():
            blocks.append(np.eye(len(levels))[resampled[:, column].astype(int)])
            column += 1
        return np.hstack(blocks), resampled_labels
