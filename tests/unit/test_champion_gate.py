"""The champion gate speaks the gate vocabulary: its checks, their records and their tags."""

import pytest

from pipelines import gates
from pipelines.config import RegisterParams
from pipelines.promotion import GateMetrics, gate_decision


def register_params(**changes) -> RegisterParams:
    base = dict(
        model_name="m",
        experiment_name="e",
        min_delta=0.0,
        max_recall_drop=0.05,
        max_ece_increase=0.02,
        min_pr_auc=0.2,
        min_recall=0.1,
    )
    return RegisterParams(**(base | changes))


CHAMPION = GateMetrics(pr_auc=0.5, recall=0.6, ece=0.02)


@pytest.mark.parametrize("min_delta", [0.0, 0.01])
def test_a_tie_never_moves_the_champion(min_delta):
    same = GateMetrics(pr_auc=0.5, recall=0.6, ece=0.02)
    decision = gate_decision(same, CHAMPION, register_params(min_delta=min_delta))
    assert not decision.promote
    assert [c.name for c in gates.failures(decision.checks)] == ["pr_auc_gain"]
    assert "gain +0.0000" in decision.reason


def test_reaching_min_delta_exactly_is_not_beating_it():
    cfg = register_params(min_delta=0.25)
    decision = gate_decision(GateMetrics(0.75, 0.6, 0.02), CHAMPION, cfg)
    assert not decision.promote
    assert decision.reason == (
        "PR-AUC 0.7500 vs champion 0.5000: gain +0.2500 does not exceed 0.25"
    )


def test_any_gain_beats_a_zero_min_delta():
    decision = gate_decision(GateMetrics(0.5001, 0.6, 0.02), CHAMPION, register_params())
    assert decision.promote and "beats champion" in decision.reason


def test_champion_checks_are_records_and_tags():
    decision = gate_decision(GateMetrics(0.6, 0.5, 0.03), CHAMPION, register_params())
    records = gates.as_records(decision.checks)
    assert [(r["name"], r["passed"]) for r in records] == [
        ("pr_auc_gain", True),
        ("recall_drop", False),
        ("ece_rise", True),
    ]
    assert records[0]["measured"] == pytest.approx(0.1) and records[0]["limit"] == 0.0
    assert records[1]["measured"] == pytest.approx(0.1) and records[1]["limit"] == 0.05
    assert records[2]["measured"] == pytest.approx(0.01) and records[2]["limit"] == 0.02
    assert decision.reason == "recall 0.5000 vs champion 0.6000: drop 0.1000 > 0.05"
    tags = gates.as_tags("champion", decision.checks)
    assert list(tags) == [
        "gate.champion.pr_auc_gain",
        "gate.champion.recall_drop",
        "gate.champion.ece_rise",
    ]
    assert tags["gate.champion.recall_drop"] == f"fail: {decision.reason}"
    assert tags["gate.champion.pr_auc_gain"] == (
        "pass: PR-AUC 0.6000 beats champion 0.5000 by +0.1000 > 0.0"
    )
    assert tags["gate.champion.ece_rise"] == (
        "pass: calibration error 0.0300 vs champion 0.0200: rise 0.0100 <= 0.02"
    )


def test_first_model_checks_the_floors():
    passing = gate_decision(GateMetrics(0.5, 0.6, 0.02), None, register_params())
    assert passing.promote
    assert [c.name for c in passing.checks] == ["pr_auc_floor", "recall_floor"]
    assert passing.reason == (
        "first model: PR-AUC 0.5000 >= floor 0.2000; recall 0.6000 >= floor 0.1000"
    )
    failing = gate_decision(GateMetrics(0.1, 0.05, 0.02), None, register_params())
    assert not failing.promote
    assert failing.reason == (
        "first model: PR-AUC 0.1000 < floor 0.2000; recall 0.0500 < floor 0.1000"
    )
    assert gates.as_records(failing.checks)[1] == {
        "name": "recall_floor",
        "passed": False,
        "measured": 0.05,
        "limit": 0.1,
        "reason": "recall 0.0500 < floor 0.1000",
    }
