"""Crash injection for the fault tests: ``PIPELINE_FAULT_AT=<stage>:<key>=<value>`` makes the
matching ``fault_point`` SIGKILL its own process, the way a lost machine or an OOM kill would.
Unset (always, outside tests), every fault point is a no-op."""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


def fault_point(stage: str, **where: object) -> None:
    spec = os.environ.get("PIPELINE_FAULT_AT")
    if not spec:
        return
    here = f"{stage}:" + ",".join(f"{key}={value}" for key, value in where.items())
    if spec == here:
        log.warning("PIPELINE_FAULT_AT=%s: killing this process", spec)
        os.kill(os.getpid(), signal.SIGKILL)
