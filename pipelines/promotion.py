"""Promotion: the registered model's aliases and their audit trail.

Whether a challenger replaces ``@champion`` is ``pipelines.champion_gate``'s decision. Every
move of an alias goes through :func:`move_alias`, one recoverable transaction: the intent is
recorded first in the append-only audit record (``pipelines.audit``), then the alias moves,
the version is tagged with the gate's decision, and the intent is marked done. A process
that dies midway leaves a pending intent, which :func:`settle_intents` (run by
``pipelines.reconcile`` on the next start, under the registry lock) completes when the alias
did move and abandons when it did not, so history records every move exactly once. A move to
the version that already holds the alias is no move and records nothing. :func:`rollback`
walks the history back one champion, after :func:`check_serves`.

Register runs the gate; ``python -m pipelines.registry`` is the command line for history,
versions and rollback.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipelines import audit, faults, plots
from pipelines.champion_gate import GATE_METRICS
from pipelines.errors import PipelineError, brief
from pipelines.stage import deferred_termination, raise_if_terminated

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISION_TAG = "gate_decision"


def history(client: MlflowClient, name: str) -> list[dict]:
    """Every alias change of ``name`` that happened, oldest first (see ``pipelines.audit``)."""
    return audit.events(client, name)


def alias_holder(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def move_alias(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    *,
    action: str,
    reason: str,
    run_id: str | None,
    git_commit: str,
    metrics: dict[str, dict] | None = None,
    comparison: dict | None = None,
    decision: str | None = None,
) -> dict | None:
    """Point ``alias`` at ``version`` as one audited transaction (see the module doc), with
    the champion gate's paired ``comparison`` when there was one; ``decision`` is also tagged
    on the version as ``gate_decision``. Returns the event, or None when ``version`` held the
    alias already (nothing moved, nothing recorded). Call with the registry lock held."""
    previous = alias_holder(client, name, alias)
    if previous == str(version):
        log.info("%s v%s holds @%s already; nothing to move", name, version, alias)
        if decision:
            client.set_model_version_tag(name, str(version), DECISION_TAG, decision)
        return None
    event = {
        "action": action,
        "alias": alias,
        "from_version": previous,
        "to_version": str(version),
        "decision": decision,
        "reason": reason,
        "metrics": metrics or {},
        "comparison": comparison or {},
        "run_id": run_id,
        "git_commit": git_commit,
    }
    raise_if_terminated()  # a SIGTERM that was swallowed somewhere still stops the commit
    intent = audit.begin(client, name, event)
    faults.point("after_intent")
    with deferred_termination():
        _commit(client, name, event, intent)
    log.info("%s @%s: v%s -> v%s (%s)", name, alias, previous, version, reason)
    return event


def _commit(
    client: MlflowClient, name: str, event: dict, intent: str, note: str | None = None
) -> None:
    """Move the alias, tag the decision, mark the intent done; each step may be repeated."""
    version = event["to_version"]
    if alias_holder(client, name, event["alias"]) != version:
        client.set_registered_model_alias(name, event["alias"], version)
    faults.point("after_alias")
    if event.get("decision"):
        client.set_model_version_tag(name, version, DECISION_TAG, event["decision"])
    audit.finish(client, intent, note)
    faults.point("after_audit")


def settle_intents(client: MlflowClient, name: str) -> None:
    """Complete or abandon the intents a dead process left. Call with the registry lock
    held: then no live process is between recording an intent and finishing it."""
    for intent, event in audit.pending(client, name):
        if event is None:
            audit.abandon(client, intent, "interrupted before the intent was fully recorded")
            continue
        holder = alias_holder(client, name, event["alias"])
        moved = f"@{event['alias']} v{event['from_version'] or '-'} -> v{event['to_version']}"
        if holder == event["to_version"]:
            log.warning("%s: completing the interrupted move %s", name, moved)
            _commit(client, name, event, intent, note="completed after an interruption")
        else:
            log.warning(
                "%s: abandoning the interrupted move %s (alias on v%s)", name, moved, holder
            )
            audit.abandon(client, intent, f"interrupted before the alias moved; it is on v{holder}")


def champion_lineage(events: list[dict]) -> list[str]:
    """The champions still to fall back on, oldest first; the last one is serving now.

    A promotion pushes its version; a rollback pops the version it rolled back from, so a
    second rollback keeps walking back instead of undoing the first."""
    stack: list[str] = []
    for event in events:
        if event["alias"] != CHAMPION:
            continue
        if event["action"] == "rollback" and stack:
            stack.pop()
        elif event["action"] != "rollback":
            stack.append(event["to_version"])
    return stack


def rollback(client: MlflowClient, name: str, git_commit: str, run_id: str | None = None) -> dict:
    """Move ``champion`` back to the previous champion, after checking that it still serves."""
    current = alias_holder(client, name, CHAMPION)
    if current is None:
        raise PipelineError(f"registered model {name!r} has no @champion to roll back")
    stack = champion_lineage(history(client, name))
    if len(stack) < 2 or stack[-1] != current:
        raise PipelineError(
            f"registered model {name!r}: no previous champion to roll back to from v{current} "
            f"(recorded champions: {stack or 'none'})"
        )
    target = stack[-2]
    if target == current:
        raise PipelineError(
            f"registered model {name!r}: v{current} is already @champion; nothing to roll back"
        )
    check_serves(client, name, target)
    event = move_alias(
        client,
        name,
        CHAMPION,
        target,
        action="rollback",
        reason=f"rollback from v{current} to the previous champion v{target}",
        run_id=run_id,
        git_commit=git_commit,
        metrics={v: version_metrics(client, name, v) for v in (current, target)},
    )
    assert event is not None  # target differs from the holder, checked above
    return event


def registered_by_pipeline(client: MlflowClient, name: str, version: str) -> bool:
    """Only versions this pipeline registered (they carry its model fingerprint) are loaded."""
    return "model_fingerprint" in client.get_model_version(name, version).tags


def check_serves(client: MlflowClient, name: str, version: str) -> None:
    """Load the version as pyfunc and predict its own input example, or raise."""
    from mlflow.models import Model

    import mlflow

    if not registered_by_pipeline(client, name, version):
        raise PipelineError(
            f"registered model {name!r} v{version} was not registered by this pipeline; "
            "it is not loaded"
        )
    uri = f"models:/{name}/{version}"
    try:
        model = mlflow.pyfunc.load_model(uri)
        example = Model.load(uri).load_input_example()
        model.predict(example)
    except Exception as exc:
        raise PipelineError(
            f"registered model {name!r} v{version} does not load and predict any more "
            f"({type(exc).__name__}: {brief(exc)}); aliases left as they are"
        ) from exc


def version_metrics(client: MlflowClient, name: str, version: str) -> dict[str, float]:
    """The gate metrics a version was tagged with when it was registered."""
    tags = client.get_model_version(name, version).tags
    return {key: float(tags[f"test_{key}"]) for key in GATE_METRICS if f"test_{key}" in tags}


def versions_table(client: MlflowClient, name: str) -> pd.DataFrame:
    """One row per version: when, test metrics at registration, decision, serving now."""
    champion = alias_holder(client, name, CHAMPION)
    served = {e["to_version"] for e in history(client, name) if e["alias"] == CHAMPION}
    rows = []
    for version in client.search_model_versions(f"name='{name}'"):
        tags = version.tags
        rows.append(
            {
                "version": int(version.version),
                "registered": pd.Timestamp(version.creation_timestamp, unit="ms").isoformat(),
                "test_pr_auc": float(tags.get("test_pr_auc", "nan")),
                "test_recall": float(tags.get("test_recall", "nan")),
                "test_ece": float(tags.get("test_ece", "nan")),
                "gate_decision": tags.get(DECISION_TAG, ""),
                "quantization": tags.get("quantization", ""),
                "was_champion": str(version.version) in served,
                "champion_now": str(version.version) == champion,
            }
        )
    return pd.DataFrame(rows).sort_values("version").reset_index(drop=True)


def plot_versions(table: pd.DataFrame, path: Path) -> None:
    figure, axes = plots.pyplot().subplots(figsize=(7, 3.5))
    axes.plot(table["version"], table["test_pr_auc"], marker="o", color="0.6", label="version")
    ever = table[table["was_champion"]]
    axes.scatter(
        ever["version"], ever["test_pr_auc"], color="tab:blue", zorder=3, label="was champion"
    )
    now = table[table["champion_now"]]
    axes.scatter(
        now["version"],
        now["test_pr_auc"],
        s=160,
        marker="*",
        color="tab:orange",
        zorder=4,
        label="champion now",
    )
    axes.set_xlabel("model version")
    axes.set_ylabel("test PR-AUC at registration")
    axes.set_xticks(table["version"])
    axes.legend(loc="best")
    axes.set_title("Model versions over time")
    plots.save_png(figure, path)


def log_audit_artifacts(client: MlflowClient, name: str, run_id: str) -> None:
    """The audit trail and the versions table/plot, as artifacts of ``run_id``."""
    table = versions_table(client, name)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "alias_history.json").write_text(json.dumps(history(client, name), indent=2))
        table.to_csv(folder / "model_versions.csv", index=False)
        plot_versions(table, folder / "model_versions.png")
        client.log_artifact(run_id, str(folder / "alias_history.json"), "audit")
        client.log_artifact(run_id, str(folder / "model_versions.csv"), "audit")
        client.log_artifact(run_id, str(folder / "model_versions.png"), "audit")
