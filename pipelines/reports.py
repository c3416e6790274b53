"""A stage's two result files: its full report and its headline metrics.

DVC turns every key of a metrics file into a column of ``dvc metrics show``, one table for all
the stages, so a stage's metrics file holds only the few numbers a human compares between runs,
under keys the stages share where they mean the same thing (``HEADLINES``). Everything else the
stage measured goes to its report, a DVC output that register logs to MLflow. Nothing reads a
metrics file back: what a stage hands to the next is a declared output of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.io import write_json_atomic

# The headline keys of each stage's DVC metrics file (data/metrics/<stage>.json). Their union is
# the columns of `dvc metrics show`, which must stay within 120 characters (a unit test checks).
#   rows        rows the stage outputs: validate's clean rows, all three splits for split, the
#               training rows for rebalance and augment (what they dropped or added is in reports)
#   max_psi     the largest per-feature drift (PSI) of the clean data against the reference
#   val_pr_auc  validation PR-AUC of what the stage chose (tune's best trial, train's best epoch)
#   pr_auc, roc_auc  TEST PR-AUC and ROC-AUC: evaluate's of the float model (the contract of
#               `dvc metrics show --json`), quantize's of the served artifact
#   version, promoted  the registered model version, and whether it became the champion
HEADLINES: dict[str, tuple[str, ...]] = {
    "ingest": ("rows",),
    "validate": ("rows", "max_psi"),
    "split": ("rows",),
    "tune": ("val_pr_auc",),
    "rebalance": ("rows",),
    "augment": ("rows",),
    "train": ("val_pr_auc",),
    "evaluate": ("pr_auc", "roc_auc"),
    "quantize": ("pr_auc", "roc_auc"),
    "register": ("version", "promoted"),
}


def stage_headline(stage: str, **values: Any) -> dict[str, Any]:
    """The metrics file of ``stage``: ``values``, which must be its ``HEADLINES`` keys exactly
    (a stage that may omit one, like tune when it is off, passes it as None)."""
    keys = HEADLINES[stage]
    if set(values) != set(keys):
        raise ValueError(f"{stage} headline: got {sorted(values)}, expected {sorted(keys)}")
    return {key: values[key] for key in keys if values[key] is not None}


def headline(report: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The entries of ``report`` named by ``keys``, in that order.

    A dotted key (``"drift.max_psi"``) picks a nested entry and keeps its nesting, so a value
    sits under the same key path in the metrics file as in the report.
    """
    picked: dict[str, Any] = {}
    for key in keys:
        *parents, leaf = key.split(".")
        source, target = report, picked
        for part in parents:
            source, target = source[part], target.setdefault(part, {})
        target[leaf] = source[leaf]
    return picked


def write_results(
    report: dict[str, Any], report_path: Path, metrics: dict[str, Any], metrics_path: Path
) -> None:
    """Write the full report and the headline metrics, each atomically."""
    write_json_atomic(report, report_path)
    write_json_atomic(metrics, metrics_path)
