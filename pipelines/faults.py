"""Named fault points for the fault-injection tests (``tests/faults``).

``PIPELINE_FAULT_AT=<point>`` SIGKILLs this process when it reaches ``<point>`` (a register
step such as ``after_alias``, or a training epoch such as ``train:epoch=3``), as a power cut
or the OOM killer would; ``PIPELINE_FAULT_AT=<point>:term-swallowed`` delivers a SIGTERM
there and swallows the interrupt it raises, as a library catching too much would, to show
that a terminated stage still exits non-zero and promotes nothing. Unset (always, outside the
tests), a point costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

FAULT_ENV = "PIPELINE_FAULT_AT"


def point(name: str) -> None:
    """A place where a crash must leave a state the next start can reconcile."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    if wanted not in (name, f"{name}:term-swallowed"):
        return
    if wanted.endswith(":term-swallowed"):
        log.warning("fault injection: SIGTERM at %s, interrupt swallowed", name)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:
            pass
        return
    log.warning("fault injection: SIGKILL at %s", name)
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)
