"""A second real dataset, pointed at through the data: keys only: scikit-learn's bundled
breast-cancer data (the issue-18 demo). One pipeline run gets its own inferred schema,
intervals, the small-data CV estimate, SHAP and a first champion; a retrain with another
learning rate then goes through the paired champion gate."""

import json

import pytest

from tests.integration.conftest import make_repo_copy

pytestmark = pytest.mark.integration


def summary(repo) -> str:
    return repo.python("-m", "pipelines.summary", check=True).stdout


def test_breast_cancer_needs_only_the_data_keys_and_gets_intervals_cv_shap_and_a_paired_gate(
    tmp_path,
):
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
            }
        }
    )
    repo.dvc("repro", check=True)
    assert (repo.root / "data/schemas/tabular-classifier__diagnosis.yaml").exists()
    first = summary(repo)
    assert "schema             INFERRED" in first
    pr_line = next(line for line in first.splitlines() if "test PR-AUC" in line)
    assert "[" in pr_line and "]" in pr_line  # its bootstrap interval
    assert "-fold CV on" in first and "train+val rows" in first
    assert "first model" in first
    evaluate = json.loads((repo.root / "data/reports/evaluate.json").read_text())
    assert evaluate["pr_auc"] > 0.8 and evaluate["test_positives"] > 0
    assert evaluate["cross_validation"]["pr_auc"]["mean"] > 0.5  # 4 epochs (TINY): a rough model
    assert (
        len(evaluate["shap"]) == 30 and (repo.root / "data/plots/images/shap_summary.png").exists()
    )

    # A retrain with another learning rate: a new lineage, so a new version, which the gate
    # judges on the paired difference with the champion on the same test rows. (Without the
    # CV estimate this time: the first run checked it, and it trains three more models.)
    repo.set_params({"train": {"learning_rate": 0.003}, "evaluate": {"cv": "off"}})
    repo.dvc("repro", check=True)
    second = summary(repo)
    register = json.loads((repo.root / "data/reports/register.json").read_text())
    paired = register["comparison"]["pr_auc"]
    assert register["version"] == 2
    assert paired["lower"] <= paired["difference"] <= paired["upper"]
    assert f"gate               {register['reason']}" in second
