"""PNG plots: the matplotlib set-up every plot shares, and evaluate's renderers.

The CSV tables under ``data/plots`` are what `dvc plots` draws; these PNGs are the same plots
for MLflow and for people without `dvc plots`. matplotlib is imported on first use, so that
importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def pyplot():
    """pyplot on the file-only Agg backend: stages run without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> None:
    """Lay out, write ``fig`` to ``path`` at 100 dpi and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def render_plots(tables: dict[str, pd.DataFrame], history: pd.DataFrame, report: dict, out) -> None:
    """PNG versions of every evaluate plot, written into the folder ``out``."""
    render_curve_plots(tables, report, out)
    render_confusion_matrix(report, out)
    render_importance(tables.get("importance"), out)
    render_bias_plots(tables, report, out)
    render_training_curves(history, out)


def render_curve_plots(tables: dict[str, pd.DataFrame], report: dict, out) -> None:
    """The PR, ROC, calibration and threshold curves."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(tables["pr"]["recall"], tables["pr"]["precision"])
    _band(ax, tables.get("pr_band"), "recall", report)
    ax.set(
        xlabel="recall", ylabel="precision", title=_area_title("PR curve", "AP", "pr_auc", report)
    )
    save_png(fig, out / "pr_curve.png")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(tables["roc"]["fpr"], tables["roc"]["tpr"])
    _band(ax, tables.get("roc_band"), "fpr", report)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=_area_title("ROC curve", "AUC", "roc_auc", report),
    )
    save_png(fig, out / "roc_curve.png")
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
    save_png(fig, out / "calibration.png")
    fig, ax = plt.subplots(figsize=(5, 4))
    for column in ("precision", "recall"):
        ax.plot(tables["threshold"]["threshold"], tables["threshold"][column], label=column)
    ax.axvline(report["threshold"], linestyle="--", color="grey", label="chosen")
    ax.set(xlabel="threshold", title="precision / recall by threshold (validation)")
    ax.legend()
    save_png(fig, out / "threshold.png")


def _band(ax, band: pd.DataFrame | None, x: str, report: dict) -> None:
    """Shade the curve's pointwise bootstrap interval; nothing when intervals are off."""
    if band is None or band.empty:
        return
    confidence = report["bootstrap"]["confidence"]
    ax.fill_between(
        band[x], band["low"], band["high"], step="post", alpha=0.25, label=f"{confidence:.0%} band"
    )
    ax.legend(loc="lower right", fontsize="small")


def _area_title(curve: str, area: str, metric: str, report: dict) -> str:
    """ "PR curve (AP 0.529, 95% CI 0.47-0.59)", or without the interval when it is off."""
    ci = report.get(f"{metric}_ci")
    if not ci:
        return f"{curve} ({area} {report[metric]:.3f})"
    confidence = report["bootstrap"]["confidence"]
    return f"{curve} ({area} {report[metric]:.3f}, {confidence:.0%} CI {ci[0]:.2f}-{ci[1]:.2f})"


def render_confusion_matrix(report: dict, out) -> None:
    fig, ax = pyplot().subplots(figsize=(4, 4))
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
    save_png(fig, out / "confusion_matrix.png")


def render_importance(importance: pd.DataFrame | None, out) -> None:
    """The 20 most important features' PR-AUC drops; nothing when importance is off."""
    if importance is None or importance.empty:
        return
    shown = importance.head(20).iloc[::-1]
    fig, ax = pyplot().subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["pr_auc_drop"], xerr=shown["std"])
    ax.set(xlabel="test PR-AUC drop when shuffled", title="permutation importance")
    save_png(fig, out / "importance.png")


def render_bias_plots(tables: dict[str, pd.DataFrame], report: dict, out) -> None:
    """PNGs of the per-segment and noise-robustness metrics (also tables for `dvc plots`)."""
    plt = pyplot()
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
            ax.barh(
                positions + (offset - 1) * 0.27,
                values,
                height=0.27,
                label=metric,
                color=color,
                xerr=_error_bars(shown, metric),
            )
            ax.axvline(report[metric], linestyle="--", color=color, linewidth=1)
        labels = [f"{row.segment} ({row.rows}, {row.positives}+)" for row in shown.itertuples()]
        ax.set_yticks(positions, labels)
        ax.set(
            xlim=(0, 1),
            xlabel="test metric (dashed: whole test split)",
            title=f"metrics per {report['segments']['column']} (rows, positives)",
        )
        ax.legend(loc="lower right", fontsize="small")
        save_png(fig, out / "segments.png")
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
        save_png(fig, out / "robustness.png")


def _error_bars(table: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Distances from each value to its interval's ends, as barh's xerr; None without them."""
    if f"{metric}_low" not in table or table[f"{metric}_low"].isna().all():
        return None
    values = table[metric].astype("float64")
    low, high = table[f"{metric}_low"].astype("float64"), table[f"{metric}_high"].astype("float64")
    # A percentile interval can miss its point estimate on skewed data: no negative bar.
    return np.clip(np.nan_to_num(np.vstack([values - low, high - values])), 0, None)


def render_training_curves(history: pd.DataFrame, out) -> None:
    """Loss and PR-AUC by epoch, on the resampled training data and on validation."""
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "pr_auc"), strict=True):
        for column, label in ((metric, "train (resampled)"), (f"val_{metric}", "validation")):
            if column in history:
                ax.plot(history["epoch"], history[column], label=label)
        ax.set(xlabel="epoch", title=metric)
        ax.legend()
    save_png(fig, out / "training_curves.png")


def render_shap(explanation, out) -> None:
    """SHAP's beeswarm summary of ``explain.Explanation``; nothing when SHAP is off."""
    if explanation is None:
        return
    import shap

    plt = pyplot()
    plt.figure()
    shap.summary_plot(
        explanation.values,
        explanation.data,
        feature_names=explanation.features,
        max_display=20,
        show=False,
    )
    fig = plt.gcf()
    fig.suptitle("SHAP values (test rows, probability units)")
    save_png(fig, out / "shap_summary.png")
