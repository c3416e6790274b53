"""SHAP explanations of the model on its raw input rows (what the served model takes).

The explained function is the whole scorer: raw feature values -> the feature transform ->
the float model -> probability, so attributions are per raw feature (one per categorical, not
one per one-hot column). SHAP's Permutation explainer needs a numeric matrix: categoricals
travel as codes into their observed levels and are decoded back to strings before scoring,
so every masked row the explainer builds is a row the transform could meet. The background
is a small seeded sample of the training split; the explained rows a seeded sample of test
(explanations are reported, never used to choose anything).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.schema import Schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    values: np.ndarray  # (rows, features) SHAP values in probability units
    data: np.ndarray  # the explained rows, encoded (categoricals as codes)
    features: list[str]

    def table(self) -> pd.DataFrame:
        """Mean |SHAP| per feature, largest first."""
        mean_abs = np.abs(self.values).mean(axis=0)
        table = pd.DataFrame({"feature": self.features, "mean_abs_shap": mean_abs})
        return table.sort_values("mean_abs_shap", ascending=False, ignore_index=True)


class RowCodec:
    """Raw feature rows <-> a float matrix (categoricals as codes into their seen levels)."""

    def __init__(self, frames: list[pd.DataFrame], schema: Schema):
        self.numeric, self.categorical = schema.numeric, schema.categorical
        self.levels = {
            name: sorted(pd.concat([f[name] for f in frames]).astype(str).unique())
            for name in self.categorical
        }

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = [frame[self.numeric].to_numpy("float64")]
        for name, levels in self.levels.items():
            lookup = {level: i for i, level in enumerate(levels)}
            blocks.append(frame[name].astype(str).map(lookup).to_numpy("float64")[:, None])
        return np.hstack(blocks)

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        out = pd.DataFrame(matrix[:, : len(self.numeric)], columns=self.numeric)
        for i, (name, levels) in enumerate(self.levels.items()):
            codes = np.rint(matrix[:, len(self.numeric) + i]).astype(int)
            out[name] = np.asarray(levels, dtype=object)[codes]
        return out


def import_shap():
    """The ``shap`` module, its numba helpers loaded as plain Python.

    shap's ``@njit`` helpers are not declared ``cache=True``, so every process compiled them
    anew: about 5 s, a third of the tiny configuration's evaluate. For the samples evaluate
    explains (hundreds of rows against tens of background rows) they run faster interpreted
    than that compile takes, with the same values to rounding (``python -m bench.shap_jit``). The
    switch is numba's own ``DISABLE_JIT``, read when a function is decorated, so it is on only
    while shap is first imported. Imported earlier in the process, shap stays as it was.
    """
    import numba

    jit_disabled = numba.config.DISABLE_JIT
    numba.config.DISABLE_JIT = True
    try:
        import shap
    finally:
        numba.config.DISABLE_JIT = jit_disabled
    return shap


def shap_values(
    score: Callable[[pd.DataFrame], np.ndarray],
    background: pd.DataFrame,
    rows: pd.DataFrame,
    schema: Schema,
    permutations: int,
    seed: int,
) -> Explanation:
    """SHAP values of ``rows`` against ``background`` (each a small sample, already drawn)."""
    shap = import_shap()
    codec = RowCodec([background, rows], schema)
    masker = shap.maskers.Independent(codec.encode(background), max_samples=len(background))
    explainer = shap.explainers.Permutation(
        lambda matrix: score(codec.decode(matrix)), masker, seed=seed
    )
    encoded = codec.encode(rows)
    width = encoded.shape[1]
    result = explainer(encoded, max_evals=permutations * (2 * width + 1), silent=True)
    return Explanation(np.asarray(result.values), encoded, codec.features)


def explain_model(
    score: Callable[[pd.DataFrame], np.ndarray],
    train: pd.DataFrame,
    test: pd.DataFrame,
    schema: Schema,
    rows: int,
    background_rows: int,
    permutations: int,
    seed: int,
) -> Explanation:
    """Seeded samples (``background_rows`` of train, ``rows`` of test) explained."""
    background = train.sample(min(background_rows, len(train)), random_state=seed)
    explained = test.sample(min(rows, len(test)), random_state=seed)
    log.info("SHAP: %d test rows against %d training rows", len(explained), len(background))
    return shap_values(score, background, explained, schema, permutations, seed)
