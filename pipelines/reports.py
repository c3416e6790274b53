"""A stage's two result files: its full report and its headline metrics.

DVC turns every number of a metrics file into a column of ``dvc metrics show``, so a stage's
metrics file holds only the few numbers a human compares between runs. Everything else the
stage measured goes to its report, a DVC output that register logs to MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.io import write_json_atomic


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
