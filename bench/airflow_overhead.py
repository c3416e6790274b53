"""The retrain DAG under `airflow dags test` against `dvc repro`, same tiny configuration.

Both run from scratch in their own copy of the repository, on the same simulated data, one
after the other in this process. The Airflow run includes what distribution costs: every
task pulls its inputs from and pushes its outputs to the DVC remote (a local folder here).
The Airflow metadata DB is migrated before the clock starts, as it is in a deployment.

Three Airflow figures against ``dvc repro``:

- the whole ``airflow dags test`` command;
- the DAG run itself as the metadata DB records it (first task start to last task end),
  without the CLI's own start-up (importing Airflow, parsing the DAG, creating the run),
  which a deployment's long-running scheduler does not pay per run;
- the orchestration overhead alone. Both sides run the very same stage commands, whose run
  time varies by 15% or more between two runs on this shared 2-core machine, as much as the
  overhead being measured. So each run's output is timestamped line by line, each stage's
  own work is timed the same way on both sides (DVC's ``Running stage 'X'`` to its
  ``Updating lock file``: the stage process plus hashing its outputs), and the rest of each
  run is that orchestrator's overhead. The figure is (stage work + Airflow's overhead) /
  (stage work + DVC's overhead), with the stage work of the ``dvc repro`` run.

    python -m bench.airflow_overhead [--sync remote|off] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import RepoCopy, make_repo_copy  # the tiny config

log = logging.getLogger("bench.airflow_overhead")
STAGE_STARTS = re.compile(r"Running stage '([^']+)'")
STAGE_ENDS = "Updating lock file"


@dataclass
class Timing:
    total: float
    stages: dict[str, float]

    @property
    def overhead(self) -> float:
        return self.total - sum(self.stages.values())


def stage_seconds(stamped_lines: list[tuple[float, str]]) -> dict[str, float]:
    """Each stage's ``Running stage`` to its ``Updating lock file``, from timestamped output."""
    seconds, running = {}, None
    for stamp, line in stamped_lines:
        started = STAGE_STARTS.search(line)
        if started:
            running = (started.group(1), stamp)
        elif STAGE_ENDS in line and running:
            seconds[running[0]] = stamp - running[1]
            running = None
    return seconds


def timed(copy: RepoCopy, *command: str, env: dict[str, str] | None = None) -> Timing:
    """Run ``command`` in ``copy``, stamping each output line as it arrives."""
    # Unbuffered, so that DVC's stage lines arrive when they are written, not at exit.
    extra = (env or {}) | {"PYTHONUNBUFFERED": "1"}
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    with subprocess.Popen(
        list(command),
        cwd=copy.root,
        env=copy.env(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - started, line))
    total = time.perf_counter() - started
    if process.returncode != 0:
        tail = "".join(line for _, line in lines[-60:])
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{tail}")
    return Timing(total, stage_seconds(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync", choices=["remote", "off"], default="remote")
    parser.add_argument(
        "--repeats", type=int, default=1, help="pairs of runs; the median ratios are reported"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    whole, runs, overheads = [], [], []
    for repeat in range(1, args.repeats + 1):
        dvc, airflow, run_seconds = measure(args.sync)
        work = sum(dvc.stages.values())
        log.info("pair %d of %d (DVC remote sync: %s)", repeat, args.repeats, args.sync)
        log.info(
            "  dvc repro:                 %6.1f s  (stage work %.1f s, overhead %.1f s)",
            dvc.total,
            work,
            dvc.overhead,
        )
        log.info(
            "  airflow dags test retrain: %6.1f s  (stage work %.1f s, overhead %.1f s)",
            airflow.total,
            sum(airflow.stages.values()),
            airflow.overhead,
        )
        log.info(
            "    of which the DAG run:    %6.1f s  (first task start to last end)", run_seconds
        )
        for stage, seconds in dvc.stages.items():
            log.info(
                "    %-10s stage work  dvc %5.1f s  airflow %5.1f s",
                stage,
                seconds,
                airflow.stages.get(stage, float("nan")),
            )
        whole.append(airflow.total / dvc.total)
        runs.append(run_seconds / dvc.total)
        overheads.append((work + airflow.overhead) / (work + dvc.overhead))
        log.info(
            "  ratio airflow / dvc: %.2fx whole command, %.2fx DAG run, %.2fx overhead alone",
            whole[-1],
            runs[-1],
            overheads[-1],
        )
    log.info(
        "median over %d pair(s): %.2fx whole command, %.2fx DAG run, %.2fx with the same stage "
        "work (goal: at most 1.3x)",
        args.repeats,
        statistics.median(whole),
        statistics.median(runs),
        statistics.median(overheads),
    )


def measure(sync: str) -> tuple[Timing, Timing, float]:
    """One pair from scratch: the dvc repro and airflow dags test timings, DAG run seconds."""
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
        dvc = timed(plain, str(bin_dir / "dvc"), "repro")
        log.info("airflow dags test retrain (sync %s) ...", sync)
        airflow = timed(orchestrated, str(bin_dir / "airflow"), "dags", "test", "retrain", env=env)
        if airflow.stages.keys() != dvc.stages.keys():
            raise SystemExit(
                f"stages differ: dvc {list(dvc.stages)}, airflow {list(airflow.stages)}"
            )
        run_seconds = dag_run_seconds(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    return dvc, airflow, run_seconds


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
