"""The issue-18 demo: scikit-learn's breast-cancer data, pointed at through data: only, gets
intervals, the small-data CV estimate, SHAP and a paired champion gate decision."""

import json

import pytest

from tests.integration.conftest import make_repo_copy

pytestmark = pytest.mark.integration


def summary(repo) -> str:
    return repo.python("-m", "pipelines.summary", check=True).stdout


def test_breast_cancer_demo_prints_intervals_cv_and_a_paired_gate_decision(tmp_path):
    repo = make_repo_copy(
        tmp_path / "repo",
        params={
            "quantize": {"variants": ["dynamic_range"]},
            "evaluate": {
                "baselines": False,
                "importance_repeats": 0,
                "noise_levels": [],
                "cv_folds": 3,
                "shap_rows": 10,
                "shap_background": 10,
                "shap_permutations": 1,
            },
        },
    )
    repo.python("-m", "pipelines.breast_cancer", check=True)
    repo.set_params(
        {
            "data": {
                "source": "data/landing_breast_cancer",
                "target": "diagnosis",
                "positive_label": "malignant",
            },
            "register": {"model_name": "breast-cancer"},
        }
    )
    repo.dvc("repro", check=True)
    first = summary(repo)
    pr_line = next(line for line in first.splitlines() if "test PR-AUC" in line)
    assert "[" in pr_line and "]" in pr_line  # its bootstrap interval
    assert "-fold CV on" in first and "train+val rows" in first
    assert "first model" in first
    evaluate = json.loads((repo.root / "data/reports/evaluate.json").read_text())
    assert evaluate["cross_validation"]["pr_auc"]["mean"] > 0.5  # 4 epochs (TINY): a rough model
    assert (
        len(evaluate["shap"]) == 30 and (repo.root / "data/plots/images/shap_summary.png").exists()
    )

    # Registering the same model again: the gate decides on the paired difference (zero), and
    # a tie never moves the alias.
    repo.dvc("repro", "--force", "--single-item", "register", check=True)
    second = summary(repo)
    register = json.loads((repo.root / "data/reports/register.json").read_text())
    paired = register["comparison"]["pr_auc"]
    assert register["version"] == 2 and not register["promoted"]
    assert paired["difference"] == 0 and paired["lower"] <= 0 <= paired["upper"]
    assert f"gate               {register['reason']}" in second
