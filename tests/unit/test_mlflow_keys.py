"""MLflow metric and tag names made from report keys and gate checks that embed column names."""

import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from pipelines import gates
from pipelines.lineage import metric_values
from pipelines.mlflow_keys import MAX_LENGTH, mlflow_key

AWKWARD_COLUMNS = [
    "Monthly Charges ($)",
    "debt/income",
    "a//b",
    "../up",
    "región",
    "50% quantile [EUR]",
    "x" * 400,
]


def _accepted_by_mlflow(name: str) -> bool:
    try:
        _validate_metric_name(name)
    except MlflowException:
        return False
    return len(name) <= MAX_LENGTH


@pytest.mark.parametrize("column", AWKWARD_COLUMNS)
def test_every_column_name_gives_a_metric_name_mlflow_accepts(column):
    name = mlflow_key(f"validate.repaired.imputed:{column}")
    assert _accepted_by_mlflow(name), name
    assert name.startswith("validate.repaired.imputed:")


def test_valid_names_are_kept_and_changed_ones_stay_distinct():
    assert mlflow_key("validate.repaired.imputed:amount") == ("validate.repaired.imputed:amount")
    assert mlflow_key("psi.región") == "psi.región"  # MLflow's \w is Unicode
    changed = {mlflow_key(f"psi.{column}") for column in ("a(b)", "a[b]", "a_b_")}
    assert len(changed) == 3


def test_report_numbers_come_out_under_valid_names():
    report = {"repaired": {"imputed:Monthly Charges ($)": 3, "imputed:tenure": 1}, "rows": 9}
    values = metric_values(report)
    assert values["repaired.imputed:tenure"] == 1 and values["rows"] == 9
    (awkward,) = set(values) - {"repaired.imputed:tenure", "rows"}
    assert awkward.startswith("repaired.imputed:Monthly Charges ___") and values[awkward] == 3
    assert all(_accepted_by_mlflow(name) for name in values)


def test_gate_tags_named_after_awkward_columns_are_valid_tag_keys():
    from mlflow.utils.validation import _validate_tag_name

    checks = [gates.at_most(f"disparity_{column}", 0.3, 0.5, "ok") for column in AWKWARD_COLUMNS]
    checks.append(gates.at_least("pr_auc_floor", 0.8, 0.05, "ok"))
    tags = gates.as_tags("champion", checks)
    assert len(tags) == len(checks) and "gate.champion.pr_auc_floor" in tags
    for key in tags:
        _validate_tag_name(key)  # raises on a key MLflow refuses
        assert len(key) <= MAX_LENGTH
