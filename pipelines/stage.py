"""Entry-point runner shared by every ``python -m pipelines.<stage>``.

It configures logging once and turns any failure into one line on stderr and a non-zero
exit, which is what DVC and Airflow show to the user. A pipeline stage's failure is also
recorded in this execution's MLflow run (``pipelines.tracking``). SIGTERM, which Airflow and
``timeout`` send, ends the stage like Ctrl-C, so its run is marked FAILED (tagged as killed)
rather than left RUNNING. The signal is also remembered: code that catches too much (an ``except
BaseException``, a handler run where Python can only print an exception) cannot turn a
terminated stage into a success, because :func:`raise_if_terminated` runs before every
commit point (an alias move) and the runner exits non-zero whatever ``main()`` returned.
Inside :func:`deferred_termination` (a commit: alias moved and audited) a SIGTERM waits for
the block's end, so a transaction is never cut in half by it.

Before a pipeline stage (one of ``dvc.yaml``'s) runs its main(), it ties its life to whoever
started it, takes the pipeline and stage locks (pipelines.run_guard), removes what an
interrupted write left among its outputs, and checks its inputs' content hashes against
``dvc.lock`` (pipelines.integrity): under DVC a mismatch stops it, run by hand it is a warning.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipelines import integrity, run_guard
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
        if record_failure:
            guard(name)
        main()
        raise_if_terminated()
    except run_guard.RunLocked as exc:
        _fail(name, str(exc), record=False)  # the MLflow run may be the lock holder's
    except PipelineError as exc:
        _fail(name, str(exc), record_failure)
    except KeyboardInterrupt:
        orphan = run_guard.parent_gone()
        reason = "stopped: the process that started it is gone" if orphan else "interrupted"
        _fail(name, reason, record_failure and not orphan, interrupted=True)
    except Exception as exc:  # noqa: BLE001 - the last line must be a readable reason
        log.exception("stage %s crashed", name)
        _fail(name, f"{type(exc).__name__}: {exc}", record_failure)
    sys.exit(0)


def guard(name: str) -> None:
    """Everything a ``dvc.yaml`` stage does before its main(); nothing for other commands."""
    if integrity.stage_entry(name) is None:
        return
    owner = run_guard.run_owner()
    run_guard.die_with_parent(owner)
    run_guard.take_pipeline_lock(owner)
    run_guard.take_stage_lock(name)
    run_guard.clean_temporaries(integrity.stage_outputs(name))
    started = time.perf_counter()
    try:
        checked = integrity.verify_inputs(name)
    except PipelineError as exc:
        if "DVC_STAGE" in os.environ:
            raise
        # Run by hand, a stage may be fed other inputs on purpose (experiments, tests); under
        # DVC (and Airflow, which runs DVC) its inputs must be the ones dvc.lock records.
        log.warning("run outside DVC, so continuing: %s", exc)
        return
    log.info(
        "verified %d input(s) against dvc.lock in %.2fs",
        len(checked),
        time.perf_counter() - started,
    )


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
