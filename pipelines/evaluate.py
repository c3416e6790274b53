"""Evaluate: honest metrics of the trained model on the untouched test split.

The decision threshold is chosen on the validation split (maximum F1, or minimum expected
cost from ``evaluate.cost_fp`` / ``cost_fn``) and only then applied to test. Writes test
metrics (PR-AUC first), recall at a fixed precision and precision at a fixed recall, the same
metrics for two baselines fitted on the same training split (class-weighted logistic
regression and HistGradientBoosting), curves, per-segment and noise-robustness metrics as DVC
plots files, and PNG plots for MLflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
from sklearn import metrics

from pipelines import paths
from pipelines.config import EvaluateParams, load_params
from pipelines.errors import PipelineError
from pipelines.features import FeatureTransform
from pipelines.io import atomic_dir, read_csv, read_parquet, write_csv_atomic, write_json_atomic
from pipelines.schema import Schema, load_schema, schema_path
from pipelines.stage import run_stage
from pipelines.tf_runtime import load_keras_model, predict_proba

log = logging.getLogger(__name__)

MAX_CURVE_POINTS = 400


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 on the given (validation) data."""
    precision, recall, thresholds = metrics.precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def min_cost_threshold(
    labels: np.ndarray, scores: np.ndarray, cost_fp: float, cost_fn: float
) -> float:
    """The threshold minimising cost_fp x false positives + cost_fn x false negatives."""
    order = np.argsort(-scores, kind="stable")
    ranked, ranked_labels = scores[order], labels[order]
    true_pos = np.cumsum(ranked_labels)
    false_pos = np.cumsum(1 - ranked_labels)
    # Flagging everything scoring >= ranked[i] flags rows 0..last[i], ties included.
    last = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]
    cost = cost_fp * false_pos[last] + cost_fn * (labels.sum() - true_pos[last])
    if cost_fn * labels.sum() < cost.min():  # flagging nothing is cheapest
        return float(np.nextafter(ranked[0], np.inf))
    return float(ranked[last][int(np.argmin(cost))])


def choose_threshold(labels: np.ndarray, scores: np.ndarray, cfg: EvaluateParams) -> float:
    if cfg.threshold_objective == "cost":
        return min_cost_threshold(labels, scores, cfg.cost_fp, cfg.cost_fn)
    return best_f1_threshold(labels, scores)


def operating_points(labels: np.ndarray, scores: np.ndarray, cfg: EvaluateParams) -> dict:
    """Recall at the target precision and precision at the target recall (0 if unreachable)."""
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    reach_precision = precision >= cfg.target_precision
    reach_recall = recall >= cfg.target_recall
    return {
        "recall_at_precision": float(recall[reach_precision].max())
        if reach_precision.any()
        else 0.0,
        "precision_at_recall": float(precision[reach_recall].max()) if reach_recall.any() else 0.0,
        "target_precision": cfg.target_precision,
        "target_recall": cfg.target_recall,
    }


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
) -> dict:
    """Test metrics at the threshold chosen on validation, plus the operating points."""
    threshold = choose_threshold(val[target].to_numpy(), val_scores, cfg)
    labels = test[target].to_numpy()
    report = metrics_at_threshold(labels, test_scores, threshold, cfg.calibration_bins)
    return report | operating_points(labels, test_scores, cfg)


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
    test: pd.DataFrame, scores: np.ndarray, target: str, column: str, threshold: float
) -> dict[str, dict]:
    """Metrics per value of ``column`` (the largest segments first), to expose bias."""
    out = {}
    for value in test[column].astype(str).value_counts().index[:MAX_SEGMENTS]:
        rows = (test[column].astype(str) == value).to_numpy()
        labels, part = test[target].to_numpy()[rows], scores[rows]
        both = 0 < labels.sum() < len(labels)
        predicted = part >= threshold
        out[value] = {
            "rows": int(rows.sum()),
            "positives": int(labels.sum()),
            "pr_auc": float(metrics.average_precision_score(labels, part)) if both else None,
            "roc_auc": float(metrics.roc_auc_score(labels, part)) if both else None,
            "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
            "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        }
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
            "pr_auc": float(metrics.average_precision_score(labels, noisy_scores)),
            "roc_auc": float(metrics.roc_auc_score(labels, noisy_scores)),
        }
    return out


def permutation_importance(
    test: pd.DataFrame, score, features: list[str], target: str, repeats: int, seed: int
) -> pd.DataFrame:
    """Mean drop in test PR-AUC when one raw feature column is shuffled, largest first."""
    if repeats == 0:
        return pd.DataFrame(columns=["feature", "pr_auc_drop", "std"])
    labels = test[target].to_numpy()
    baseline = metrics.average_precision_score(labels, score(test))
    rng = np.random.default_rng(seed)
    rows = []
    for name in features:
        drops = []
        for _ in range(repeats):
            shuffled = test.copy()
            shuffled[name] = test[name].to_numpy()[rng.permutation(len(test))]
            drops.append(baseline - metrics.average_precision_score(labels, score(shuffled)))
        rows.append(
            {"feature": name, "pr_auc_drop": float(np.mean(drops)), "std": float(np.std(drops))}
        )
    table = pd.DataFrame(rows, columns=["feature", "pr_auc_drop", "std"])
    return table.sort_values("pr_auc_drop", ascending=False, kind="stable").reset_index(drop=True)


SEGMENT_COLUMNS = ["segment", "rows", "positives", "pr_auc", "roc_auc", "recall", "precision"]


def segment_table(segments: dict | None) -> pd.DataFrame:
    """The per-segment metrics as rows (largest segment first); empty without a segment column."""
    if not segments:
        return pd.DataFrame(columns=SEGMENT_COLUMNS)
    rows = [{"segment": value, **entry} for value, entry in segments["values"].items()]
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def robustness_table(report: dict, levels: list[float]) -> pd.DataFrame:
    """Test PR-AUC and ROC-AUC by noise level, the clean test set as level 0."""
    by_level = {0.0: {"pr_auc": report["pr_auc"], "roc_auc": report["roc_auc"]}}
    by_level |= {float(level): report["robustness"][f"noise_{level:g}"] for level in levels}
    rows = [{"noise_level": level, **by_level[level]} for level in sorted(by_level)]
    return pd.DataFrame(rows, columns=["noise_level", "pr_auc", "roc_auc"])


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(scores[in_bin].mean() - labels[in_bin].mean())
    return float(total)


def metrics_at_threshold(
    labels: np.ndarray, scores: np.ndarray, threshold: float, bins: int
) -> dict:
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = metrics.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "pr_auc": float(metrics.average_precision_score(labels, scores)),
        "roc_auc": float(metrics.roc_auc_score(labels, scores)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "brier": float(metrics.brier_score_loss(labels, scores)),
        "ece": expected_calibration_error(labels, scores, bins),
        "threshold": threshold,
        "true_positives": int(tp),
        "false_positives": int(fp),
        "true_negatives": int(tn),
        "false_negatives": int(fn),
        "test_rows": int(len(labels)),
        "test_positives": int(labels.sum()),
    }


def curves(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    bins: int,
    val_labels: np.ndarray,
    val_scores: np.ndarray,
) -> dict[str, pd.DataFrame]:
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    observed, predicted = _calibration(labels, scores, bins)
    val_precision, val_recall, val_thresholds = metrics.precision_recall_curve(
        val_labels, val_scores
    )
    return {
        "threshold": _thin(
            pd.DataFrame(
                {
                    "threshold": val_thresholds,
                    "precision": val_precision[:-1],
                    "recall": val_recall[:-1],
                }
            )
        ),
        "pr": _thin(pd.DataFrame({"recall": recall, "precision": precision})),
        "roc": _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
        "confusion": pd.DataFrame(
            {"actual": labels.astype(int), "predicted": (scores >= threshold).astype(int)}
        ),
        "calibration": pd.DataFrame({"mean_predicted": predicted, "fraction_positive": observed}),
    }


def _calibration(
    labels: np.ndarray, scores: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.calibration import calibration_curve

    return calibration_curve(labels, scores, n_bins=bins, strategy="quantile")


def _thin(curve: pd.DataFrame) -> pd.DataFrame:
    if len(curve) <= MAX_CURVE_POINTS:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, MAX_CURVE_POINTS).astype(int))
    return curve.iloc[keep].reset_index(drop=True)


def _pyplot():
    """pyplot on the file-only Agg backend: stages run without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig, name: str, out) -> None:
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    _pyplot().close(fig)


def render_plots(tables: dict[str, pd.DataFrame], history: pd.DataFrame, report: dict, out) -> None:
    """PNG versions of every plot, for MLflow and for people without `dvc plots`."""
    plt = _pyplot()
    save = partial(_save_png, out=out)

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(tables["pr"]["recall"], tables["pr"]["precision"])
    ax.set(xlabel="recall", ylabel="precision", title=f"PR curve (AP {report['pr_auc']:.3f})")
    save(fig, "pr_curve")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(tables["roc"]["fpr"], tables["roc"]["tpr"])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"ROC curve (AUC {report['roc_auc']:.3f})",
    )
    save(fig, "roc_curve")
    fig, ax = plt.subplots(figsize=(4, 4))
    matrix = np.array(
        [
            [report["true_negatives"], report["false_positives"]],
            [report["false_negatives"], report["true_positives"]],
        ]
    )
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xlabel="predicted",
        ylabel="actual",
        title=f"confusion @ {report['threshold']:.3f}",
    )
    save(fig, "confusion_matrix")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(
        tables["calibration"]["mean_predicted"],
        tables["calibration"]["fraction_positive"],
        marker="o",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(
        xlabel="mean predicted",
        ylabel="fraction positive",
        title=f"calibration (ECE {report['ece']:.3f})",
    )
    save(fig, "calibration")
    fig, ax = plt.subplots(figsize=(5, 4))
    for column in ("precision", "recall"):
        ax.plot(tables["threshold"]["threshold"], tables["threshold"][column], label=column)
    ax.axvline(report["threshold"], linestyle="--", color="grey", label="chosen")
    ax.set(xlabel="threshold", title="precision / recall by threshold (validation)")
    ax.legend()
    save(fig, "threshold")
    importance = tables.get("importance")
    if importance is not None and not importance.empty:
        shown = importance.head(20).iloc[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
        ax.barh(shown["feature"], shown["pr_auc_drop"], xerr=shown["std"])
        ax.set(xlabel="test PR-AUC drop when shuffled", title="permutation importance")
        save(fig, "importance")
    render_bias_plots(tables, report, out)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "pr_auc"), strict=True):
        for column, label in ((metric, "train (resampled)"), (f"val_{metric}", "validation")):
            if column in history:
                ax.plot(history["epoch"], history[column], label=label)
        ax.set(xlabel="epoch", title=metric)
        ax.legend()
    save(fig, "training_curves")


def render_bias_plots(tables: dict[str, pd.DataFrame], report: dict, out) -> None:
    """PNGs of the per-segment and noise-robustness metrics (also tables for `dvc plots`)."""
    plt = _pyplot()
    save = partial(_save_png, out=out)

    segments = tables.get("segments")
    if segments is not None and not segments.empty:
        # Grouped bars per segment, the whole test split as dashed lines: a segment far below
        # the lines is where the model is biased. A one-class segment has no PR-AUC bar.
        shown = segments.iloc[::-1].reset_index(drop=True)
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(shown) + 1.5))
        positions = np.arange(len(shown))
        for offset, (metric, color) in enumerate(
            (("pr_auc", "C0"), ("recall", "C1"), ("precision", "C2"))
        ):
            values = shown[metric].astype("float64")
            ax.barh(positions + (offset - 1) * 0.27, values, height=0.27, label=metric, color=color)
            ax.axvline(report[metric], linestyle="--", color=color, linewidth=1)
        labels = [f"{row.segment} ({row.rows}, {row.positives}+)" for row in shown.itertuples()]
        ax.set_yticks(positions, labels)
        ax.set(
            xlim=(0, 1),
            xlabel="test metric (dashed: whole test split)",
            title=f"metrics per {report['segments']['column']} (rows, positives)",
        )
        ax.legend(loc="lower right", fontsize="small")
        save(fig, "segments")
    robustness = tables.get("robustness")
    if robustness is not None and len(robustness) > 1:
        fig, ax = plt.subplots(figsize=(5, 4))
        for metric in ("pr_auc", "roc_auc"):
            ax.plot(robustness["noise_level"], robustness[metric], marker="o", label=metric)
        ax.set(
            xlabel="Gaussian noise (x training std per numeric feature)",
            ylabel="test metric",
            ylim=(0, 1.02),
            title="robustness to input noise",
        )
        ax.legend()
        save(fig, "robustness")


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
    report = score_report(val, test, target, val_scores, scores, cfg)
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
            )
            for name, (fitted, baseline) in baseline_models(splits["train"], schema, seed).items()
        }
    segment = pick_segment_column(schema, cfg.segment_column)
    if segment:
        report["segments"] = {
            "column": segment,
            "values": segment_metrics(test, scores, target, segment, report["threshold"]),
        }
    log.info("robustness and permutation importance on the test split")
    report["robustness"] = noise_robustness(test, score, transform, target, cfg.noise_levels, seed)
    importance = permutation_importance(
        test, score, schema.feature_columns, target, cfg.importance_repeats, seed
    )
    report["importance"] = dict(zip(importance["feature"], importance["pr_auc_drop"], strict=True))
    tables = curves(
        test[target].to_numpy(),
        scores,
        report["threshold"],
        cfg.calibration_bins,
        val[target].to_numpy(),
        val_scores,
    )
    tables["importance"] = importance
    tables["segments"] = segment_table(report.get("segments"))
    tables["robustness"] = robustness_table(report, cfg.noise_levels)
    return report, tables


def main() -> None:
    params = load_params()
    cfg: EvaluateParams = params.evaluate
    schema = load_schema(schema_path(params.data))
    model = load_keras_model(paths.KERAS_MODEL)
    transform = FeatureTransform.load(paths.FEATURE_TRANSFORM)
    splits = {
        "train": read_parquet(paths.SPLIT_TRAIN),
        "val": read_parquet(paths.SPLIT_VAL),
        "test": read_parquet(paths.SPLIT_TEST),
    }
    report, tables = evaluate(
        lambda frame: predict_proba(model, transform.transform(frame)),
        transform,
        splits,
        schema,
        cfg,
        params.seed,
    )
    for name, path in (
        ("pr", paths.PR_CURVE),
        ("roc", paths.ROC_CURVE),
        ("confusion", paths.CONFUSION),
        ("calibration", paths.CALIBRATION),
        ("threshold", paths.THRESHOLD_CURVE),
        ("importance", paths.IMPORTANCE),
        ("segments", paths.SEGMENTS),
        ("robustness", paths.ROBUSTNESS),
    ):
        write_csv_atomic(tables[name], path)
    with atomic_dir(paths.PLOT_IMAGES) as out:
        render_plots(tables, read_csv(paths.TRAINING_HISTORY), report, out)
    write_json_atomic(report, paths.EVALUATE_METRICS)
    log.info(
        "test PR-AUC %.4f, ROC-AUC %.4f, F1 %.4f at threshold %.4f (chosen on validation by %s)",
        report["pr_auc"],
        report["roc_auc"],
        report["f1"],
        report["threshold"],
        cfg.threshold_objective,
    )
    for name, baseline in report.get("baselines", {}).items():
        log.info(
            "baseline %s: test PR-AUC %.4f, ROC-AUC %.4f",
            name,
            baseline["pr_auc"],
            baseline["roc_auc"],
        )


if __name__ == "__main__":
    run_stage("evaluate", main)
