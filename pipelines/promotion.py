"""Promotion: the registered model's aliases and their audit trail.

Whether a challenger replaces ``@champion`` is ``pipelines.champion_gate``'s decision. Every
move of an alias goes through :func:`move_alias`, which appends one event to the registered
model's tags (``audit.00001``, ``audit.00002``, ...; an index is never rewritten) and so keeps
the history MLflow itself does not: which version served when, and why, with the gate's
paired comparison. :func:`rollback` walks that history back one champion, after
:func:`check_serves`.

Register runs the gate; ``python -m pipelines.registry`` is the command line for history,
versions and rollback.
"""

from __future__ import annotations

import getpass
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipelines import plots
from pipelines.artifacts import verified_copy
from pipelines.champion_gate import GATE_METRICS
from pipelines.errors import PipelineError, brief

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
AUDIT_PREFIX = "audit."


def history(client: MlflowClient, name: str) -> list[dict]:
    """Every recorded alias change of ``name``, oldest first."""
    tags = client.get_registered_model(name).tags
    return [json.loads(tags[key]) for key in sorted(k for k in tags if k.startswith(AUDIT_PREFIX))]


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
) -> dict:
    """Point ``alias`` at ``version`` and append the change to the audit trail, with the
    champion gate's paired ``comparison`` (difference, interval, test) when there was one."""
    previous = alias_holder(client, name, alias)
    client.set_registered_model_alias(name, alias, version)
    event = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "action": action,
        "alias": alias,
        "from_version": previous,
        "to_version": str(version),
        "reason": reason,
        "metrics": metrics or {},
        **({"comparison": comparison} if comparison else {}),
        "run_id": run_id,
        "git_commit": git_commit,
        "user": _user(),
    }
    index = len(history(client, name)) + 1
    while f"{AUDIT_PREFIX}{index:05d}" in client.get_registered_model(name).tags:
        index += 1
    client.set_registered_model_tag(name, f"{AUDIT_PREFIX}{index:05d}", json.dumps(event))
    log.info("%s @%s: v%s -> v%s (%s)", name, alias, previous, version, reason)
    return event


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
    check_serves(client, name, target)
    return move_alias(
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


def registered_by_pipeline(client: MlflowClient, name: str, version: str) -> bool:
    """Only versions this pipeline registered (they carry its model fingerprint) are loaded."""
    return "model_fingerprint" in client.get_model_version(name, version).tags


def check_serves(client: MlflowClient, name: str, version: str) -> None:
    """Load the version as pyfunc, its files verified against the manifest recorded at
    registration (``pipelines.artifacts``), and predict its own input example, or raise."""
    from mlflow.models import Model

    import mlflow

    if not registered_by_pipeline(client, name, version):
        raise PipelineError(
            f"registered model {name!r} v{version} was not registered by this pipeline; "
            "it is not loaded"
        )
    try:
        with verified_copy(f"models:/{name}/{version}", client) as local:
            model = mlflow.pyfunc.load_model(str(local))
            example = Model.load(str(local)).load_input_example(str(local))
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
                "gate_decision": tags.get("gate_decision", ""),
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


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
