"""What register and the registry commands settle first, under the registry lock, after a crash.

A process killed outright (SIGKILL, OOM, power) cannot clean up after itself. The next start
of ``python -m pipelines.register`` or ``python -m pipelines.registry`` repairs what it left:

- its MLflow runs still RUNNING are reaped: FAILED, tagged ``pipeline.reaped``
  (``pipelines.reaper``), when their process on this host is gone, and their logged
  models still PENDING (a kill inside ``log_model``) are finalized FAILED;
- its pending alias move is completed when the alias did move and abandoned when it did not
  (``pipelines.promotion.settle_intents``), so history holds every move exactly once;
- a version it registered but never gated (killed between "Created version" and the alias)
  is gated by the next register when it is that register's own lineage (same code, data,
  params and model: found by ``lineage_key``, never registered twice); a version of another
  lineage is marked ``gate_decision=rejected``, because the data it would be judged on is
  gone, and it never serves. Register also deletes its DVC outputs before touching the
  registry, so after such a kill ``dvc repro`` reruns register instead of "up to date".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipelines import promotion, reaper

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

LINEAGE_TAG = "lineage_key"
REJECTED = "rejected"


def settle(client: MlflowClient, model: str, experiment: str) -> None:
    """Reap dead runs and settle interrupted alias moves; call with the registry lock held."""
    reaper.reap_dead_runs(client, experiment)
    promotion.settle_intents(client, model)


def reject_ungated(client: MlflowClient, model: str, keep_lineage: str) -> list[str]:
    """Mark rejected the pipeline's versions that never got a gate decision, except the one
    of ``keep_lineage`` (the caller gates that one); returns the versions marked."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{model}'")
    except MlflowException:
        return []  # no registered model yet
    rejected = []
    for version in versions:
        tags = version.tags
        if "model_fingerprint" not in tags or promotion.DECISION_TAG in tags:
            continue
        if tags.get(LINEAGE_TAG) == keep_lineage:
            continue
        number = str(version.version)
        log.warning("%s v%s was never gated (its register was killed); rejecting it", model, number)
        client.set_model_version_tag(
            model,
            number,
            "gate_reason",
            "its register was interrupted before the champion gate ran, and a later register "
            "of another lineage superseded it; never served",
        )
        client.set_model_version_tag(model, number, promotion.DECISION_TAG, REJECTED)
        rejected.append(number)
    return rejected


def find_version(client: MlflowClient, model: str, key: str) -> ModelVersion | None:
    """The version registered for lineage ``key``, if any (the oldest, should an earlier
    release without the registry lock have made two)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{model}' and tags.{LINEAGE_TAG}='{key}'")
    except MlflowException:
        return None  # the registered model does not exist yet
    if not found:
        return None
    oldest = min(found, key=lambda version: int(version.version))
    return client.get_model_version(model, oldest.version)
