"""Split: train / validation / test, before any resampling.

* ``hash``: each row lands where a seeded hash of its id puts it (the schema's first ``id``
  column; with none, its feature and timestamp values), cut at the configured fractions. The
  same row lands in the same split on every retrain, so rows the champion trained on never
  reach a later test split; the class ratio holds approximately (each class is cut alike).
  With ``group_column`` the group's value is hashed instead, so no group spans two splits.
* ``stratified``: random, with the class ratio kept in each split exactly; with
  ``group_column`` no group (a customer, say) spans two splits. Drawn again on every retrain.
* ``out_of_time``: train on the oldest rows, validate on the next, test on the most recent.
  For fraud this is the honest estimate of next week's performance.

Rebalance and augment later touch the training split only; validation tunes the threshold
and early stopping; test is read once, by evaluate, for reporting.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from pipelines import paths
from pipelines.config import SplitParams, load_params
from pipelines.errors import PipelineError
from pipelines.io import read_parquet, write_parquet_atomic
from pipelines.reports import stage_headline, write_results
from pipelines.schema import Schema, load_enforced_schema
from pipelines.stage import run_stage

log = logging.getLogger(__name__)

Splits = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
MIN_PER_CLASS = 2


def split(frame: pd.DataFrame, schema: Schema, cfg: SplitParams, seed: int) -> Splits:
    """Split into (train, val, test) by ``cfg.method``; each split keeps both classes."""
    target = schema.target
    positives = int(frame[target].sum())
    needed = 3 * MIN_PER_CLASS
    if positives < needed or len(frame) - positives < needed:
        raise PipelineError(
            f"column {target!r}: {positives} positive of {len(frame)} rows is too few to split "
            f"into train/val/test (need at least {needed} of each class)"
        )
    if cfg.method == "out_of_time":
        parts = _out_of_time(frame, time_column(schema, cfg), cfg)
    elif cfg.method == "hash":
        parts = _hashed(frame, hash_key(frame, schema, cfg), cfg, seed)
    elif cfg.group_column:
        parts = _grouped(frame, target, cfg, seed)
    else:
        rest, test = train_test_split(
            frame, test_size=cfg.test_size, stratify=frame[target], random_state=seed
        )
        val_share = cfg.val_size / (1 - cfg.test_size)
        train, val = train_test_split(
            rest, test_size=val_share, stratify=rest[target], random_state=seed
        )
        parts = (train, val, test)
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        counts = part[target].value_counts()
        if min(counts.get(0, 0), counts.get(1, 0)) < 1:
            raise PipelineError(
                f"split.method={cfg.method}: the {name} split has {len(part)} rows and "
                f"{int(counts.get(1, 0))} positives; it needs both classes"
            )
    return tuple(part.reset_index(drop=True) for part in parts)


def time_column(schema: Schema, cfg: SplitParams) -> str:
    if cfg.time_column:
        if cfg.time_column not in schema.columns:
            raise PipelineError(
                f"split.time_column: {cfg.time_column!r} is not a column of the data"
            )
        return cfg.time_column
    candidates = schema.features("timestamp")
    if len(candidates) != 1:
        raise PipelineError(
            f"split.method=out_of_time needs split.time_column: the schema has {len(candidates)} "
            f"timestamp columns {candidates}"
        )
    return candidates[0]


def hash_key(frame: pd.DataFrame, schema: Schema, cfg: SplitParams) -> pd.Series:
    """What a row's split is decided by: its group, else its id, else its feature values.

    Values are hashed as text, so a column read as int from CSV and as float from Parquet, or
    a reordered frame, keeps its rows where they were.
    """
    if cfg.group_column:
        if cfg.group_column not in frame.columns:
            raise PipelineError(
                f"split.group_column: {cfg.group_column!r} is not a column of the data"
            )
        columns = [cfg.group_column]
    else:
        ids = [name for name in schema.features("id") if name in frame.columns]
        columns = ids[:1] or sorted(
            name
            for name in schema.feature_columns + schema.features("timestamp")
            if name in frame.columns
        )
    text = frame[columns].astype(str)
    return (
        text.iloc[:, 0].str.cat(text.iloc[:, 1:], sep="\x1f")
        if len(columns) > 1
        else text.iloc[:, 0]
    )


def stable_fraction(keys: pd.Series, seed: int) -> np.ndarray:
    """Each key's place in [0, 1): a seeded BLAKE2b digest, the same on every machine, Python
    and pandas version (unlike ``hash()`` or ``pd.util.hash_pandas_object``)."""
    salt = seed.to_bytes(8, "little", signed=True)
    digests = (hashlib.blake2b(key.encode(), digest_size=8, salt=salt).digest() for key in keys)
    return (
        np.fromiter(
            (int.from_bytes(d, "little") for d in digests), dtype=np.float64, count=len(keys)
        )
        / 2.0**64
    )


def _hashed(frame: pd.DataFrame, keys: pd.Series, cfg: SplitParams, seed: int) -> Splits:
    where = stable_fraction(keys, seed)
    train_end = 1 - cfg.val_size - cfg.test_size
    in_train, in_test = where < train_end, where >= 1 - cfg.test_size
    return frame[in_train], frame[~in_train & ~in_test], frame[in_test]


def _out_of_time(frame: pd.DataFrame, column: str, cfg: SplitParams) -> Splits:
    when = pd.to_datetime(frame[column], errors="coerce", format="ISO8601", utc=True)
    if when.isna().any():
        raise PipelineError(
            f"column {column!r}: {int(when.isna().sum())} rows have no valid timestamp"
        )
    ordered = frame.iloc[np.argsort(when.to_numpy(), kind="stable")]
    n_test = int(round(len(frame) * cfg.test_size))
    n_val = int(round(len(frame) * cfg.val_size))
    n_train = len(frame) - n_val - n_test
    return (
        ordered.iloc[:n_train],
        ordered.iloc[n_train : n_train + n_val],
        ordered.iloc[n_train + n_val :],
    )


def _grouped(frame: pd.DataFrame, target: str, cfg: SplitParams, seed: int) -> Splits:
    if cfg.group_column not in frame.columns:
        raise PipelineError(f"split.group_column: {cfg.group_column!r} is not a column of the data")
    groups = frame[cfg.group_column].astype(str)
    rest_index, test_index = _one_group_fold(frame[target], groups, cfg.test_size, seed)
    rest = frame.iloc[rest_index]
    val_share = cfg.val_size / (1 - cfg.test_size)
    train_index, val_index = _one_group_fold(rest[target], groups.iloc[rest_index], val_share, seed)
    return rest.iloc[train_index], rest.iloc[val_index], frame.iloc[test_index]


def _one_group_fold(
    labels: pd.Series, groups: pd.Series, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about ``share`` of the rows as whole groups, keeping the class ratio."""
    n_splits = max(2, int(round(1 / share)))
    if groups.nunique() < n_splits:
        raise PipelineError(
            f"split.group_column: {groups.nunique()} groups are too few for a {share:.0%} hold-out"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return next(folds.split(np.zeros(len(labels)), labels.to_numpy(), groups.to_numpy()))


def split_report(parts: dict[str, pd.DataFrame], schema: Schema, cfg: SplitParams) -> dict:
    timestamps = schema.features("timestamp")
    when_column = cfg.time_column or (timestamps[0] if len(timestamps) == 1 else None)
    report: dict = {"method": cfg.method}
    for name, part in parts.items():
        entry = {
            "rows": len(part),
            "positives": int(part[schema.target].sum()),
            "positive_rate": float(part[schema.target].mean()),
        }
        if when_column and when_column in part.columns:
            when = pd.to_datetime(part[when_column], errors="coerce", format="ISO8601", utc=True)
            entry["time_from"], entry["time_to"] = str(when.min()), str(when.max())
        if cfg.group_column:
            entry["groups"] = int(part[cfg.group_column].nunique())
        report[name] = entry
    return report


def main() -> None:
    params = load_params()
    schema = load_enforced_schema()
    clean = read_parquet(paths.CLEAN)
    train, val, test = split(clean, schema, params.split, params.seed)
    for part, path in (
        (train, paths.SPLIT_TRAIN),
        (val, paths.SPLIT_VAL),
        (test, paths.SPLIT_TEST),
    ):
        write_parquet_atomic(part, path)
    report = split_report({"train": train, "val": val, "test": test}, schema, params.split)
    numbers = stage_headline("split", rows=len(train) + len(val) + len(test))
    write_results(report, paths.SPLIT_REPORT, numbers, paths.SPLIT_METRICS)
    log.info(
        "split (%s): %s",
        params.split.method,
        {k: (v["rows"], v["positives"]) for k, v in report.items() if isinstance(v, dict)},
    )


if __name__ == "__main__":
    run_stage("split", main)
