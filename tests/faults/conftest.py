"""The fault-injection tier: real register and registry processes killed at named points
(``PIPELINE_FAULT_AT``, ``pipelines.faults``), then run again; the state must reconcile.

They share the integration tier's one tiny pipeline run and run register directly on a copy
of its outputs, never the whole pipeline again.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import RepoCopy, Run, tiny_pipeline


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory) -> tuple[RepoCopy, Run]:
    """The integration tier's pipeline run: the same one, not a second."""
    return tiny_pipeline(tmp_path_factory)
