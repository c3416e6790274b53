"""Validation plus cleaning against reading the same Parquet file, at 10k, 100k and 1M rows.

The frame has 30 columns (20 numeric, 7 categorical, an id, a timestamp and the label) and
realistic dirt (nulls, infinities, outliers, unseen categories, duplicates). The schema is
inferred beforehand and a drift reference taken from a second sample, as in a weekly run.
Reported per size: the Parquet read, the whole ``validate()`` call (Great Expectations
checkpoint with Data Docs, cleaning, drift), its parts, and the ratio validate / read. Then
what ``validate()`` spends outside Great Expectations' ``Checkpoint.run`` (timed inside the
same call: suites and context, the frame prepared for GX, Data Docs, codes, cleaning, drift)
and its ratio to the read. The parts: the text columns' codes (computed once, used by both of
the next two), the checkpoint with Data Docs, the cleaning and the drift comparison. Last, the
checkpoint again on the same rows with the numeric columns' nulls filled: Great Expectations'
own cost when its pandas engine has no null rows to filter out, a floor for any validation
through it.

    python -m bench.validate_speed [--rows 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import default_params
from pipelines import drift
from pipelines.cleaning import clean_rows, text_codes
from pipelines.config import DataParams
from pipelines.expectations import run_expectations
from pipelines.schema import infer_schema
from pipelines.validate import validate

N_NUMERIC, N_CATEGORICAL = 20, 7


def dirty_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = (rng.random(rows) < 0.02).astype("int64")
    data: dict[str, object] = {"event_id": [f"e{seed}-{i:08d}" for i in range(rows)]}
    data["event_time"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(
        rng.integers(0, 86_400 * 7, rows), unit="s"
    )
    for i in range(N_NUMERIC):
        values = rng.lognormal(1 + i % 3, 0.5, rows) + label * (i % 4)
        values[rng.random(rows) < 0.002] = np.nan
        values[rng.random(rows) < 0.0005] = 1e9
        data[f"num_{i:02d}"] = values
    for j in range(N_CATEGORICAL):
        levels = np.array([f"level_{k}" for k in range(3 + 3 * j)], dtype=object)
        values = levels[rng.integers(0, len(levels), rows)]
        values[rng.random(rows) < 0.0005] = "never_seen"
        data[f"cat_{j}"] = values
    data["label"] = label
    frame = pd.DataFrame(data)
    duplicates = frame.sample(frac=0.002, random_state=seed)
    return pd.concat([frame, duplicates], ignore_index=True)


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


@contextlib.contextmanager
def checkpoint_timer() -> Iterator[list[float]]:
    """Seconds spent in Great Expectations' ``Checkpoint.run``, appended per call."""
    import great_expectations as gx

    spent: list[float] = []
    run = gx.Checkpoint.run

    def timed_run(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return run(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    gx.Checkpoint.run = timed_run
    try:
        yield spent
    finally:
        gx.Checkpoint.run = run


def context_setup_seconds() -> float:
    """Importing Great Expectations and creating the context: paid once per stage run."""
    started = time.perf_counter()
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000,100000,1000000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    cfg = default_params().validate_
    data = DataParams(source="bench", target="label", positive_label=1)
    sample = dirty_frame(20_000, seed=1)
    schema = infer_schema(sample, data, cfg.max_categories, cfg.range_margin, cfg.min_rows)
    schema = schema.model_copy(update={"max_rows": None})
    reference = drift.profile(clean_rows(sample, schema, cfg).clean, schema)
    print(f"Great Expectations import + context, once per stage: {context_setup_seconds():.2f} s")
    print(
        f"{'rows':>9} {'read':>7} {'validate':>9} {'ratio':>6} | {'GX run':>7} {'non-GX':>7} "
        f"{'/read':>6} | {'codes':>6} {'GX+docs':>8} {'clean':>6} {'drift':>6} {'us/row':>7} "
        f"| {'GX, no nulls':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows.split(",")):
            path = Path(tmp) / f"{rows}.parquet"
            dirty_frame(rows, seed=2).to_parquet(path, index=False)
            pd.read_parquet(path)  # warm the page cache so both sides read from memory
            raw, read_s = timed(pd.read_parquet, path)
            with checkpoint_timer() as checkpoint_s:
                _, validate_s = timed(
                    validate, raw, schema, cfg, Path(tmp) / f"docs{rows}", reference
                )
            non_gx_s = validate_s - sum(checkpoint_s)
            codes, codes_s = timed(text_codes, raw)
            _, gx_s = timed(run_expectations, raw, schema, Path(tmp) / f"gx{rows}", codes)
            cleaned, clean_s = timed(clean_rows, raw, schema, cfg, None, codes)
            _, drift_s = timed(drift.compare, reference, cleaned.clean, schema)
            numeric = raw.select_dtypes("number").columns
            filled = raw.assign(**{name: raw[name].fillna(1.0) for name in numeric})
            # Filling numbers leaves the text columns, and so their codes, as they were.
            _, floor_s = timed(run_expectations, filled, schema, Path(tmp) / f"gxf{rows}", codes)
            print(
                f"{len(raw):>9} {read_s:>6.2f}s {validate_s:>8.2f}s {validate_s / read_s:>5.1f}x | "
                f"{sum(checkpoint_s):>6.2f}s {non_gx_s:>6.2f}s {non_gx_s / read_s:>5.2f}x | "
                f"{codes_s:>5.2f}s {gx_s:>7.2f}s {clean_s:>5.2f}s {drift_s:>5.2f}s "
                f"{validate_s / len(raw) * 1e6:>6.1f} | {floor_s:>11.2f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
