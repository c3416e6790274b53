"""Online serving of a registered version over REST, from a verified copy.

    python -m pipelines.serve [--model-uri models:/<name>@champion] [--host 127.0.0.1] [--port 8000]

``mlflow models serve -m models:/...`` would load whatever the artifact store holds now, and
loading the pyfunc runs its ``serving.py``. This command downloads the version into a private
folder, checks every file against the SHA-256 manifest recorded at registration
(``pipelines.artifacts``), and only then becomes ``mlflow models serve -m <that folder>
--env-manager local`` (exec: signals and the exit status are the server's own). The endpoint
is MLflow's: ``POST /invocations`` with ``dataframe_records`` of raw feature rows, ``GET /ping``.
The folder stays for the server's life, under the system temp folder (``served-model-*``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from pipelines import tracking
from pipelines.artifacts import download_verified
from pipelines.config import load_params
from pipelines.promotion import CHAMPION
from pipelines.stage import run_stage

log = logging.getLogger(__name__)


def serve_command(model_folder: Path, host: str, port: int, workers: int) -> list[str]:
    """The ``mlflow models serve`` command line for a verified local model folder."""
    mlflow_cli = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return [
        mlflow_cli,
        "models",
        "serve",
        "--env-manager",
        "local",
        "-m",
        str(model_folder),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.serve", description=__doc__)
    parser.add_argument("--model-uri", help="default: models:/<register.model_name>@champion")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uri = args.model_uri or f"models:/{load_params().register_.model_name}@{CHAMPION}"
    folder = download_verified(uri, Path(tempfile.mkdtemp(prefix="served-model-")))
    log.info("%s verified against its manifest; serving it on %s:%d", uri, args.host, args.port)
    log.info("tracking store: %s", tracking.display_uri())
    command = serve_command(folder, args.host, args.port, args.workers)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    run_stage("serve", main, record_failure=False)
