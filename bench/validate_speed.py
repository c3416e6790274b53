"""Validation plus cleaning against reading the same Parquet file, at 10k, 100k and 1M rows.

The frame has 30 columns (20 numeric, 7 categorical, an id, a timestamp and the label) and
realistic dirt (nulls, infinities, outliers, unseen categories, duplicates). The schema is
inferred beforehand and a drift reference taken from a second sample, as in a weekly run.
Reported per size: the Parquet read, the whole ``validate()`` call and its ratio to the read.
Then, timed inside that one call: Great Expectations' ``Checkpoint.run``, and everything else
validate does (the issue's goal: at most 1x the read), in wall seconds, over the read, and in
CPU seconds (steadier on a shared machine). Its parts: the text columns' codes (used by both
the checkpoint and the cleaning), Data Docs, the cleaning, the drift comparison, and the rest
(GX context and suites, the frame GX sees, column checks). Last, the checkpoint alone on the
same rows with the numeric columns' nulls filled: Great Expectations' own cost when its pandas
engine has no null rows to filter out, a floor for any validation through it.

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
from pipelines import drift, expectations
from pipelines import validate as validate_module
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
def stopwatch(**targets: tuple[object, str]) -> Iterator[dict[str, list[float]]]:
    """Wall and CPU seconds spent in each ``(owner, attribute)`` function while open.

    Yields ``{label: [wall, cpu]}``, summed over calls. The functions are wrapped where
    ``validate()`` looks them up, so the parts are timed inside the one call being measured.
    """
    spent = {label: [0.0, 0.0] for label in targets}
    originals = {label: getattr(owner, name) for label, (owner, name) in targets.items()}

    def wrap(label: str, function):
        def timed_call(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label][0] += time.perf_counter() - wall
                spent[label][1] += time.process_time() - cpu

        return timed_call

    for label, (owner, name) in targets.items():
        setattr(owner, name, wrap(label, originals[label]))
    try:
        yield spent
    finally:
        for label, (owner, name) in targets.items():
            setattr(owner, name, originals[label])


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
        f"{'rows':>9} {'read':>6} {'validate':>8} {'ratio':>6} | {'GX run':>6} {'non-GX':>6} "
        f"{'/read':>6} {'CPU':>6} | {'codes':>5} {'docs':>5} {'clean':>5} {'drift':>5} "
        f"{'rest':>5} | {'GX, no nulls':>12}"
    )
    import great_expectations as gx

    parts = {
        "gx": (gx.Checkpoint, "run"),
        "codes": (validate_module, "text_codes"),
        "docs": (expectations, "build_data_docs"),
        "clean": (validate_module, "clean_rows"),
        "drift": (drift, "compare"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows.split(",")):
            path = Path(tmp) / f"{rows}.parquet"
            dirty_frame(rows, seed=2).to_parquet(path, index=False)
            pd.read_parquet(path)  # warm the page cache so both sides read from memory
            raw, read_s = timed(pd.read_parquet, path)
            with stopwatch(**parts) as spent:
                cpu = time.process_time()
                _, validate_s = timed(
                    validate, raw, schema, cfg, Path(tmp) / f"docs{rows}", reference
                )
                cpu = time.process_time() - cpu
            non_gx_s, non_gx_cpu = validate_s - spent["gx"][0], cpu - spent["gx"][1]
            walls = {label: wall for label, (wall, _) in spent.items()}
            rest_s = non_gx_s - sum(v for k, v in walls.items() if k != "gx")
            numeric = raw.select_dtypes("number").columns
            filled = raw.assign(**{name: raw[name].fillna(1.0) for name in numeric})
            # Filling numbers leaves the text columns, and so their codes, as they were.
            codes = text_codes(filled)
            _, floor_s = timed(run_expectations, filled, schema, Path(tmp) / f"gxf{rows}", codes)
            print(
                f"{len(raw):>9} {read_s:>5.2f}s {validate_s:>7.2f}s {validate_s / read_s:>5.1f}x | "
                f"{walls['gx']:>5.2f}s {non_gx_s:>5.2f}s {non_gx_s / read_s:>5.2f}x "
                f"{non_gx_cpu:>5.2f}s | {walls['codes']:>4.2f}s {walls['docs']:>4.2f}s "
                f"{walls['clean']:>4.2f}s {walls['drift']:>4.2f}s {rest_s:>4.2f}s | "
                f"{floor_s:>11.2f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
