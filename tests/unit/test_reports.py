"""Each stage's full report and its few headline metrics."""

import json
import re
from pathlib import Path

import pytest
import yaml

import pipelines
from pipelines import evaluate, quantize
from pipelines.reports import HEADLINES, headline, stage_headline, write_results

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


def test_stage_headline_takes_exactly_the_stage_keys_in_their_order():
    assert list(stage_headline("validate", max_psi=0.1, rows=8)) == ["rows", "max_psi"]
    with pytest.raises(ValueError, match="validate headline"):
        stage_headline("validate", rows=8)
    with pytest.raises(ValueError, match="validate headline"):
        stage_headline("validate", rows=8, max_psi=0.1, rows_quarantined=2)


def test_stage_headline_leaves_out_what_the_stage_did_not_measure():
    assert stage_headline("tune", val_pr_auc=None) == {}


def test_evaluate_headline_keeps_pr_auc_and_roc_auc_at_the_top_level():
    scores = {"pr_auc": 0.7, "roc_auc": 0.9, "precision": 0.6, "recall": 0.5, "f1": 0.55}
    report = scores | {
        "threshold": 0.4,
        "brier": 0.02,
        "baselines": {"logistic_regression": scores | {"threshold": 0.3}},
        "importance": {"amount": 0.1},
    }
    assert evaluate.headline_metrics(report) == {"pr_auc": 0.7, "roc_auc": 0.9}


def test_quantize_headline_is_the_test_quality_of_the_served_artifact():
    def test(pr_auc):
        return {"pr_auc": pr_auc, "roc_auc": pr_auc + 0.2, "recall": 0.5}

    variant = {"bytes": 900, "size_ratio": 3.5, "pr_auc": 0.8, "test": test(0.69)}
    report = {"float": {"bytes": 5000, "test": test(0.7)}, "variants": {"int8": variant}}
    assert quantize.headline_metrics(report | {"serving_artifact": "int8"}) == {
        "pr_auc": 0.69,
        "roc_auc": pytest.approx(0.89),
    }
    assert quantize.headline_metrics(report | {"serving_artifact": "float"}) == {
        "pr_auc": 0.7,
        "roc_auc": pytest.approx(0.9),
    }


DVC_STAGES = yaml.safe_load((Path(__file__).parents[2] / "dvc.yaml").read_text())["stages"]
METRICS_FILES = {
    name: [next(iter(m)) if isinstance(m, dict) else m for m in stage.get("metrics", [])]
    for name, stage in DVC_STAGES.items()
}


def test_every_stage_metrics_file_has_its_headline_keys():
    declared = {name: files for name, files in METRICS_FILES.items() if files}
    assert set(declared) == set(HEADLINES)
    for name, files in declared.items():
        assert files == [f"data/metrics/{name}.json"]
        # The stage writes its metrics file through its own HEADLINES entry.
        source = (Path(pipelines.__file__).parent / f"{name}.py").read_text()
        assert re.search(rf'stage_headline\(\s*"{name}"', source), name


def test_dvc_metrics_show_fits_a_120_column_terminal():
    """`dvc metrics show` prints one table: a Path column, then one column per key of the union
    of every stage's metrics file (nested keys dotted). An upper bound of its width: each key
    column at least 8 wide (a value such as 0.81234) plus 4 of spacing."""
    path_column = max(len(f) for files in METRICS_FILES.values() for f in files)
    assert path_column == len("data/metrics/rebalance.json")
    columns = sorted({key for keys in HEADLINES.values() for key in keys})
    width = path_column + sum(max(len(key), 8) + 4 for key in columns)
    assert width <= 120, f"{width} columns: {columns}"
