"""A short human summary of the last pipeline run, printed at the end of ``make run``."""

from __future__ import annotations

import sys

from pipelines import paths
from pipelines.intervals import cv_estimate, with_interval
from pipelines.io import read_json
from pipelines.stage import run_stage


def schema_line(validate: dict) -> list[str]:
    """A loud line when validate inferred the schema: nothing checked this data against a
    reviewed one."""
    if not validate.get("schema_inferred"):
        return []
    return [
        f"  schema             INFERRED for new dataset {validate.get('dataset')!r}: "
        f"review and commit {validate['schema']}"
    ]


def render(
    ingest: dict,
    validate: dict,
    evaluate: dict,
    quantize: dict,
    register: dict,
    tune: dict | None = None,
) -> str:
    """The summary from the stages' reports; each metric shows its bootstrap interval."""
    ui = "make ui"
    if register["tracking_uri"] != paths.MLFLOW_DEFAULT_URI:
        ui = f"open {register['tracking_uri']}"
    baselines = [
        f"  baseline {name:<24s}PR-AUC {with_interval(b, 'pr_auc')}, "
        f"ROC-AUC {with_interval(b, 'roc_auc')}"
        for name, b in evaluate.get("baselines", {}).items()
    ]
    return "\n".join(
        [
            "",
            "Pipeline summary",
            f"  rows ingested      {ingest['rows']}",
            f"  rows quarantined   {validate['rows_quarantined']}  {validate['quarantined']}",
            *tune_lines(tune or {}),
            *schema_line(validate),
            f"  test PR-AUC        {with_interval(evaluate, 'pr_auc')}{reliability_note(evaluate)}",
            f"  test ROC-AUC       {with_interval(evaluate, 'roc_auc')}",
            *cv_lines(evaluate),
            *baselines,
            f"  quantization       {quantization_line(quantize)}",
            f"  model version      {register['model_name']} v{register['version']} @{register['alias']}",
            f"  gate               {register['reason']}",
            f"  MLflow UI          {ui}",
            "",
        ]
    )


def tune_lines(tune: dict) -> list[str]:
    """What tuning did, when it was on: kept the untuned configuration, or chose another."""
    if not tune.get("enabled"):
        return []
    verdict = (
        "kept the untuned configuration"
        if tune["kept_untuned"]
        else f"chose trial {tune['best_trial']}"
    )
    return [
        f"  tuning             {tune['trials']} trials: {verdict} (val PR-AUC "
        f"{tune['best_val_pr_auc']:.4f}, untuned {tune['untuned_val_pr_auc']:.4f})"
    ]


def cv_lines(evaluate: dict) -> list[str]:
    """Small-data mode's cross-validated estimate, when evaluate ran it."""
    cv = evaluate.get("cross_validation")
    if not cv:
        return []
    return [
        f"  CV PR-AUC          {cv_estimate(cv, 'pr_auc')}",
        f"  CV ROC-AUC         {cv_estimate(cv, 'roc_auc')}",
    ]


def reliability_note(evaluate: dict) -> str:
    """A loud suffix when validation or test has fewer than evaluate.min_positives positives."""
    reliability = evaluate.get("reliability", {})
    if reliability.get("reliable", True):
        return ""
    floor = reliability["min_positives"]
    short = [
        f"{split} {reliability[f'{split}_positives']}"
        for split in ("val", "test")
        if reliability.get(f"{split}_positives", floor) < floor
    ]
    return f"  UNRELIABLE: positives {', '.join(short)} < evaluate.min_positives {floor}"


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
        read_json(paths.TUNE_REPORT) if paths.TUNE_REPORT.exists() else None,
    )
    sys.stdout.write(text)


if __name__ == "__main__":
    run_stage("summary", main, record_failure=False)
