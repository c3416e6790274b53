"""The champion gate run by register: the challenger (the version just registered) and the
current ``@champion`` loaded from the registry, files verified, and scored on the same test
rows; the decision (``pipelines.champion_gate``) on their paired difference; and its record:
version tags, the audited alias move (``pipelines.promotion``), the run's metrics and tags.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pandas as pd

from pipelines import champion_gate, gates, promotion
from pipelines.artifacts import load_verified_model
from pipelines.champion_gate import Decision, GateMetrics
from pipelines.config import Params, RegisterParams
from pipelines.contracts import DecisionThreshold, Disparity, ServedVariant
from pipelines.errors import PipelineError, brief
from pipelines.lineage import git_commit
from pipelines.promotion import CHALLENGER, CHAMPION, DECISION_TAG
from pipelines.schema import Schema

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """What register reads from the earlier stages' outputs."""

    schema: Schema
    test: pd.DataFrame
    threshold: DecisionThreshold
    served: ServedVariant


@dataclass(frozen=True)
class Gate:
    """One run of the champion gate on the current test split, and its decision."""

    challenger: GateMetrics
    champion: GateMetrics | None
    champion_version: str | None
    champion_error: str | None
    decision: Decision

    @property
    def promote(self) -> bool:
        return self.decision.promote

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def alias(self) -> str:
        return CHAMPION if self.promote else CHALLENGER

    @property
    def comparison(self) -> dict | None:
        """The paired comparison as a record, or None when there was none."""
        paired = self.decision.comparison
        return paired.record() if paired is not None else None


def predict(model_uri: str, test: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Load a registered model as pyfunc (its files verified against their recorded hashes)
    and predict test's raw rows: each row's ``probability`` and ``label`` at the model's own
    threshold."""
    return load_verified_model(model_uri).predict(test[schema.feature_columns])


def run_gate(client: MlflowClient, params: Params, number: str, inputs: Inputs) -> Gate:
    """Score the challenger (it must serve) and the champion (if it still can) on the same
    rows, and decide on their paired difference."""
    cfg, bins = params.register_, params.evaluate.calibration_bins
    name, labels = cfg.model_name, inputs.test[inputs.schema.target].to_numpy()
    try:
        challenged = predict(f"models:/{name}/{number}", inputs.test, inputs.schema)
    except Exception as exc:
        client.set_model_version_tag(name, number, DECISION_TAG, "unservable")
        raise PipelineError(
            f"{name} v{number} does not load from the registry and predict the test "
            f"split ({type(exc).__name__}: {exc}); no alias was moved"
        ) from exc
    challenger = champion_gate.gate_metrics(labels, challenged, bins)
    champion_version = promotion.alias_holder(client, name, CHAMPION)
    champion, champion_error = None, None
    if champion_version is not None:
        try:
            if not promotion.registered_by_pipeline(client, name, champion_version):
                raise PipelineError("it was not registered by this pipeline, so it is not loaded")
            held = predict(f"models:/{name}/{champion_version}", inputs.test, inputs.schema)
            champion = champion_gate.gate_metrics(labels, held, bins)
        except Exception as exc:  # noqa: BLE001 - reported below, the champion is kept
            champion_error = f"{type(exc).__name__}: {brief(exc)}"
            log.error(
                "champion v%s cannot score the current test split: %s",
                champion_version,
                champion_error,
            )
    if champion_error and champion_version is not None:
        decision = champion_gate.champion_unscorable(champion_version, champion_error)
    else:
        paired = None
        if champion is not None:
            new, old = (p["probability"].to_numpy(dtype="float64") for p in (challenged, held))
            paired = champion_gate.compare(labels, new, old, cfg, params.seed)
        disparity = Disparity.load().columns if cfg.max_disparity is not None else {}
        fairness = champion_gate.disparity_checks(disparity, cfg.max_disparity)
        decision = champion_gate.gate_decision(challenger, champion, cfg, paired, fairness)
    return Gate(challenger, champion, champion_version, champion_error, decision)


def record_gate(
    client: MlflowClient, cfg: RegisterParams, number: str, run_id: str, gate: Gate
) -> None:
    """Tag the version, move its alias (audited), and log the decision in the run."""
    import mlflow

    name = cfg.model_name
    challenger = asdict(gate.challenger)
    champion = asdict(gate.champion) if gate.champion is not None else None
    check_tags = gates.as_tags("champion", gate.decision.checks)
    for key, value in check_tags.items():
        log.info("%s %s", key, value)
    for key, value in {
        "gate_reason": gate.reason[:4000],
        **{f"test_{k}": f"{v:.6f}" for k, v in challenger.items()},
        **check_tags,
    }.items():
        client.set_model_version_tag(name, number, key, value)
    promotion.move_alias(
        client,
        name,
        gate.alias,
        number,
        action="promote" if gate.promote else "challenge",
        reason=gate.reason,
        run_id=run_id,
        git_commit=git_commit(),
        metrics={number: challenger}
        | ({gate.champion_version: champion} if champion and gate.champion_version else {}),
        comparison=gate.comparison,
        # Tagged inside the move's transaction: it tells a retry the gate ran for the version.
        decision=gate.alias,
    )
    logged = {f"gate.challenger_{k}": v for k, v in challenger.items()}
    logged |= {f"gate.champion_{k}": v for k, v in champion.items()} if champion else {}
    paired = gate.decision.comparison
    logged |= paired.metrics() if paired is not None else {}
    mlflow.log_metrics(logged | {"gate.promoted": float(gate.promote)})
    verdict = "promoted to @champion" if gate.promote else "kept as @challenger, champion unchanged"
    mlflow.set_tags(
        check_tags
        | ({"gate.test": paired.tests()} if paired is not None else {})
        | {
            "gate_reason": gate.reason[:4000],
            "gate_decision": gate.alias,
            "stage.register": "done",
            # The run's Description in the MLflow UI: the outcome a reviewer looks for first.
            "mlflow.note.content": f"{name} v{number} {verdict}: {gate.reason[:3000]}",
        }
    )
    promotion.log_audit_artifacts(client, name, run_id)
