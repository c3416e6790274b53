"""The monitoring decision: a window of scored rows against its model's reference.

Three families of checks, each a list of ``GateResult``:

- **drift**: each feature's PSI against the training data's profile, and the PSI of the
  window's probabilities against the model's own validation scores (a shift there with no
  feature drift points at an interaction the per-feature view misses);
- **quality**, once labels are known: realised PR-AUC and recall (at the model's threshold,
  the scorer's ``label``) against the test values recorded when the version was registered;
- **age**: days since the version was registered.

The decision is the first family that fails, in the order ``degraded`` (measured harm) >
``drift`` (a warning sign) > ``stale`` (time alone) > ``ok``; the reason lists every failure,
and says which families could not be judged (an empty or small window, no labels, too few
labelled positives). Pure: ``now`` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from pipelines import drift, gates, metrics
from pipelines.champion_reference import Reference
from pipelines.config import MonitorParams
from pipelines.gates import GateResult

Decision = Literal["ok", "drift", "degraded", "stale"]
# Earlier wins: see the module doc.
PRECEDENCE: tuple[Decision, ...] = ("degraded", "drift", "stale")
SCORE_COLUMNS = ("probability", "label")


@dataclass
class Assessment:
    decision: Decision
    reason: str
    checks: dict[str, list[GateResult]]
    not_judged: dict[str, str]
    numbers: dict[str, float | int | None] = field(default_factory=dict)

    def report(self) -> dict:
        return {
            "decision": self.decision,
            "reason": self.reason,
            **self.numbers,
            "not_judged": self.not_judged,
            "checks": {family: gates.as_records(done) for family, done in self.checks.items()},
        }


def assess(
    window: pd.DataFrame,
    labels: pd.Series | None,
    reference: Reference,
    cfg: MonitorParams,
    now: datetime,
) -> Assessment:
    """Judge ``window`` (scored rows) and, when given, ``labels`` (0/1, aligned with the
    window's index; NaN where a row's label is not known yet) against ``reference``."""
    age_days = (now - reference.registered_at).total_seconds() / 86_400
    checks: dict[str, list[GateResult]] = {
        "age": [
            gates.at_most(
                "model_age_days",
                round(age_days, 3),
                cfg.max_model_age_days,
                f"{reference.model_name} v{reference.version} registered {age_days:.1f} days ago "
                f"(max_model_age_days={cfg.max_model_age_days:g})",
            )
        ]
    }
    not_judged: dict[str, str] = {}
    numbers: dict[str, float | int | None] = {
        "rows": len(window),
        "model_version": int(reference.version),
        "model_age_days": round(age_days, 3),
    }
    drift_numbers, drift_checks, why = _drift(window, reference, cfg)
    numbers |= drift_numbers
    if why:
        not_judged["drift"] = why
    else:
        checks["drift"] = drift_checks
    quality_numbers, quality_checks, why = _quality(window, labels, reference, cfg)
    numbers |= quality_numbers
    if why:
        not_judged["quality"] = why
    else:
        checks["quality"] = quality_checks
    return _decide(checks, not_judged, numbers)


def _decide(
    checks: dict[str, list[GateResult]], not_judged: dict[str, str], numbers: dict
) -> Assessment:
    family_decision: dict[str, Decision] = {"quality": "degraded", "drift": "drift", "age": "stale"}
    failed = [
        (family_decision[family], gates.explain(done))
        for family, done in checks.items()
        if not gates.passed(done)
    ]
    failed.sort(key=lambda item: PRECEDENCE.index(item[0]))
    decision: Decision = failed[0][0] if failed else "ok"
    said = [f"{name}: {why}" for name, why in failed] or ["every judged check passed"]
    said += [f"{family} not judged: {why}" for family, why in not_judged.items()]
    return Assessment(decision, "; ".join(said), checks, not_judged, numbers)


def _drift(
    window: pd.DataFrame, reference: Reference, cfg: MonitorParams
) -> tuple[dict, list[GateResult], str | None]:
    if len(window) < cfg.min_rows:
        empty = "the window is empty" if window.empty else f"{len(window)} rows"
        return (
            {"max_psi": None, "prediction_psi": None},
            [],
            f"{empty} (< monitor.min_rows={cfg.min_rows})",
        )
    psi = drift.window_psi(reference.features, window)
    prediction = round(drift.binned_psi(reference.scores, window["probability"].to_numpy()), 6)
    checks = [
        *drift.gate(psi, cfg.psi_limit),
        gates.at_most(
            "prediction_psi",
            prediction,
            cfg.prediction_psi_limit,
            f"probability PSI {prediction:.3f} against the model's validation scores",
        ),
    ]
    numbers = {
        "max_psi": max(psi.values(), default=0.0),
        "max_psi_feature": max(psi, key=psi.__getitem__) if psi else None,
        "prediction_psi": prediction,
        "psi": psi,
    }
    return numbers, checks, None


def _quality(
    window: pd.DataFrame, labels: pd.Series | None, reference: Reference, cfg: MonitorParams
) -> tuple[dict, list[GateResult], str | None]:
    numbers: dict = {"labelled_rows": 0, "labelled_positives": 0}
    numbers |= {"realised_pr_auc": None, "realised_recall": None}
    if labels is None:
        return (
            numbers,
            [],
            "no labels (pass --labels: the id and target of scored rows; pipelines.score "
            "leaves the target out)",
        )
    known = labels.notna()
    truth = labels[known].to_numpy("int64")
    numbers |= {"labelled_rows": int(known.sum()), "labelled_positives": int(truth.sum())}
    if truth.sum() < cfg.min_labelled_positives or truth.sum() == len(truth):
        return (
            numbers,
            [],
            f"{int(truth.sum())} labelled positive(s) among {len(truth)} labelled rows "
            f"(monitor.min_labelled_positives={cfg.min_labelled_positives}, and a negative)",
        )
    scored = window.loc[known]
    realised = {
        "pr_auc": metrics.pr_auc(truth, scored["probability"].to_numpy("float64")),
        "recall": metrics.recall(truth, scored["label"].to_numpy("int64")),
    }
    numbers |= {f"realised_{k}": round(v, 6) for k, v in realised.items()}
    limits = {"pr_auc": cfg.max_pr_auc_drop, "recall": cfg.max_recall_drop}
    missing = [metric for metric in limits if metric not in reference.recorded]
    if missing:
        return numbers, [], f"v{reference.version} has no recorded test {', '.join(missing)}"
    checks = []
    for metric, limit in limits.items():
        # Against the interval's lower bound when registration recorded one: a window is
        # degraded only if it falls below what the test split could not rule out.
        baseline = reference.recorded_low.get(metric, reference.recorded[metric])
        what = "lower bound of its test interval" if metric in reference.recorded_low else "test"
        drop = baseline - realised[metric]
        numbers[f"{metric}_drop"] = round(drop, 6)
        checks.append(
            gates.at_most(
                f"{metric}_drop",
                round(drop, 6),
                limit,
                f"realised {metric} {realised[metric]:.3f} vs {baseline:.3f} "
                f"({what} at registration)",
            )
        )
    return numbers, checks, None


def labels_from(values: pd.Series, reference: Reference) -> pd.Series:
    """0/1 labels (NaN where unknown) from a target column, whatever its spelling; a value
    that is neither label raises ValueError naming it."""
    from pipelines.schema import canonical_labels

    canonical = canonical_labels(values)
    unknown = set(canonical.dropna()) - set(reference.label_values)
    if unknown:
        raise ValueError(f"values {sorted(unknown)[:5]} are not labels {reference.label_values}")
    positive = (canonical == reference.positive_label).astype("float64")
    return positive.where(canonical.notna(), np.nan)
