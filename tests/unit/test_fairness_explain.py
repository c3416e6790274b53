"""Fairness across sensitive groups (with intervals and the optional gate) and SHAP."""

import numpy as np
import pandas as pd
import pytest

from pipelines import champion_gate, fairness
from pipelines.errors import PipelineError


def groups_frame(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Group b's positives are flagged half as often as group a's."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"group": rng.choice(["a", "b"], n), "label": rng.random(n) < 0.3})
    frame["label"] = frame["label"].astype(int)
    hit = np.where(frame["group"] == "a", 0.8, 0.4)
    flagged = np.where(frame["label"] == 1, rng.random(n) < hit, rng.random(n) < 0.1)
    return frame, flagged.astype(float)


def test_disparity_finds_the_group_with_lower_recall():
    frame, scores = groups_frame()
    report = fairness.disparities(frame, scores, 0.5, "label", ["group"], 200, 0.95, 0)["group"]
    a, b = report["groups"]
    assert (a["group"], b["group"]) == ("a", "b")
    assert b["recall"] < a["recall"]
    assert report["recall_ratio"] == pytest.approx(b["recall"] / a["recall"])
    assert 0.3 < report["recall_ratio"] < 0.7 and report["disparity"] > 0.3
    low, high = report["recall_ratio_ci"]
    assert low <= report["recall_ratio"] <= high and high - low < 0.4


def test_equal_groups_are_at_parity_and_bad_columns_are_named():
    frame = pd.DataFrame({"group": ["a", "b"] * 4, "label": [1, 1, 0, 0] * 2})
    report = fairness.disparities(
        frame, frame["label"].to_numpy(), 0.5, "label", ["group"], 0, 0.95, 0
    )
    assert report["group"]["disparity"] == 0.0 and "recall_ratio_ci" not in report["group"]
    with pytest.raises(PipelineError, match="'sex' not in the test split"):
        fairness.disparities(frame, frame["label"].to_numpy(), 0.5, "label", ["sex"], 0, 0.95, 0)


def test_disparity_gate_is_off_by_default_and_blocks_beyond_the_limit():
    assert champion_gate.disparity_checks({"group": 0.5}, None) == ()
    (check,) = champion_gate.disparity_checks({"group": 0.5}, 0.2)
    assert not check.passed and check.name == "disparity_group"
    assert "group: disparity 0.5000 > register.max_disparity 0.2" == check.reason
    assert champion_gate.disparity_checks({"group": 0.1}, 0.2)[0].passed


def test_shap_attributes_the_score_to_the_features_it_uses(frame, schema):
    from pipelines.explain import explain_model

    def score(rows: pd.DataFrame) -> np.ndarray:  # uses amount and color, never age
        amount = np.log(rows["amount"].astype(float))
        return 1 / (1 + np.exp(-(amount - 4 + (rows["color"] == "red"))))

    explanation = explain_model(score, frame.iloc[:300], frame.iloc[300:], schema, 8, 10, 1, 0)
    table = explanation.table()
    assert list(table["feature"]) == ["amount", "color", "age"]
    assert table["mean_abs_shap"].iloc[-1] == 0 and explanation.values.shape == (8, 3)


def test_shap_loads_its_numba_helpers_uncompiled_and_leaves_numba_as_it_was():
    """In a fresh process, as evaluate imports it: the explainer's helper is plain Python (no
    compile on the first explanation), and numba's JIT is on again for anything else."""
    import subprocess
    import sys

    probe = (
        "import numba; from pipelines.explain import import_shap; shap = import_shap(); "
        "from shap.utils import _masked_model; "
        "print(type(_masked_model._build_fixed_single_output).__name__, "
        "numba.config.DISABLE_JIT)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["function", "0"]
