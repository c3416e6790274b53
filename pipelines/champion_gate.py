"""The champion gate: whether a challenger replaces ``@champion``, as ``gates.GateResult`` checks.

Both models are scored on the same rows, the current test split. The first model must clear
the floors. A later one is judged on the paired PR-AUC difference, challenger minus champion
(``pipelines.comparison``): the lower bound of its interval at ``register.confidence`` must lie
above ``-register.non_inferiority_margin`` (not worse beyond the margin) and, under
``register.require_improvement``, above 0 (better with that confidence). The point difference
must also exceed ``register.min_delta``, so a tie never moves the champion, and neither
recall nor calibration may regress beyond their tolerances. DeLong's test of the ROC-AUC
difference is reported beside it, for the reader; it does not decide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipelines import comparison, gates, metrics
from pipelines.comparison import Difference
from pipelines.config import RegisterParams
from pipelines.gates import GateResult

# The metrics the gate compares, kept as version tags ``test_<name>``.
GATE_METRICS = ("pr_auc", "recall", "ece")


@dataclass(frozen=True)
class GateMetrics:
    """What the gate compares, measured on the current test split."""

    pr_auc: float
    recall: float  # at the model's own decision threshold
    ece: float


@dataclass(frozen=True)
class Comparison:
    """Challenger minus champion on the same rows: PR-AUC decides, ROC-AUC is reported."""

    pr_auc: Difference
    roc_auc: Difference

    def differences(self) -> dict[str, Difference]:
        return {"pr_auc": self.pr_auc, "roc_auc": self.roc_auc}

    def record(self) -> dict[str, dict]:
        """Each difference with its models named, for the report and the audit."""
        named = {"a": "challenger", "b": "champion"}
        return {
            key: {named.get(k, k): v for k, v in asdict(difference).items()}
            for key, difference in self.differences().items()
        }

    def metrics(self) -> dict[str, float]:
        """MLflow metrics: each difference and its interval's bounds."""
        return {
            f"gate.{key}_difference{suffix}": getattr(difference, field)
            for key, difference in self.differences().items()
            for suffix, field in (("", "difference"), ("_lower", "lower"), ("_upper", "upper"))
        }

    def tests(self) -> str:
        """The tests behind the differences, for a tag."""
        return "; ".join(f"{k}: {d.test}" for k, d in self.differences().items())


@dataclass(frozen=True)
class Decision:
    """The champion gate's verdict: its checks, whether they all passed, and why, on one line."""

    promote: bool
    reason: str
    checks: tuple[GateResult, ...]
    comparison: Comparison | None = None  # None for the first model, or when none was possible


def gate_metrics(labels: np.ndarray, predictions: pd.DataFrame, bins: int) -> GateMetrics:
    """The gate's metrics of a model's predictions (``probability`` and its own ``label``)."""
    scores = predictions["probability"].to_numpy(dtype="float64")
    return GateMetrics(
        pr_auc=metrics.pr_auc(labels, scores),
        recall=metrics.recall(labels, predictions["label"].to_numpy()),
        ece=metrics.expected_calibration_error(labels, scores, bins),
    )


def compare(
    labels: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    cfg: RegisterParams,
    seed: int,
) -> Comparison:
    """The paired differences of two models' probabilities for the same rows."""
    return Comparison(
        pr_auc=comparison.paired_bootstrap(
            labels,
            challenger,
            champion,
            samples=cfg.bootstrap_samples,
            confidence=cfg.confidence,
            seed=seed,
        ),
        roc_auc=comparison.delong(labels, challenger, champion, confidence=cfg.confidence),
    )


def gate_decision(
    challenger: GateMetrics,
    champion: GateMetrics | None,
    cfg: RegisterParams,
    paired: Comparison | None = None,
    fairness: tuple[GateResult, ...] = (),
) -> Decision:
    """Whether the challenger replaces the champion, and why (every failed check is named).

    With a champion, ``paired`` (:func:`compare` on the same rows) is required. ``fairness``
    (:func:`disparity_checks`) applies either way."""
    if champion is None:
        checks = first_model_checks(challenger, cfg) + fairness
        return Decision(gates.passed(checks), "first model: " + gates.explain(checks), checks)
    if paired is None:
        raise ValueError("judging a challenger against a champion needs their paired comparison")
    checks = champion_checks(challenger, champion, paired.pr_auc, cfg) + fairness
    return Decision(gates.passed(checks), gates.explain(checks), checks, paired)


def disparity_checks(
    disparity: dict[str, float], max_disparity: float | None
) -> tuple[GateResult, ...]:
    """One check per sensitive column (evaluate's ``Disparity``); none when the gate is off."""
    if max_disparity is None:
        return ()
    return tuple(
        gates.at_most(
            f"disparity_{column}",
            value,
            max_disparity,
            f"{column}: disparity {value:.4f} {_sign(value <= max_disparity, '<=', '>')} "
            f"register.max_disparity {max_disparity}",
        )
        for column, value in disparity.items()
    )


def champion_unscorable(version: str, error: str) -> Decision:
    """The champion cannot score the current rows: no comparison, no checks, no move."""
    return Decision(
        promote=False,
        reason=(
            f"champion v{version} cannot be loaded or score the current test split ({error}); "
            "left in place for a person to decide (a different dataset needs its own "
            "register.model_name)"
        ),
        checks=(),
    )


def first_model_checks(challenger: GateMetrics, cfg: RegisterParams) -> tuple[GateResult, ...]:
    """With no champion yet, the challenger must clear the PR-AUC and recall floors."""
    pr_auc, recall = challenger.pr_auc, challenger.recall
    return (
        gates.at_least(
            "pr_auc_floor",
            pr_auc,
            cfg.min_pr_auc,
            f"PR-AUC {pr_auc:.4f} {_sign(pr_auc >= cfg.min_pr_auc, '>=', '<')} "
            f"floor {cfg.min_pr_auc:.4f}",
        ),
        gates.at_least(
            "recall_floor",
            recall,
            cfg.min_recall,
            f"recall {recall:.4f} {_sign(recall >= cfg.min_recall, '>=', '<')} "
            f"floor {cfg.min_recall:.4f}",
        ),
    )


def champion_checks(
    challenger: GateMetrics, champion: GateMetrics, pr_auc: Difference, cfg: RegisterParams
) -> tuple[GateResult, ...]:
    """The challenger must beat the champion's PR-AUC, with confidence when the policy asks,
    without recall or calibration regressing beyond their tolerances."""
    recall_drop = champion.recall - challenger.recall
    ece_rise = challenger.ece - champion.ece
    return (
        _gain_check(challenger, champion, cfg),
        *paired_checks(pr_auc, cfg),
        gates.at_most(
            "recall_drop",
            recall_drop,
            cfg.max_recall_drop,
            f"recall {challenger.recall:.4f} vs champion {champion.recall:.4f}: "
            f"drop {recall_drop:.4f} {_sign(recall_drop <= cfg.max_recall_drop, '<=', '>')} "
            f"{cfg.max_recall_drop}",
        ),
        gates.at_most(
            "ece_rise",
            ece_rise,
            cfg.max_ece_increase,
            f"calibration error {challenger.ece:.4f} vs champion {champion.ece:.4f}: "
            f"rise {ece_rise:.4f} {_sign(ece_rise <= cfg.max_ece_increase, '<=', '>')} "
            f"{cfg.max_ece_increase}",
        ),
    )


def paired_checks(pr_auc: Difference, cfg: RegisterParams) -> tuple[GateResult, ...]:
    """The lower bound of the PR-AUC difference's interval against the non-inferiority
    margin and, when improvement is required, against 0; measured is that bound."""
    lower, margin = pr_auc.lower, cfg.non_inferiority_margin
    interval = (
        f"PR-AUC difference {pr_auc.difference:+.4f}, {pr_auc.confidence:.0%} interval "
        f"[{lower:+.4f}, {pr_auc.upper:+.4f}] ({pr_auc.test}, {pr_auc.samples} resamples)"
    )
    checks = [
        gates.more_than(
            "pr_auc_non_inferior",
            lower,
            -margin,
            f"{interval}: lower bound {_sign(lower > -margin, '>', '<=')} -{margin}, "
            + ("not worse beyond the margin" if lower > -margin else "may be worse beyond it"),
        )
    ]
    if cfg.require_improvement:
        checks.append(
            gates.more_than(
                "pr_auc_improvement",
                lower,
                0.0,
                f"PR-AUC difference's lower bound {lower:+.4f} {_sign(lower > 0, '>', '<=')} 0: "
                f"{'better' if lower > 0 else 'not better'} with {pr_auc.confidence:.0%} "
                "confidence",
            )
        )
    return tuple(checks)


def _gain_check(challenger: GateMetrics, champion: GateMetrics, cfg: RegisterParams) -> GateResult:
    """The point difference must exceed ``min_delta``: reaching it exactly is not beating it."""
    gain = challenger.pr_auc - champion.pr_auc
    if gain > cfg.min_delta:
        reason = (
            f"PR-AUC {challenger.pr_auc:.4f} beats champion {champion.pr_auc:.4f} "
            f"by {gain:+.4f} > {cfg.min_delta}"
        )
    else:
        # With min_delta 0, a tie would otherwise move the champion on every rerun of an
        # unchanged model.
        verdict = (
            f"< {cfg.min_delta}" if gain < cfg.min_delta else f"does not exceed {cfg.min_delta}"
        )
        reason = (
            f"PR-AUC {challenger.pr_auc:.4f} vs champion {champion.pr_auc:.4f}: "
            f"gain {gain:+.4f} {verdict}"
        )
    return gates.more_than("pr_auc_gain", gain, cfg.min_delta, reason)


def _sign(holds: bool, passing: str, failing: str) -> str:
    """The comparison a reason shows between the measured value and its limit."""
    return passing if holds else failing
