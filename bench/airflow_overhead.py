"""The retrain DAG under `airflow dags test` against `dvc repro`, same tiny configuration.

Both run from scratch in their own copy of the repository, on the same simulated data, one
after the other in this process. The Airflow run includes what distribution costs: every
task pulls its inputs from and pushes its outputs to the DVC remote (a local folder here).
The Airflow metadata DB is migrated before the clock starts, as it is in a deployment.

Two Airflow figures: the whole ``airflow dags test`` command, and the DAG run itself as the
metadata DB records it (first task start to last task end). The difference is the CLI's own
start-up (importing Airflow, parsing the DAG, creating the run), which a deployment's
long-running scheduler does not pay per run.

    python bench/airflow_overhead.py [--sync remote|off] [--repeats 3]

The run time of the stages themselves varies by about 15% between runs on this machine, so
the median over a few pairs is the figure to quote.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.conftest import make_repo_copy  # noqa: E402  (the tests' tiny config)

log = logging.getLogger("bench.airflow_overhead")


def timed(copy, *command: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    copy.run(*command, env_extra=env, check=True, timeout=3600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync", choices=["remote", "off"], default="remote")
    parser.add_argument(
        "--repeats", type=int, default=1, help="pairs of runs; the median ratio is reported"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    whole, runs = [], []
    for repeat in range(1, args.repeats + 1):
        dvc_seconds, airflow_seconds, run_seconds = measure(args.sync)
        log.info("pair %d of %d (DVC remote sync: %s)", repeat, args.repeats, args.sync)
        log.info("  dvc repro:                 %7.1f s", dvc_seconds)
        log.info("  airflow dags test retrain: %7.1f s", airflow_seconds)
        log.info(
            "    of which the DAG run:    %7.1f s  (first task start to last end)", run_seconds
        )
        whole.append(airflow_seconds / dvc_seconds)
        runs.append(run_seconds / dvc_seconds)
        log.info(
            "  ratio airflow / dvc:       %7.2fx whole command, %.2fx DAG run",
            whole[-1],
            runs[-1],
        )
    log.info(
        "median ratio over %d pair(s): %.2fx whole command, %.2fx DAG run (goal: at most 1.3x)",
        args.repeats,
        statistics.median(whole),
        statistics.median(runs),
    )


def measure(sync: str) -> tuple[float, float, float]:
    """One pair from scratch: dvc repro seconds, airflow dags test seconds, DAG run seconds."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="airflow-overhead-") as tmp:
        plain = make_repo_copy(Path(tmp) / "dvc")
        orchestrated = make_repo_copy(Path(tmp) / "airflow")
        for copy in (plain, orchestrated):
            copy.python("-m", "pipelines.simulate", "--if-empty", check=True)
        env = {
            "AIRFLOW_HOME": str(Path(tmp) / "airflow_home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(orchestrated.root / "dags"),
            "RETRAIN_PROJECT_DIR": str(orchestrated.root),
            "RETRAIN_DVC_SYNC": sync,
            "PYTHONPATH": str(orchestrated.root),
        }
        orchestrated.run(str(bin_dir / "airflow"), "db", "migrate", env_extra=env, check=True)
        log.info("dvc repro ...")
        dvc_seconds = timed(plain, str(bin_dir / "dvc"), "repro")
        log.info("airflow dags test retrain (sync %s) ...", sync)
        airflow_seconds = timed(
            orchestrated, str(bin_dir / "airflow"), "dags", "test", "retrain", env=env
        )
        run_seconds = dag_run_seconds(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    return dvc_seconds, airflow_seconds, run_seconds


def dag_run_seconds(database: Path) -> float:
    """First task start to last task end of the one DAG run in ``database``."""
    import sqlite3
    from datetime import datetime

    with sqlite3.connect(database) as db:
        started, ended = db.execute(
            "SELECT min(start_date), max(end_date) FROM task_instance WHERE dag_id = 'retrain'"
        ).fetchone()
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()


if __name__ == "__main__":
    main()
