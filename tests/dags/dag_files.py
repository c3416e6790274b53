"""What the DAG tests share: the DagBag of dags/, and the dag-processor's parse-time probe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Modules a DAG file must not import at parse time: the dag-processor parses it every few
# seconds, and each of these costs seconds.
HEAVY_MODULES = [
    "tensorflow",
    "great_expectations",
    "mlflow",
    "pipelines",
    "dvc",
    "sklearn",
    "pandas",
]


def load_dagbag(tmp_path_factory):
    os.environ["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow_home"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def parse_probe(dag_file: str, preloaded: list[str]) -> dict:
    """The best of three parses of ``dags/<dag_file>`` in a fresh interpreter, timed the way
    the dag-processor parses (``preloaded``, Airflow's own modules, already imported), and the
    heavy modules it pulled in."""
    probe = f"""
import json, runpy, sys, time
import {", ".join(preloaded)}
timings = []
for _ in range(3):
    started = time.perf_counter()
    runpy.run_path({str(REPO / "dags" / dag_file)!r})
    timings.append(time.perf_counter() - started)
heavy = [m for m in sys.modules if m.split(".")[0] in {HEAVY_MODULES!r}]
print(json.dumps({{"seconds": min(timings), "heavy": heavy}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(done.stdout.splitlines()[-1])
