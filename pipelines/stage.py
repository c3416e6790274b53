"""Entry-point runner shared by every ``python -m pipelines.<stage>``.

It configures logging once and turns any failure into one line on stderr and a non-zero
exit, which is what DVC and Airflow show to the user. A pipeline stage's failure is also
recorded in this execution's MLflow run (``pipelines.tracking``). SIGTERM, which Airflow and
``timeout`` send, ends the stage like Ctrl-C, so its run is marked KILLED rather than left
RUNNING.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from pipelines.errors import PipelineError, redact, redact_handlers

log = logging.getLogger(__name__)


def configure_logging() -> None:
    level = os.environ.get("PIPELINE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    redact_handlers(logging.getLogger())
    # botocore's debug logs print request signatures and credentials; never let them through.
    for noisy in (
        "botocore",
        "boto3",
        "urllib3",
        "s3transfer",
        "absl",
        "h5py",
        "matplotlib",
        "great_expectations",
        "alembic",
        "mlflow.store",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def run_stage(name: str, main: Callable[[], None], *, record_failure: bool = True) -> None:
    """Run a stage's main(); exit 0 on success, 1 with a one-line reason otherwise.

    ``record_failure`` is off for the helpers that are not pipeline stages (simulate,
    summary, the registry commands)."""
    configure_logging()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except PipelineError as exc:
        _fail(name, str(exc), record_failure)
    except KeyboardInterrupt:
        _fail(name, "interrupted", record_failure, interrupted=True)
    except Exception as exc:  # noqa: BLE001 - the last line must be a readable reason
        log.exception("stage %s crashed", name)
        _fail(name, f"{type(exc).__name__}: {exc}", record_failure)
    sys.exit(0)


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def _fail(name: str, reason: str, record: bool, interrupted: bool = False) -> None:
    one_line = redact(" ".join(reason.split()))
    if record:
        from pipelines import tracking

        tracking.record_failure(name, one_line, interrupted)
    sys.stderr.write(f"ERROR [{name}] {one_line}\n")
    sys.stderr.flush()
    sys.exit(1)
