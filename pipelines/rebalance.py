"""Rebalance: handle class imbalance on the training split only.

Only the training split is ever read here, so no validation or test row can leak into the
synthetic neighbours. Strategies (``rebalance.strategy``):

* ``none``; ``class_weight``: no resampling, class weights handed to training;
* oversamplers ``smote``, ``borderline_smote``, ``adasyn``, and ``smote_nc`` (SMOTE-NC, for
  mixed numeric and categorical features);
* ``random_under``: drop majority rows;
* ``smote_tomek``, ``smote_enn``: SMOTE, then Tomek-link or ENN cleaning.

Neighbours are found on standardised numeric features plus one-hot categories; synthetic
categories are decoded back to a real category (never an interpolated value), and numeric
values are mapped back to their original scale. Synthetic rows carry ``_origin =
"rebalance"``, with id-like and timestamp columns left empty.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from pipelines import paths
from pipelines.config import RebalanceParams, load_params
from pipelines.errors import PipelineError
from pipelines.io import read_parquet, write_parquet_atomic
from pipelines.reports import headline, write_results
from pipelines.schema import Schema, load_schema, schema_path
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

ORIGIN_COLUMN = "_origin"
OVERSAMPLERS = {"smote", "smote_nc", "borderline_smote", "adasyn", "smote_tomek", "smote_enn"}


def class_counts(frame: pd.DataFrame, target: str) -> dict[str, int]:
    positives = int(frame[target].sum())
    return {"negative": len(frame) - positives, "positive": positives}


def class_weights(counts: dict[str, int], ratio: float) -> dict[str, float]:
    """Weights giving positives ``ratio`` times the total weight of negatives, mean weight 1."""
    n_neg, n_pos = counts["negative"], counts["positive"]
    w_pos = max(1.0, ratio * n_neg / n_pos)
    scale = (n_neg + n_pos) / (n_neg + w_pos * n_pos)
    return {"0": scale, "1": w_pos * scale}


def rebalance(
    train: pd.DataFrame, schema: Schema, cfg: RebalanceParams, seed: int
) -> tuple[pd.DataFrame, dict]:
    """Return the rebalanced training split and a report of what changed."""
    target = schema.target
    train = train.copy()
    if ORIGIN_COLUMN not in train.columns:
        train[ORIGIN_COLUMN] = "original"
    before = class_counts(train, target)
    report = {
        "strategy": cfg.strategy,
        "before": before,
        "after": before,
        "k_neighbors_used": None,
        "rows_synthetic": 0,
        "rows_removed": 0,
    }
    if cfg.strategy == "class_weight":
        report["class_weight"] = class_weights(before, cfg.sampling_ratio)
        return train, report
    if cfg.strategy == "none":
        return train, report
    # imbalanced-learn truncates the same way: fewer than one row to add means nothing to do.
    if int(cfg.sampling_ratio * before["negative"] - before["positive"]) < 1:
        log.info(
            "minority ratio %d/%d already reaches %.3f; no resampling",
            before["positive"],
            before["negative"],
            cfg.sampling_ratio,
        )
        return train, report

    started = time.perf_counter()
    if cfg.strategy == "random_under":
        out = _random_under(train, target, cfg.sampling_ratio, seed)
    else:
        k = _neighbours(before["positive"], cfg)
        report["k_neighbors_used"] = k
        out = _oversample(train, schema, cfg, k, seed)
    report.update(
        after=class_counts(out, target),
        rows_synthetic=int((out[ORIGIN_COLUMN] == "rebalance").sum()),
        rows_removed=int(len(train) - (out[ORIGIN_COLUMN] != "rebalance").sum()),
        seconds=round(time.perf_counter() - started, 3),
    )
    return out.reset_index(drop=True), report


def _neighbours(positives: int, cfg: RebalanceParams) -> int:
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


def _random_under(train: pd.DataFrame, target: str, ratio: float, seed: int) -> pd.DataFrame:
    from imblearn.under_sampling import RandomUnderSampler

    sampler = RandomUnderSampler(sampling_strategy=ratio, random_state=seed)
    sampler.fit_resample(np.zeros((len(train), 1)), train[target].to_numpy())
    return train.iloc[np.sort(sampler.sample_indices_)]


class _Encoding:
    """Numeric features standardised, categoricals one-hot, and the way back."""

    def __init__(self, frame: pd.DataFrame, schema: Schema):
        self.numeric, self.categorical = schema.numeric, schema.categorical
        values = frame[self.numeric].to_numpy("float64")
        self.mean = values.mean(axis=0)
        self.std = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
        self.levels = {name: sorted(frame[name].astype(str).unique()) for name in self.categorical}

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = [(frame[self.numeric].to_numpy("float64") - self.mean) / self.std]
        for name, levels in self.levels.items():
            blocks.append(
                (frame[name].astype(str).to_numpy()[:, None] == np.array(levels)[None, :]).astype(
                    "float64"
                )
            )
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


def _oversample(
    train: pd.DataFrame, schema: Schema, cfg: RebalanceParams, k: int, seed: int
) -> pd.DataFrame:
    target = schema.target
    labels = train[target].to_numpy()
    encoding = _Encoding(train, schema)
    matrix = encoding.encode(train)
    sampler = _sampler(cfg.strategy, schema, encoding, cfg.sampling_ratio, k, seed)
    try:
        resampled, resampled_labels = sampler.fit_resample(matrix, labels)
    except (ValueError, RuntimeError) as exc:
        if "No samples will be generated" in str(exc):
            # ADASYN spreads a handful of rows by density and can round every share to zero.
            log.warning("rebalance.strategy=%s generated no rows: %s", cfg.strategy, exc)
            return train
        raise PipelineError(f"rebalance.strategy={cfg.strategy}: {exc}") from exc
    # imbalanced-learn's oversamplers return the original rows first, then the synthetic ones.
    synthetic = encoding.decode(resampled[len(train) :], train)
    synthetic[target] = resampled_labels[len(train) :]
    synthetic[ORIGIN_COLUMN] = "rebalance"
    for column in train.columns.difference(synthetic.columns):
        synthetic[column] = pd.Series(pd.NA, index=synthetic.index).astype(train[column].dtype)
    combined = pd.concat(
        [train, synthetic[train.columns].astype(train.dtypes.to_dict())], ignore_index=True
    )
    if cfg.strategy in ("smote_tomek", "smote_enn"):
        cleaner = _cleaner(cfg.strategy)
        cleaner.fit_resample(
            np.vstack([matrix, resampled[len(train) :]]), combined[target].to_numpy()
        )
        combined = combined.iloc[np.sort(cleaner.sample_indices_)]
    return combined


def _sampler(strategy: str, schema: Schema, encoding: _Encoding, ratio: float, k: int, seed: int):
    from imblearn.over_sampling import ADASYN, SMOTE, SMOTENC, BorderlineSMOTE

    if strategy == "smote_nc":
        if not schema.categorical or not schema.numeric:
            raise PipelineError(
                "rebalance.strategy=smote_nc needs both numeric and categorical features; use smote"
            )
        # SMOTE-NC wants each categorical as one column: give it the one-hot block's argmax.
        return _SmoteNcOnOneHot(encoding, SMOTENC, ratio, k, seed)
    if strategy == "borderline_smote":
        return BorderlineSMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed)
    if strategy == "adasyn":
        return ADASYN(sampling_strategy=ratio, n_neighbors=k, random_state=seed)
    return SMOTE(sampling_strategy=ratio, k_neighbors=k, random_state=seed)


def _cleaner(strategy: str):
    from imblearn.under_sampling import EditedNearestNeighbours, TomekLinks

    return TomekLinks() if strategy == "smote_tomek" else EditedNearestNeighbours()


class _SmoteNcOnOneHot:
    """SMOTE-NC over (numeric, category codes), presented in the one-hot encoding."""

    def __init__(self, encoding: _Encoding, smotenc, ratio: float, k: int, seed: int):
        self.encoding = encoding
        width = len(encoding.numeric)
        self.sampler = smotenc(
            categorical_features=list(range(width, width + len(encoding.levels))),
            sampling_strategy=ratio,
            k_neighbors=k,
            random_state=seed,
        )

    def fit_resample(self, matrix: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        width = len(self.encoding.numeric)
        codes, start = [], width
        for levels in self.encoding.levels.values():
            codes.append(matrix[:, start : start + len(levels)].argmax(axis=1))
            start += len(levels)
        compact = np.column_stack([matrix[:, :width], *codes])
        resampled, resampled_labels = self.sampler.fit_resample(compact, labels)
        blocks, column = [resampled[:, :width]], width
        for levels in self.encoding.levels.values():
            blocks.append(np.eye(len(levels))[resampled[:, column].astype(int)])
            column += 1
        return np.hstack(blocks), resampled_labels


def main() -> None:
    params = load_params()
    schema = load_schema(schema_path(params.data))
    train = read_parquet(paths.SPLIT_TRAIN)
    out, report = rebalance(train, schema, params.rebalance, params.seed)
    write_parquet_atomic(out, paths.REBALANCED_TRAIN)
    metrics = headline(report, "after", "rows_synthetic")
    write_results(report, paths.REBALANCE_REPORT, metrics, paths.REBALANCE_METRICS)
    log.info(
        "rebalance (%s): %s -> %s", params.rebalance.strategy, report["before"], report["after"]
    )


if __name__ == "__main__":
    run_stage("rebalance", main)
