"""Rebalance stage cost against a bare imbalanced-learn call on the same data.

The stage does more than the bare call (standardising, one-hot encoding, decoding back to
valid categories, rebuilding the frame), so the ratio is the price of that bookkeeping.

    python -m bench.rebalance_speed [--rows 1000000] [--slow-rows 100000]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from pipelines.config import RebalanceParams
from pipelines.rebalancing import rebalance
from pipelines.schema import ColumnSchema, Schema

N_NUMERIC = 21


def frame_and_schema(rows: int, categorical: bool, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(seed)
    label = (rng.random(rows) < 0.01).astype("int64")
    data = {f"x{i}": rng.normal(size=rows) + label * (i % 3) * 0.5 for i in range(N_NUMERIC)}
    columns = {
        f"x{i}": ColumnSchema(kind="float", role="numeric", min=-10, max=10, impute=0.0)
        for i in range(N_NUMERIC)
    }
    if categorical:
        for j, levels in enumerate((4, 8, 12)):
            data[f"c{j}"] = np.array([f"v{k}" for k in range(levels)], dtype=object)[
                rng.integers(0, levels, rows)
            ]
            columns[f"c{j}"] = ColumnSchema(
                kind="string", role="categorical", categories=[f"v{k}" for k in range(levels)]
            )
    data["label"] = label
    columns["label"] = ColumnSchema(kind="int", role="target")
    frame = pd.DataFrame(data)
    frame = frame.astype({c: "str" for c in frame.columns if c.startswith("c")})
    schema = Schema(
        target="label", positive_label="1", label_values=["0", "1"], min_rows=1, columns=columns
    )
    return frame, schema


def bare(strategy: str, frame: pd.DataFrame, schema: Schema, seed: int) -> None:
    from imblearn.combine import SMOTEENN, SMOTETomek
    from imblearn.over_sampling import SMOTE, SMOTENC
    from imblearn.under_sampling import RandomUnderSampler

    x, y = frame[schema.feature_columns], frame["label"].to_numpy()
    if strategy == "smote_nc":
        sampler = SMOTENC(
            categorical_features=[x.columns.get_loc(c) for c in schema.categorical],
            sampling_strategy=0.3,
            random_state=seed,
        )
    else:
        x = x.to_numpy()
        sampler = {
            "smote": SMOTE(sampling_strategy=0.3, random_state=seed),
            "random_under": RandomUnderSampler(sampling_strategy=0.3, random_state=seed),
            "smote_tomek": SMOTETomek(sampling_strategy=0.3, random_state=seed),
            "smote_enn": SMOTEENN(sampling_strategy=0.3, random_state=seed),
        }[strategy]
    sampler.fit_resample(x, y)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--slow-rows", type=int, default=100_000, help="rows for smote_tomek / smote_enn"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import imblearn.combine  # noqa: F401 - import once, outside every timing
    import imblearn.over_sampling  # noqa: F401
    import imblearn.under_sampling  # noqa: F401

    print("| strategy | rows | features | stage s | bare imblearn s | stage / bare |")
    print("|---|---|---|---|---|---|")
    for strategy, categorical, rows in [
        ("random_under", False, args.rows),
        ("smote", False, args.rows),
        ("smote_nc", True, args.rows),
        ("smote_tomek", False, args.slow_rows),
        ("smote_enn", False, args.slow_rows),
    ]:
        frame, schema = frame_and_schema(rows, categorical)
        cfg = RebalanceParams(
            strategy=strategy, sampling_ratio=0.3, k_neighbors=5, small_minority="reduce_k"
        )
        stage = timed(lambda: rebalance(frame, schema, cfg, seed=0))  # noqa: B023
        reference = timed(lambda: bare(strategy, frame, schema, seed=0))  # noqa: B023
        print(
            f"| {strategy} | {rows:,} | {len(schema.feature_columns)} | {stage:.2f} | {reference:.2f} | "
            f"{stage / reference:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
