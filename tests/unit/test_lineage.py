"""MLflow metric names made from report keys that embed a dataset's column names."""

import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from pipelines.lineage import MAX_METRIC_NAME, metric_values, mlflow_metric_name

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
    return len(name) <= MAX_METRIC_NAME


@pytest.mark.parametrize("column", AWKWARD_COLUMNS)
def test_every_column_name_gives_a_metric_name_mlflow_accepts(column):
    name = mlflow_metric_name(f"validate.repaired.imputed:{column}")
    assert _accepted_by_mlflow(name), name
    assert name.startswith("validate.repaired.imputed:")


def test_valid_names_are_kept_and_changed_ones_stay_distinct():
    assert mlflow_metric_name("validate.repaired.imputed:amount") == (
        "validate.repaired.imputed:amount"
    )
    assert mlflow_metric_name("psi.región") == "psi.región"  # MLflow's \w is Unicode
    changed = {mlflow_metric_name(f"psi.{column}") for column in ("a(b)", "a[b]", "a_b_")}
    assert len(changed) == 3


def test_report_numbers_come_out_under_valid_names():
    report = {"repaired": {"imputed:Monthly Charges ($)": 3, "imputed:tenure": 1}, "rows": 9}
    values = metric_values(report)
    assert values["repaired.imputed:tenure"] == 1 and values["rows"] == 9
    (awkward,) = set(values) - {"repaired.imputed:tenure", "rows"}
    assert awkward.startswith("repaired.imputed:Monthly Charges ___") and values[awkward] == 3
    assert all(_accepted_by_mlflow(name) for name in values)
