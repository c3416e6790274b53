"""Evaluate: honest metrics of the trained model on the untouched test split.

The decision threshold is chosen on the validation split (maximum F1, or minimum expected
cost from ``evaluate.cost_fp`` / ``cost_fn``) and only then applied to test; later stages read
it from ``contracts.DecisionThreshold``, not from the metrics file. Writes test
metrics (PR-AUC first), recall at a fixed precision and precision at a fixed recall, the same
metrics for two baselines fitted on the same training split (class-weighted logistic
regression and HistGradientBoosting), curves, per-segment and noise-robustness metrics as DVC
plots files, and PNG plots for MLflow. Every headline number of the model, the baselines and
the segments carries a stratified bootstrap interval, and a split with too few positives is
flagged unreliable. The metrics come from ``pipelines.metrics``, the intervals from
``pipelines.intervals``, the PNGs from ``pipelines.plots``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines import intervals, metrics, paths
from pipelines.analyses import analyses
from pipelines.config import EvaluateParams, load_params
from pipelines.contracts import DecisionThreshold, Disparity
from pipelines.errors import PipelineError
from pipelines.features import FeatureTransform
from pipelines.io import atomic_dir, read_csv, read_parquet, write_csv_atomic
from pipelines.plots import render_plots, render_shap
from pipelines.reports import stage_headline, write_results
from pipelines.schema import Schema, load_enforced_schema
from pipelines.stage import run_stage
from pipelines.tf_runtime import load_keras_model, predict_proba

log = logging.getLogger(__name__)

# The decision threshold's contract names the rule that chose it, readable without params.yaml.
THRESHOLD_METHODS = {"f1": "max_f1", "cost": "min_cost"}


def baseline_models(train: pd.DataFrame, schema, seed: int) -> dict:
    """Class-weighted logistic regression and HistGradientBoosting on the training split."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    transform = FeatureTransform.fit(train, schema)
    features, labels = transform.transform(train), train[schema.target].to_numpy()
    models = {
        "logistic_regression": LogisticRegression(
            class_weight="balanced", max_iter=2000, random_state=seed
        ),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            class_weight="balanced", random_state=seed
        ),
    }
    return {name: (transform, model.fit(features, labels)) for name, model in models.items()}


def score_report(
    val: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    val_scores: np.ndarray,
    test_scores: np.ndarray,
    cfg: EvaluateParams,
    seed: int,
) -> tuple[dict, intervals.Bootstrap | None]:
    """Test metrics at the threshold chosen on validation, each with its bootstrap interval
    beside it, plus the operating points; and the bootstrap (None when intervals are off)."""
    threshold = metrics.choose_threshold(val[target].to_numpy(), val_scores, cfg)
    labels = test[target].to_numpy()
    report = metrics.metrics_at_threshold(labels, test_scores, threshold, cfg.calibration_bins)
    sample = intervals.bootstrap(labels, test_scores, threshold, cfg.bootstrap_samples, seed)
    report = intervals.beside(report, intervals.metric_intervals(sample, cfg.confidence))
    return report | metrics.operating_points(labels, test_scores, cfg), sample


MAX_SEGMENTS = 20


def pick_segment_column(schema, requested: str | None) -> str | None:
    if requested != "auto":
        if requested is not None and requested not in schema.categorical:
            raise PipelineError(
                f"evaluate.segment_column: {requested!r} is not a categorical feature "
                f"(categorical: {schema.categorical})"
            )
        return requested
    levels = {name: len(schema.columns[name].categories or []) for name in schema.categorical}
    candidates = sorted((count, name) for name, count in levels.items() if count >= 2)
    return candidates[0][1] if candidates else None


def segment_metrics(
    test: pd.DataFrame,
    scores: np.ndarray,
    target: str,
    column: str,
    threshold: float,
    cfg: EvaluateParams,
    seed: int,
) -> dict[str, dict]:
    """Metrics per value of ``column`` (the largest segments first), to expose bias; PR-AUC and
    ROC-AUC with their intervals, since a segment holds a fraction of the test positives."""
    out = {}
    for value in test[column].astype(str).value_counts().index[:MAX_SEGMENTS]:
        rows = (test[column].astype(str) == value).to_numpy()
        labels, part = test[target].to_numpy()[rows], scores[rows]
        both = 0 < labels.sum() < len(labels)
        predicted = part >= threshold
        sample = intervals.bootstrap(labels, part, threshold, cfg.bootstrap_samples, seed)
        entry = {
            "rows": int(rows.sum()),
            "positives": int(labels.sum()),
            "reliable": bool(labels.sum() >= cfg.min_positives),
            "pr_auc": metrics.pr_auc(labels, part) if both else None,
            "roc_auc": metrics.roc_auc(labels, part) if both else None,
            "recall": metrics.recall(labels, predicted),
            "precision": metrics.precision(labels, predicted),
        }
        cis = intervals.metric_intervals(sample, cfg.confidence, ("pr_auc", "roc_auc"))
        out[value] = intervals.beside(entry, cis)
    return out


def noise_robustness(
    test: pd.DataFrame,
    score,
    transform: FeatureTransform,
    target: str,
    levels: list[float],
    seed: int,
) -> dict[str, dict]:
    """Test metrics with Gaussian noise of ``level`` training stds on every numeric feature."""
    labels = test[target].to_numpy()
    rng = np.random.default_rng(seed)
    out = {}
    for level in levels:
        noisy = test.copy()
        for name, std in zip(transform.numeric, transform.stds, strict=True):
            values = pd.to_numeric(noisy[name], errors="coerce").to_numpy("float64")
            noisy[name] = values + rng.normal(0.0, level * std, len(noisy))
        noisy_scores = score(noisy)
        out[f"noise_{level:g}"] = {
            "pr_auc": metrics.pr_auc(labels, noisy_scores),
            "roc_auc": metrics.roc_auc(labels, noisy_scores),
        }
    return out


def permutation_importance(
    test: pd.DataFrame, score, features: list[str], target: str, repeats: int, seed: int
) -> pd.DataFrame:
    """Mean drop in test PR-AUC when one raw feature column is shuffled, largest first."""
    if repeats == 0:
        return pd.DataFrame(columns=["feature", "pr_auc_drop", "std"])
    labels = test[target].to_numpy()
    baseline = metrics.pr_auc(labels, score(test))
    rng = np.random.default_rng(seed)
    rows = []
    for name in features:
        drops = []
        for _ in range(repeats):
            shuffled = test.copy()
            shuffled[name] = test[name].to_numpy()[rng.permutation(len(test))]
            drops.append(baseline - metrics.pr_auc(labels, score(shuffled)))
        rows.append(
            {"feature": name, "pr_auc_drop": float(np.mean(drops)), "std": float(np.std(drops))}
        )
    table = pd.DataFrame(rows, columns=["feature", "pr_auc_drop", "std"])
    return table.sort_values("pr_auc_drop", ascending=False, kind="stable").reset_index(drop=True)


SEGMENT_COLUMNS = [
    "segment",
    "rows",
    "positives",
    "pr_auc",
    "pr_auc_low",
    "pr_auc_high",
    "roc_auc",
    "recall",
    "precision",
]


def segment_table(segments: dict | None) -> pd.DataFrame:
    """The per-segment metrics as rows (largest segment first), PR-AUC's interval as two
    columns (empty when intervals are off); empty without a segment column."""
    if not segments:
        return pd.DataFrame(columns=SEGMENT_COLUMNS)
    rows = []
    for value, entry in segments["values"].items():
        low, high = entry.get("pr_auc_ci") or (None, None)
        rows.append({"segment": value, **entry, "pr_auc_low": low, "pr_auc_high": high})
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def robustness_table(report: dict, levels: list[float]) -> pd.DataFrame:
    """Test PR-AUC and ROC-AUC by noise level, the clean test set as level 0."""
    by_level = {0.0: {"pr_auc": report["pr_auc"], "roc_auc": report["roc_auc"]}}
    by_level |= {float(level): report["robustness"][f"noise_{level:g}"] for level in levels}
    rows = [{"noise_level": level, **by_level[level]} for level in sorted(by_level)]
    return pd.DataFrame(rows, columns=["noise_level", "pr_auc", "roc_auc"])


def evaluate(
    score: Callable[[pd.DataFrame], np.ndarray],
    transform: FeatureTransform,
    splits: dict[str, pd.DataFrame],
    schema: Schema,
    cfg: EvaluateParams,
    seed: int,
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The metrics report and the plot tables. ``score`` maps raw rows to probabilities;
    ``splits`` holds train (for baselines only), val (for the threshold only) and test."""
    val, test, target = splits["val"], splits["test"], schema.target
    val_scores, scores = score(val), score(test)
    report, sample = score_report(val, test, target, val_scores, scores, cfg, seed)
    report["bootstrap"] = {"samples": cfg.bootstrap_samples, "confidence": cfg.confidence}
    report["reliability"] = intervals.reliability(
        {"val": int(val[target].sum()), "test": int(test[target].sum())}, cfg.min_positives
    )
    if cfg.baselines:
        log.info("fitting baselines on the training split")
        report["baselines"] = {
            name: score_report(
                val,
                test,
                target,
                baseline.predict_proba(fitted.transform(val))[:, 1],
                baseline.predict_proba(fitted.transform(test))[:, 1],
                cfg,
                seed,
            )[0]
            for name, (fitted, baseline) in baseline_models(splits["train"], schema, seed).items()
        }
    segment = pick_segment_column(schema, cfg.segment_column)
    if segment:
        values = segment_metrics(test, scores, target, segment, report["threshold"], cfg, seed)
        report["segments"] = {"column": segment, "values": values}
    log.info("robustness and permutation importance on the test split")
    report["robustness"] = noise_robustness(test, score, transform, target, cfg.noise_levels, seed)
    importance = permutation_importance(
        test, score, schema.feature_columns, target, cfg.importance_repeats, seed
    )
    report["importance"] = dict(zip(importance["feature"], importance["pr_auc_drop"], strict=True))
    tables = metrics.curves(
        test[target].to_numpy(),
        scores,
        report["threshold"],
        cfg.calibration_bins,
        val[target].to_numpy(),
        val_scores,
    )
    tables |= intervals.curve_bands(sample, cfg.confidence)
    tables["importance"] = importance
    tables["segments"] = segment_table(report.get("segments"))
    tables["robustness"] = robustness_table(report, cfg.noise_levels)
    return report, tables


def headline_metrics(report: dict) -> dict:
    """The model's test PR-AUC and ROC-AUC, at the top level of evaluate.json (DESIGN.md's
    contract for `dvc metrics show --json`); precision, recall, the baselines and the rest stay
    in the report (and in MLflow and the summary), so that `dvc metrics show` fits a terminal."""
    return stage_headline("evaluate", pr_auc=report["pr_auc"], roc_auc=report["roc_auc"])


def main() -> None:
    params = load_params()
    cfg: EvaluateParams = params.evaluate
    schema = load_enforced_schema()
    model = load_keras_model(paths.KERAS_MODEL)
    transform = FeatureTransform.load(paths.FEATURE_TRANSFORM)
    splits = {
        "train": read_parquet(paths.SPLIT_TRAIN),
        "val": read_parquet(paths.SPLIT_VAL),
        "test": read_parquet(paths.SPLIT_TEST),
    }

    def score(frame: pd.DataFrame) -> np.ndarray:
        return predict_proba(model, transform.transform(frame))

    report, tables = evaluate(score, transform, splits, schema, cfg, params.seed)
    explanation = analyses(report, tables, splits, score, schema, params)
    for name, path in (
        ("pr", paths.PR_CURVE),
        ("roc", paths.ROC_CURVE),
        ("confusion", paths.CONFUSION),
        ("calibration", paths.CALIBRATION),
        ("threshold", paths.THRESHOLD_CURVE),
        ("importance", paths.IMPORTANCE),
        ("segments", paths.SEGMENTS),
        ("robustness", paths.ROBUSTNESS),
        ("shap", paths.SHAP),
    ):
        write_csv_atomic(tables[name], path)
    with atomic_dir(paths.PLOT_IMAGES) as out:
        render_plots(tables, read_csv(paths.TRAINING_HISTORY), report, out)
        render_shap(explanation, out)
    Disparity(
        columns={name: c["disparity"] for name, c in report.get("fairness", {}).items()}
    ).write()
    write_results(report, paths.EVALUATE_REPORT, headline_metrics(report), paths.EVALUATE_METRICS)
    DecisionThreshold(
        threshold=report["threshold"], method=THRESHOLD_METHODS[cfg.threshold_objective]
    ).write()
    log.info(
        "test PR-AUC %s, ROC-AUC %s, F1 %s at threshold %.4f (chosen on validation by %s)",
        *(intervals.with_interval(report, name) for name in ("pr_auc", "roc_auc", "f1")),
        report["threshold"],
        cfg.threshold_objective,
    )
    for name, baseline in report.get("baselines", {}).items():
        log.info(
            "baseline %s: test PR-AUC %s, ROC-AUC %s",
            name,
            intervals.with_interval(baseline, "pr_auc"),
            intervals.with_interval(baseline, "roc_auc"),
        )


if __name__ == "__main__":
    run_stage("evaluate", main)
