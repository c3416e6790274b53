"""The fault-injection tier: real register and registry processes killed at named points
(``PIPELINE_FAULT_AT``, ``pipelines.faults``), then run again; the state must reconcile.

They share the integration tier's one tiny pipeline run (``pipeline_repo``) and run register
directly on a copy of its outputs, never the whole pipeline again.
"""

from __future__ import annotations

from tests.integration.conftest import pipeline_repo  # noqa: F401 - the shared pipeline run
