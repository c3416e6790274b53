"""The served pyfunc: TFLite (LiteRT) against Keras, latency, throughput and size, in one run.

Run from a repository whose pipeline has run (``make run``): it packages the current model
both ways exactly as register does (``pipelines.packaging.log_pyfunc``, flavour ``tflite``
with quantize's served variant, then ``keras``) into a throw-away MLflow store, loads each
back through ``pipelines.artifacts.load_verified_model``, and measures, on raw test-split rows
(transform included):

* batch-1 latency: median of single-row ``predict`` calls, the two flavours alternating in
  windows so that load on a shared machine hits both alike; also of the served module alone
  (``unwrap_python_model().predict``: without MLflow's per-call input-schema enforcement);
* throughput: rows/s of ``predict`` on the test split tiled to ``--rows`` rows, in chunks of
  ``--batch`` rows (what a batch scorer does);
* size: the served model file and the whole logged model (which always holds the Keras file).

    python -m bench.serving_speed [--rows 200000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import paths

WINDOWS = 20
WINDOW_CALLS = 10
NAME = "serving-speed-bench"


def register_both(test: pd.DataFrame, experiment: str) -> dict[str, dict]:
    """Each flavour logged and registered like register does; its version's tags."""
    import mlflow
    from pipelines.contracts import DecisionThreshold, ServedVariant
    from pipelines.packaging import log_pyfunc
    from pipelines.schema import load_enforced_schema

    schema = load_enforced_schema()
    threshold, served = DecisionThreshold.load().threshold, ServedVariant.load()
    versions = {}
    with mlflow.start_run(experiment_id=experiment):
        for flavour in ("tflite", "keras"):
            packaged = log_pyfunc(threshold, test, schema, served, flavour)  # type: ignore[arg-type]
            version = mlflow.register_model(packaged.model_uri, NAME, tags=packaged.tags)
            versions[flavour] = {"version": str(version.version), **packaged.tags}
    return versions


def alternating_latency_ms(calls: dict[str, Callable], row: pd.DataFrame) -> dict[str, float]:
    """Median per-window mean of single-row calls, the callers alternating window by window."""
    for call in calls.values():
        call(row)
    windows: dict[str, list[float]] = {name: [] for name in calls}
    for index in range(WINDOWS):
        order = list(calls) if index % 2 == 0 else list(reversed(calls))
        for name in order:
            started = time.perf_counter()
            for _ in range(WINDOW_CALLS):
                calls[name](row)
            windows[name].append((time.perf_counter() - started) / WINDOW_CALLS)
    return {name: float(np.median(times) * 1000) for name, times in windows.items()}


def throughput(model, rows: pd.DataFrame, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        model.predict(rows.iloc[start : start + batch])
    return len(rows) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    test = pd.read_parquet(paths.SPLIT_TEST)
    from pipelines.artifacts import load_verified_model
    from pipelines.schema import load_enforced_schema

    features = load_enforced_schema().feature_columns
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(scratch) / 'mlflow.db'}"
        from pipelines import tracking

        experiment = tracking.client().create_experiment(
            NAME, artifact_location=(Path(scratch) / "artifacts").as_uri()
        )
        versions = register_both(test, experiment)
        models = {
            flavour: load_verified_model(f"models:/{NAME}/{tags['version']}")
            for flavour, tags in versions.items()
        }
        raw = test[features]
        # The served module alone (unwrapped: no MLflow input-schema enforcement) tells the
        # pyfunc's own cost from MLflow's per-call overhead.
        calls: dict[str, Callable] = {name: model.predict for name, model in models.items()}
        for name, model in models.items():
            inner = model.unwrap_python_model()
            calls[f"{name} module"] = lambda row, inner=inner: inner.predict(None, row)
        latency = alternating_latency_ms(calls, raw.head(1))
        tiled = raw.iloc[np.resize(np.arange(len(raw)), args.rows)].reset_index(drop=True)
        speed = {name: throughput(model, tiled, args.batch) for name, model in models.items()}
        scores = {
            name: model.predict(raw)["probability"].to_numpy() for name, model in models.items()
        }
    rows = []
    for flavour, tags in versions.items():
        rows.append(
            {
                "flavour": flavour,
                "variant": tags["served_variant"],
                "served_bytes": int(tags["served_bytes"]),
                "logged_model_bytes": int(tags["artifact_bytes"]),
                "latency_batch1_ms": round(latency[flavour], 3),
                "module_only_batch1_ms": round(latency[f"{flavour} module"], 3),
                f"rows_per_s_batch{args.batch}": round(speed[flavour]),
            }
        )
    table = pd.DataFrame(rows)
    ratio = latency["keras"] / latency["tflite"]
    gain = speed["tflite"] / speed["keras"]
    difference = float(np.abs(scores["tflite"] - scores["keras"]).max())
    print(table.to_string(index=False))
    print(
        f"TFLite vs Keras: batch-1 latency {ratio:.1f}x lower, throughput {gain:.1f}x higher, "
        f"max |probability diff| on {len(raw)} test rows {difference:.2e}; "
        f"throughput over {args.rows} rows"
    )


if __name__ == "__main__":
    main()
