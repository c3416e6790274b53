"""The monitoring reference of a model version: logged with it at registration, read back by
monitor, so a window is always compared with the model that scored it, not with today's data.

It holds the drift profile of the data the version was trained from (validate's
``data/reference/<dataset>.json``: decile bins of each numeric feature, shares of each
category), the distribution of the version's own probabilities on the validation split
(scored through the registered pyfunc, so it is the served flavour's), and the columns
monitor needs to join late labels. The quality monitor compares against (test PR-AUC and
recall) is what register already tags the version with (``test_pr_auc``, ``test_recall``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from pipelines import drift, paths
from pipelines.config import DataParams
from pipelines.datasets import reference_path
from pipelines.errors import PipelineError
from pipelines.io import read_json, read_parquet
from pipelines.schema import Schema

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

ARTIFACT = "monitoring/reference.json"
# The version tags register records the served model's test metrics in.
RECORDED_TAGS = {"pr_auc": "test_pr_auc", "recall": "test_recall"}


class Reference(BaseModel):
    """What monitor compares a window with, for one model version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str
    version: str
    registered_at: datetime
    features: dict
    scores: dict
    id_column: str | None
    target: str
    positive_label: str
    label_values: list[str]
    recorded: dict[str, float]
    # The lower bounds of the recorded metrics' bootstrap intervals on the test split: on a
    # split with few positives the point value is noise, and judging a window against it
    # flags an ordinary window as degraded.
    recorded_low: dict[str, float] = {}


def build(features: dict, validation_scores, schema: Schema) -> dict:
    """The artifact's contents: the training data's drift profile, the validation scores'
    bins, and the columns needed to join labels."""
    ids = schema.features("id")
    return {
        "features": features,
        "scores": drift.binned_profile(validation_scores) | {"rows": len(validation_scores)},
        "id_column": ids[0] if ids else None,
        "target": schema.target,
        "positive_label": schema.positive_label,
        "label_values": schema.label_values,
    }


def log_reference(model_uri: str, schema: Schema, data: DataParams) -> None:
    """Score the validation split with the logged model and log the reference into the
    active MLflow run (register calls it once per new version, before registering it)."""
    import mlflow

    validation = read_parquet(paths.SPLIT_VAL)
    scores = mlflow.pyfunc.load_model(model_uri).predict(validation[schema.feature_columns])
    content = build(read_json(reference_path(data)), scores["probability"].to_numpy(), schema)
    mlflow.log_dict(content, ARTIFACT)
    log.info("monitoring reference logged (%d validation scores)", len(validation))


def champion_version(client: MlflowClient, name: str, version: str | None) -> str:
    """``version`` when given, else the version holding ``@champion``; one line if none."""
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            return str(client.get_model_version(name, version).version)
        return str(client.get_model_version_by_alias(name, "champion").version)
    except MlflowException as exc:
        which = f"v{version}" if version is not None else "@champion"
        raise PipelineError(
            f"model {name!r} has no {which} in the registry; run the pipeline first (make run)"
        ) from exc


def load(client: MlflowClient, name: str, version: str) -> Reference:
    """The reference logged with ``name`` v``version``, its recorded metrics and age."""
    import tempfile

    from mlflow.exceptions import MlflowException

    held = client.get_model_version(name, version)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            local = client.download_artifacts(str(held.run_id), ARTIFACT, scratch)
        except (MlflowException, OSError) as exc:
            raise PipelineError(
                f"{name} v{version} has no {ARTIFACT} in run {held.run_id} (registered before "
                "monitoring existed?); retrain to register a version that has one"
            ) from exc
        content = json.loads(Path(local).read_text())
    recorded = {
        metric: float(held.tags[tag]) for metric, tag in RECORDED_TAGS.items() if tag in held.tags
    }
    run_metrics = client.get_run(str(held.run_id)).data.metrics
    recorded_low = {
        metric: float(run_metrics[f"{tag}_ci_low"])
        for metric, tag in RECORDED_TAGS.items()
        if f"{tag}_ci_low" in run_metrics
    }
    return Reference(
        model_name=name,
        version=str(version),
        registered_at=datetime.fromtimestamp(held.creation_timestamp / 1000, UTC),
        recorded=recorded,
        recorded_low=recorded_low,
        **content,
    )
