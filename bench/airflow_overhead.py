"""The retrain DAG under `airflow dags test` against `dvc repro`, same tiny configuration.

Both run from scratch in their own copy of the repository, on the same simulated data, one
after the other in this process. The Airflow run includes what distribution costs: every
task pulls its inputs from and pushes its outputs to the DVC remote (a local folder here).
The Airflow metadata DB is migrated before the clock starts, as it is in a deployment.

    python bench/airflow_overhead.py [--sync remote|off]
"""

from __future__ import annotations

import argparse
import logging
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
            "RETRAIN_DVC_SYNC": args.sync,
            "PYTHONPATH": str(orchestrated.root),
        }
        orchestrated.run(str(bin_dir / "airflow"), "db", "migrate", env_extra=env, check=True)
        log.info("dvc repro ...")
        dvc_seconds = timed(plain, str(bin_dir / "dvc"), "repro")
        log.info("airflow dags test retrain (sync %s) ...", args.sync)
        airflow_seconds = timed(
            orchestrated, str(bin_dir / "airflow"), "dags", "test", "retrain", env=env
        )
    log.info("dvc repro:                 %7.1f s", dvc_seconds)
    log.info(
        "airflow dags test retrain: %7.1f s  (DVC remote sync: %s)", airflow_seconds, args.sync
    )
    log.info(
        "ratio airflow / dvc:       %7.2fx  (goal: at most 1.3x)", airflow_seconds / dvc_seconds
    )


if __name__ == "__main__":
    main()
