"""Each stage's full report and its few headline metrics."""

import json

import pytest

from pipelines import evaluate, quantize
from pipelines.reports import headline, write_results

REPORT = {
    "rows_in": 10,
    "rows_clean": 8,
    "quarantined": {"null": 2},
    "drift": {"max_psi": 0.1, "psi": {"amount": 0.1}},
}


def test_headline_picks_keys_in_order_and_keeps_the_nesting_of_dotted_ones():
    picked = headline(REPORT, "rows_clean", "drift.max_psi", "rows_in")
    assert picked == {"rows_clean": 8, "drift": {"max_psi": 0.1}, "rows_in": 10}
    assert list(picked) == ["rows_clean", "drift", "rows_in"]


def test_headline_of_a_missing_key_fails_loudly():
    with pytest.raises(KeyError):
        headline(REPORT, "drift.mean_psi")


def test_write_results_writes_the_report_whole_and_the_headline(tmp_path):
    report_path, metrics_path = tmp_path / "reports" / "s.json", tmp_path / "metrics" / "s.json"
    write_results(REPORT, report_path, headline(REPORT, "rows_in"), metrics_path)
    assert json.loads(report_path.read_text()) == REPORT
    assert json.loads(metrics_path.read_text()) == {"rows_in": 10}
    assert not list(tmp_path.rglob("*.tmp"))


def test_evaluate_headline_keeps_pr_auc_and_roc_auc_at_the_top_level():
    scores = {"pr_auc": 0.7, "roc_auc": 0.9, "precision": 0.6, "recall": 0.5, "f1": 0.55}
    report = scores | {
        "threshold": 0.4,
        "brier": 0.02,
        "baselines": {"logistic_regression": scores | {"threshold": 0.3}},
        "importance": {"amount": 0.1},
    }
    assert evaluate.headline_metrics(report) == {
        "pr_auc": 0.7,
        "roc_auc": 0.9,
        "precision": 0.6,
        "recall": 0.5,
    }


def test_quantize_headline_is_the_served_artifact():
    variant = {"bytes": 900, "size_ratio": 3.5, "pr_auc_drop": 0.002, "recall": 0.5}
    report = {"float": {"bytes": 5000}, "variants": {"int8": variant}}
    assert quantize.headline_metrics(report | {"serving_artifact": "int8"}) == {
        "serving_artifact": "int8",
        "size_ratio": 3.5,
        "pr_auc_drop": 0.002,
    }
    assert quantize.headline_metrics(report | {"serving_artifact": "float"}) == {
        "serving_artifact": "float",
        "pr_auc_drop": 0.0,
    }
