"""A stand-in for ``pipelines.score`` (the batch scorer, built in parallel) in repo copies
that lack it: the same command line and output columns, none of its schema checks, rejects
or streaming. tests/integration/test_monitor_dag.py copies it to ``pipelines/score.py``
only when the real one is absent.

    python -m pipelines.score --input FILE|DIR --output FILE.parquet [--model-version N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipelines import tracking
from pipelines.config import load_params
from pipelines.io import write_parquet_atomic
from pipelines.stage import run_stage


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--model-version", default=None)
    args = parser.parse_args()
    name = load_params().register_.model_name
    client = tracking.client()
    version = args.model_version or client.get_model_version_by_alias(name, "champion").version
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    files = [args.input] if args.input.is_file() else sorted(args.input.glob("*.parquet"))
    rows = pd.concat([pd.read_parquet(file) for file in files], ignore_index=True)
    scores = model.predict(rows[model.metadata.get_input_schema().input_names()])
    rows = rows.assign(
        probability=scores["probability"].to_numpy(),
        label=scores["label"].to_numpy(),
        model_version=str(version),
        scored_at=pd.Timestamp.now(tz="UTC"),
    )
    write_parquet_atomic(rows, args.output)


if __name__ == "__main__":
    run_stage("score", main, record_failure=False)
