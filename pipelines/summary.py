"""A short human summary of the last pipeline run, printed at the end of ``make run``."""

from __future__ import annotations

import sys

from pipelines import paths
from pipelines.io import read_json
from pipelines.stage import run_stage


def render(ingest: dict, validate: dict, evaluate: dict, quantize: dict, register: dict) -> str:
    """The summary from four stages' reports and register's metrics file."""
    ui = "make ui"
    if register["tracking_uri"] != paths.MLFLOW_DEFAULT_URI:
        ui = f"open {register['tracking_uri']}"
    baselines = [
        f"  baseline {name:<24s}PR-AUC {b['pr_auc']:.4f}, ROC-AUC {b['roc_auc']:.4f}"
        for name, b in evaluate.get("baselines", {}).items()
    ]
    return "\n".join(
        [
            "",
            "Pipeline summary",
            f"  rows ingested      {ingest['rows']}",
            f"  rows quarantined   {validate['rows_quarantined']}  {validate['quarantined']}",
            f"  test PR-AUC        {evaluate['pr_auc']:.4f}",
            f"  test ROC-AUC       {evaluate['roc_auc']:.4f}",
            *baselines,
            f"  quantization       {quantization_line(quantize)}",
            f"  model version      {register['model_name']} v{register['version']} @{register['alias']}",
            f"  gate               {register['reason']}",
            f"  MLflow UI          {ui}",
            "",
        ]
    )


def quantization_line(quantize: dict) -> str:
    chosen = quantize["serving_artifact"]
    if chosen == "float":
        return "no TFLite variant passed the gate: the float model is served"
    entry = quantize["variants"][chosen]
    return (
        f"{chosen} TFLite ({entry['bytes']} bytes, validation PR-AUC drop "
        f"{entry['pr_auc_drop']:.4f}); "
        f"see data/models/quantization.md"
    )


def main() -> None:
    text = render(
        read_json(paths.INGEST_REPORT),
        read_json(paths.VALIDATE_REPORT),
        read_json(paths.EVALUATE_REPORT),
        read_json(paths.QUANTIZE_REPORT),
        read_json(paths.REGISTER_REPORT),
    )
    sys.stdout.write(text)


if __name__ == "__main__":
    run_stage("summary", main, record_failure=False)
