"""What pseudonymising personal data at ingest costs: ingest with it against ingest without it.

Simulated daily partitions (the bundled simulator, one ``customer_email`` per customer) are
written as Parquet; the ingest core (read, combine, find personal columns by name and value,
pseudonymise) runs on them with and without the personal-data step, alternately, and the
median of each is compared. The snapshot write, which both pay, is timed apart. Times are
CPU seconds of this process (all its threads), which a busy shared machine distorts less than
wall time.

    python -m bench.pii_ingest [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import default_params
from pipelines import ingest as ingest_stage
from pipelines import personal_data
from pipelines.config import DataParams, IngestParams
from pipelines.simulate import simulate_day


def _timed(run) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = default_params()
    days = 10
    cfg = params.simulate.model_copy(update={"rows_per_day": args.rows // days, "n_days": days})
    os.environ.setdefault(personal_data.PII_KEY_ENV, "bench-key")
    with tempfile.TemporaryDirectory() as folder:
        for day in range(days):
            simulate_day(day, cfg, params.seed).to_parquet(Path(folder) / f"{day:03d}.parquet")
        data = DataParams(source=folder, target="is_fraud", positive_label=1, name="bench")
        ingest_params = IngestParams(file_format="auto")
        find = personal_data.personal_columns
        with_pii, without = [], []
        for _ in range(args.repeats):
            personal_data.personal_columns = find
            with_pii.append(_timed(lambda: ingest_stage.ingest(data, ingest_params)))
            personal_data.personal_columns = lambda *a, **k: {}
            without.append(_timed(lambda: ingest_stage.ingest(data, ingest_params)))
        personal_data.personal_columns = find
        snapshot, report = ingest_stage.ingest(data, ingest_params)
        write = _timed(lambda: snapshot.to_parquet(Path(folder) / "snapshot.out"))
    on, off = statistics.median(with_pii), statistics.median(without)
    customers = pd.Series(snapshot["customer_email"]).nunique()
    print(
        f"rows {len(snapshot):,}, distinct emails {customers:,}, personal {report['pii_columns']}"
    )
    print(f"ingest core without personal-data step  {off:7.2f} CPU s (median of {args.repeats})")
    print(f"ingest core with it                     {on:7.2f} CPU s ({on / off:.2f}x)")
    print(f"  of which the step                     {on - off:7.2f} CPU s")
    print(f"snapshot write (both pay it)            {write:7.2f} CPU s")


if __name__ == "__main__":
    main()
