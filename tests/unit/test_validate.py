from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipelines.cleaning import clean_rows
from pipelines.errors import PipelineError
from pipelines.expectations import describe_failure
from pipelines.schema import UNKNOWN_CATEGORY
from pipelines.validate import validate


def cfg(base, **changes):
    return base.model_copy(update=changes)


def test_clean_frame_passes_and_label_becomes_binary(frame, schema, validate_params, tmp_path):
    cleaned = validate(frame, schema, validate_params, tmp_path)
    assert len(cleaned.clean) == len(frame) and cleaned.quarantine.empty
    assert set(cleaned.clean["label"].unique()) == {0, 1}
    assert (tmp_path / "index.html").exists()


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda f: f.drop(columns="age"),
            "expect_table_columns_to_match_set failed (missing ['age'])",
        ),
        (
            lambda f: f.assign(extra=1),
            "expect_table_columns_to_match_set failed (extra ['extra'])",
        ),
        (
            lambda f: f.assign(label=f["label"].astype("float").where(f.index > 3)),
            "column 'label': expect_column_values_to_not_be_null",
        ),
        (
            lambda f: f.assign(label=f["label"].where(f.index > 3, 2)),
            "column 'label': expect_column_values_to_be_in_set",
        ),
        (lambda f: f.assign(label=0), "expect_column_distinct_values_to_contain_set"),
        (lambda f: f.head(5), "expect_table_row_count_to_be_between"),
        (
            lambda f: f.assign(amount=f["amount"].map(lambda v: f"{v:,.2f}")),
            "column 'amount': expected numeric",
        ),
    ],
)
def test_critical_problems_stop_with_the_column_named(
    frame, schema, validate_params, tmp_path, break_it, message
):
    with pytest.raises(PipelineError) as error:
        validate(break_it(frame), schema, validate_params, tmp_path)
    assert message.lower() in str(error.value).lower()


def test_a_missing_label_column_is_named_rather_than_crashing(
    frame, schema, validate_params, tmp_path
):
    # Issue 16: the positive-share message crashed formatting a share of None.
    with pytest.raises(PipelineError) as error:
        validate(frame.drop(columns="label"), schema, validate_params, tmp_path)
    message = str(error.value)
    assert "expect_table_columns_to_match_set failed (missing ['label'])" in message
    assert "column 'label': positive share below min_positive_share" in message
    assert 'The column "label" in BatchData does not exist' in message


def outcome(kind, kwargs=None, result=None, exception_info=None, meta=None):
    config = SimpleNamespace(type=kind, kwargs=kwargs or {}, meta=meta)
    return SimpleNamespace(expectation_config=config, result=result, exception_info=exception_info)


@pytest.mark.parametrize(
    ("failed", "message"),
    [
        (
            outcome(
                "expect_column_values_to_be_in_set",
                {"column": "label"},
                {"unexpected_percent": None},
                meta={"bound": "positive share below min_positive_share=0.01"},
            ),
            "column 'label': positive share below min_positive_share=0.01 (not measured",
        ),
        (
            outcome(
                "expect_column_values_to_not_be_in_set",
                {"column": "label"},
                None,
                {"raised_exception": True, "exception_message": None},
                meta={"bound": "positive share above max_positive_share=0.5"},
            ),
            "column 'label': positive share above max_positive_share=0.5 (raised an exception)",
        ),
        (
            outcome(
                "expect_column_values_to_be_in_set",
                {"column": "label"},
                {"unexpected_percent": 99.5},
                meta={"bound": "positive share below min_positive_share=0.01"},
            ),
            "positive share below min_positive_share=0.01 (observed 0.500%)",
        ),
        (
            outcome(
                "expect_table_columns_to_match_set",
                {"column_set": ["a", "b", "label"]},
                {"observed_value": ["label", "a", "c"]},
            ),
            "expect_table_columns_to_match_set failed (missing ['b']; extra ['c'])",
        ),
        (
            outcome("expect_table_columns_to_match_set", {"column_set": ["a"]}, {}),
            "expect_table_columns_to_match_set failed (no columns observed)",
        ),
        (
            outcome(
                "expect_table_row_count_to_be_between",
                {"min_value": 10, "max_value": None},
                {"observed_value": None},
            ),
            "expect_table_row_count_to_be_between failed (observed None rows, the schema allows "
            "at least 10)",
        ),
        (
            outcome(
                "expect_column_distinct_values_to_contain_set",
                {"column": "label"},
                {"observed_value": None, "partial_missing_list": ["1"]},
            ),
            "column 'label': expect_column_distinct_values_to_contain_set failed "
            "(no row has the value(s) ['1'])",
        ),
        (
            outcome("expect_column_values_to_not_be_null", {"column": "label"}, None),
            "column 'label': expect_column_values_to_not_be_null failed",
        ),
    ],
)
def test_every_failure_message_names_its_culprit_and_never_crashes(failed, message):
    assert message in describe_failure(failed)


def dirty(frame):
    frame = frame.copy()
    frame["amount"] = frame["amount"].astype("float64")
    frame.loc[0, "amount"] = np.nan
    frame.loc[1, "amount"] = np.inf
    frame.loc[2, "amount"] = -np.inf
    frame.loc[3, "amount"] = 1e12
    frame.loc[4, "color"] = "purple"
    frame.loc[5, "color"] = None
    return pd.concat(
        [frame, frame.iloc[[10, 11]], frame.iloc[[12]].assign(age=33)], ignore_index=True
    )


@pytest.mark.parametrize(
    ("policy", "with_id", "quarantined"),
    [
        ("auto", True, {"duplicate_row": 2}),
        ("auto", False, {}),  # without an id, equal rows are distinct observations
        ("quarantine", False, "every repeat"),
        ("keep", True, {"duplicate_id:row_id": 2}),  # a repeated id is still a defect
        ("keep", False, {}),
    ],
)
def test_exact_duplicate_rows_follow_the_policy(
    frame, schema, validate_params, policy, with_id, quarantined
):
    rows = pd.concat([frame, frame.iloc[[10, 11]]], ignore_index=True)
    cfg = validate_params.model_copy(update={"duplicate_rows": policy})
    if not with_id:
        rows = rows.drop(columns="row_id")
        schema = schema.model_copy(
            update={"columns": {k: v for k, v in schema.columns.items() if k != "row_id"}}
        )
    if quarantined == "every repeat":  # the two copies, and rows that agree by chance
        quarantined = {"duplicate_row": int(rows.duplicated().sum())}
        assert quarantined["duplicate_row"] >= 2
    result = clean_rows(rows, schema, cfg)
    assert result.quarantined == quarantined
    assert len(result.clean) == len(rows) - sum(quarantined.values())


def test_repair_policies(frame, schema, validate_params):
    result = clean_rows(dirty(frame), schema, validate_params)
    assert result.quarantined == {"duplicate_id:row_id": 1, "duplicate_row": 2}
    clean = result.clean.set_index("row_id")
    amount = schema.columns["amount"]
    # NaN and +-inf are missing values (imputed); a huge finite value is clipped.
    assert (clean.loc[["r00000", "r00001", "r00002"], "amount"] == amount.impute).all()
    assert clean.loc["r00003", "amount"] == amount.max
    assert (
        clean.loc["r00004", "color"] == UNKNOWN_CATEGORY
        and clean.loc["r00005", "color"] == UNKNOWN_CATEGORY
    )
    natural = int((~frame["amount"].between(amount.min, amount.max)).sum())
    assert result.repaired["clipped:amount"] == natural + 1
    assert result.repaired["imputed:amount"] == 3
    assert result.repaired["unseen_to_unknown:color"] == 1


def test_drop_policies_quarantine_with_reasons(frame, schema, validate_params):
    strict = cfg(
        validate_params,
        null_policy="drop",
        out_of_range_policy="drop",
        unseen_category_policy="drop",
    )
    result = clean_rows(dirty(frame), schema, strict)
    reasons = dict(zip(result.quarantine["row_id"], result.quarantine["reason"], strict=True))
    assert reasons["r00000"] == reasons["r00001"] == reasons["r00002"] == "null:amount"
    assert reasons["r00003"] == "out_of_range:amount"
    assert reasons["r00004"] == "unseen_category:color" and reasons["r00005"] == "null:color"
    assert len(result.clean) + len(result.quarantine) == len(frame) + 3
    dropped = [row for row, reason in reasons.items() if not reason.startswith("duplicate")]
    assert not result.clean["row_id"].isin(dropped).any()


def test_nullable_columns_are_imputed_even_under_drop(frame, data_params, validate_params):
    from pipelines.schema import infer_schema

    frame = frame.assign(amount=frame["amount"].where(frame.index != 7))
    schema = infer_schema(frame, data_params, 10, 0.5, 10)
    assert schema.columns["amount"].nullable
    result = clean_rows(frame, schema, cfg(validate_params, null_policy="drop"))
    assert result.quarantine.empty and result.repaired["imputed:amount"] == 1
