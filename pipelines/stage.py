"""Entry-point runner shared by every ``python -m pipelines.<stage>``.

It configures logging once and turns any failure into one line on stderr and a non-zero
exit, which is what DVC and Airflow show to the user. A pipeline stage's failure is also
recorded in this execution's MLflow run (``pipelines.tracking``). SIGTERM, which Airflow and
``timeout`` send, ends the stage like Ctrl-C, so its run is marked KILLED rather than left
RUNNING. The signal is also remembered: code that catches too much (an ``except
BaseException``, a handler run where Python can only print an exception) cannot turn a
terminated stage into a success, because :func:`raise_if_terminated` runs before every
commit point (an alias move) and the runner exits non-zero whatever ``main()`` returned.
Inside :func:`deferred_termination` (a commit: alias moved and audited) a SIGTERM waits for
the block's end, so a transaction is never cut in half by it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipelines.errors import PipelineError, redact, redact_handlers

log = logging.getLogger(__name__)

_signals = {"terminated": False, "deferred": 0}


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
        raise_if_terminated()
    except PipelineError as exc:
        _fail(name, str(exc), record_failure)
    except KeyboardInterrupt:
        _fail(name, "interrupted", record_failure, interrupted=True)
    except Exception as exc:  # noqa: BLE001 - the last line must be a readable reason
        log.exception("stage %s crashed", name)
        _fail(name, f"{type(exc).__name__}: {exc}", record_failure)
    sys.exit(0)


def raise_if_terminated() -> None:
    """Raise KeyboardInterrupt if a SIGTERM arrived, even one whose interrupt was swallowed."""
    if _signals["terminated"]:
        raise KeyboardInterrupt("terminated by SIGTERM")


@contextmanager
def deferred_termination() -> Iterator[None]:
    """A block a SIGTERM does not cut: it is acted on when the block ends."""
    raise_if_terminated()
    _signals["deferred"] += 1
    try:
        yield
    finally:
        _signals["deferred"] -= 1
    raise_if_terminated()


def _interrupt(signum: int, frame) -> None:
    _signals["terminated"] = True
    if not _signals["deferred"]:
        raise KeyboardInterrupt


def _fail(name: str, reason: str, record: bool, interrupted: bool = False) -> None:
    one_line = redact(" ".join(reason.split()))
    if record:
        from pipelines import tracking

        tracking.record_failure(name, one_line, interrupted)
    sys.stderr.write(f"ERROR [{name}] {one_line}\n")
    sys.stderr.flush()
    sys.exit(1)
