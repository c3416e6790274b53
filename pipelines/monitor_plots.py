"""The monitoring report as one PNG: feature drift, the score distribution, the decision."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import drift
from pipelines.plots import pyplot, save_png


def render(report: dict, reference_scores: dict, window: pd.DataFrame, out: Path) -> None:
    """Left: each feature's PSI against its limit. Right: the share of the window's
    probabilities in each of the reference's validation-score bins, beside the reference's."""
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4.5))
    psi = report.get("psi") or {}
    limits = report["limits"]
    if psi:
        names = sorted(psi, key=psi.__getitem__)
        left.barh(names, [psi[name] for name in names], color="C0")
        left.axvline(limits["psi_limit"], linestyle="--", color="C3", label="psi_limit")
        left.legend(loc="lower right", fontsize="small")
    else:
        left.text(0.5, 0.5, "drift not judged", ha="center", va="center")
    left.set(xlabel="PSI against the training data", title="feature drift")
    edges = np.asarray(reference_scores["edges"])
    positions = np.arange(len(edges) + 1)
    right.bar(positions - 0.2, reference_scores["shares"], width=0.4, label="validation")
    if not window.empty:
        shares = drift.binned_shares(window["probability"].to_numpy("float64"), edges)
        right.bar(positions + 0.2, shares, width=0.4, label="window")
    labels = ["low"] + [f">={edge:.2g}" for edge in edges]
    right.set_xticks(positions, labels, rotation=45, fontsize="small")
    prediction = report.get("prediction_psi")
    shown = "not judged" if prediction is None else f"PSI {prediction:.3f}"
    right.set(ylabel="share of rows", title=f"probability distribution ({shown})")
    right.legend(fontsize="small")
    heading = f"{report['decision'].upper()}: {report['reason']}"
    fig.suptitle(textwrap.shorten(heading, 300), fontsize="small", wrap=True)
    save_png(fig, out)
