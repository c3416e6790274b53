"""Batch scoring's throughput and memory: ``pipelines.score`` with the registered champion.

    python -m bench.score_speed [--rows 100000,1000000] [--chunk-rows 100000]

Needs a registered champion in the configured MLflow store (``make run`` makes one); it scores
with whatever flavour that version serves. For each size, simulated raw transactions (daily
partitions of at most 250k rows, dirt included) are written to a temporary folder and scored
in a fresh process, as ``python -m pipelines.score`` would: model loading apart, it reports
rows/s of the whole path (read, admit, predict, write) and of the pyfunc's ``predict`` alone
(one chunk, timed separately), and the process's peak RSS. Flat memory means peak RSS does
not grow with the rows: only ``score.chunk_rows`` sets it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

PARTITION_ROWS = 250_000


def write_input(folder: Path, rows: int, seed: int) -> None:
    from bench.common import default_params
    from pipelines.simulate import simulate_day

    params = default_params()
    folder.mkdir(parents=True, exist_ok=True)
    for day, start in enumerate(range(0, rows, PARTITION_ROWS)):
        size = min(PARTITION_ROWS, rows - start)
        cfg = params.simulate.model_copy(update={"rows_per_day": size})
        simulate_day(day, cfg, seed).to_parquet(folder / f"day={day:03d}.parquet", index=False)


def child(folder: Path, chunk_rows: int) -> dict:
    """Score ``folder`` in this process (a fresh one per size); what it measured."""
    from pipelines import score
    from pipelines.chunks import ParquetSink
    from pipelines.config import load_params
    from pipelines.stage import configure_logging

    configure_logging()
    params = load_params()
    started = time.perf_counter()
    scoring = score.load_scoring_model(params.register_.model_name, None)
    loaded = time.perf_counter()
    out = folder.parent / "scores.parquet"
    with ParquetSink(out) as scored, ParquetSink(folder.parent / "rejects.parquet") as rejected:
        tally = score.score_source(
            str(folder),
            scoring,
            (scored, rejected),
            chunk_rows=chunk_rows,
            scored_at=pd.Timestamp.now(tz="UTC"),
        )
    done = time.perf_counter()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batch = next(pq.ParquetFile(out).iter_batches(batch_size=chunk_rows))
    sample = batch.to_pandas()[scoring.schema.feature_columns]
    predict_started = time.perf_counter()
    scoring.model.predict(sample)
    predict_s = time.perf_counter() - predict_started
    return {
        "rows": tally.rows_in,
        "scored": tally.scored,
        "rejected": tally.rejected,
        "model": f"{scoring.name} v{scoring.version}",
        "load_s": loaded - started,
        "score_s": done - loaded,
        "rows_per_s": tally.rows_in / (done - loaded),
        "predict_rows_per_s": len(sample) / predict_s,
        "peak_rss_mb": peak_rss_mb,
    }


def measure(rows: int, chunk_rows: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="score-bench-") as scratch:
        folder = Path(scratch) / "input"
        write_input(folder, rows, seed)
        done = subprocess.run(
            [sys.executable, "-m", "bench.score_speed", "--child", str(folder), str(chunk_rows)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"scoring {rows} rows failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.score_speed")
    parser.add_argument("--rows", default="100000,1000000", help="input sizes, comma-separated")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(child(Path(args.child[0]), int(args.child[1]))) + "\n")
        return
    results = [measure(int(n), args.chunk_rows, args.seed) for n in args.rows.split(",")]
    lines = [
        f"model: {results[0]['model']}, chunk_rows {args.chunk_rows}, "
        f"{os.cpu_count()} CPUs; model load {results[0]['load_s']:.1f} s",
        f"{'rows':>10} {'rejected':>9} {'score s':>8} {'rows/s':>9} {'predict rows/s':>15} "
        f"{'peak RSS MB':>12}",
    ]
    for r in results:
        lines.append(
            f"{r['rows']:>10} {r['rejected']:>9} {r['score_s']:>8.1f} {r['rows_per_s']:>9.0f} "
            f"{r['predict_rows_per_s']:>15.0f} {r['peak_rss_mb']:>12.0f}"
        )
    first, last = results[0], results[-1]
    lines.append(
        f"peak RSS at {last['rows']} rows / at {first['rows']}: "
        f"{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}x for "
        f"{last['rows'] / first['rows']:.0f}x the rows"
    )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
