"""Admission of raw rows to scoring: each row is either fit for the model or rejected, with a
reason, against the schema the model was trained under.

Validate's policies repair rows to build a training set; a scorer must not guess at the rows
it answers for, so nothing is repaired here. A row is rejected, with the first reason found
(in column order), for:

* ``wrong_type:<column>``: a cell that does not parse as its schema column's kind (text in a
  number column, a fraction in an integer column, a date that is not one);
* ``null:<column>``: a missing feature value (null, or an infinite number) where the schema
  says the feature is not nullable;
* ``out_of_range:<column>``: a number outside the schema's ``[min, max]``;
* ``unseen_category:<column>``: a category the schema does not list.

A missing feature column is not a row's fault: it is an error naming the column. Admitted
rows come back typed by the schema (numeric features float64, categories text), so that every
chunk of a run has the same Parquet schema; columns the schema does not know are carried as
text, and PII columns (``pii: true``) are dropped, from admitted and rejected rows alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.cleaning import REASON
from pipelines.errors import PipelineError
from pipelines.schema import ColumnSchema, Schema, category_text


@dataclass(frozen=True)
class Admitted:
    rows: pd.DataFrame  # the rows fit for scoring, typed by the schema
    rejects: pd.DataFrame  # the rejected rows, every cell as text, plus ``REASON``


class _Reasons:
    """The first reason found for each row."""

    def __init__(self, rows: int) -> None:
        self.reasons = np.full(rows, None, dtype=object)
        self.rejected = np.zeros(rows, dtype=bool)

    def reject(self, mask: np.ndarray, reason: str) -> None:
        new = np.asarray(mask, dtype=bool) & ~self.rejected
        self.reasons[new] = reason
        self.rejected |= new


def admit(frame: pd.DataFrame, schema: Schema, source: str) -> Admitted:
    """Split ``frame`` (raw rows read from ``source``) into scorable and rejected rows."""
    missing = [name for name in schema.feature_columns if name not in frame.columns]
    if missing:
        raise PipelineError(
            f"{source}: missing feature column(s) {missing}; the model scores "
            f"{schema.feature_columns}"
        )
    verdicts = _Reasons(len(frame))
    typed: dict[str, pd.Series] = {}
    for name in frame.columns:
        column = schema.columns.get(name)
        if column is None:
            typed[name] = _text(frame[name])
            continue
        if column.pii:
            continue
        values, wrong = _typed(frame[name], column)
        verdicts.reject(wrong, f"wrong_type:{name}")
        if column.role == "numeric":
            _check_numeric(name, values, column, verdicts)
        elif column.role == "categorical":
            _check_categorical(name, values, column, verdicts)
        typed[name] = values
    kept = ~verdicts.rejected
    rows = pd.DataFrame(typed, index=frame.index)[kept].reset_index(drop=True)
    rejected = frame.loc[verdicts.rejected, list(typed)]
    rejects = pd.DataFrame(
        {name: category_text(rejected[name]) for name in rejected.columns}
    ).reset_index(drop=True)
    rejects[REASON] = pd.Series(verdicts.reasons[verdicts.rejected], dtype=object)
    return Admitted(rows, rejects)


def _typed(series: pd.Series, column: ColumnSchema) -> tuple[pd.Series, np.ndarray]:
    """The column in its schema kind, and which cells did not parse as that kind."""
    present = series.notna().to_numpy()
    if column.kind in ("int", "float"):
        if pd.api.types.is_bool_dtype(series):
            series = series.astype("float64")
        numbers = pd.to_numeric(series, errors="coerce")
        values = numbers.astype("float64").replace([np.inf, -np.inf], np.nan)
        wrong = present & numbers.isna().to_numpy()
        if column.kind == "int":
            fraction = np.isfinite(values) & (values != np.round(values))
            wrong |= fraction.to_numpy()
            if column.role != "numeric":  # an integer key keeps its exact digits
                exact = numbers if pd.api.types.is_integer_dtype(numbers) else values.round()
                return exact.where(~wrong).astype("Int64"), wrong
        return values, wrong
    if column.kind == "datetime":
        return _datetimes(series, present)
    if column.kind != "bool":
        return _text(series), np.zeros(len(series), dtype=bool)
    text = category_text(series).str.lower()
    wrong = present & ~text.isin(["true", "false"]).to_numpy()
    return text.where(~wrong).map({"true": True, "false": False}).astype("boolean"), wrong


def _text(series: pd.Series) -> pd.Series:
    """The column as text, nulls kept; a text column as it is (ids hold a million distinct
    values, each converted one by one otherwise)."""
    if isinstance(series.dtype, pd.StringDtype):
        return series
    return category_text(series)


def _datetimes(series: pd.Series, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series, np.zeros(len(series), dtype=bool)
    try:
        values = pd.to_datetime(series, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # mixed time zones: compare them in UTC
        values = pd.to_datetime(series, errors="coerce", format="ISO8601", utc=True)
    return values, present & values.isna().to_numpy()


def _check_numeric(name: str, values: pd.Series, column: ColumnSchema, verdicts: _Reasons) -> None:
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    if not column.nullable:
        verdicts.reject(np.isnan(numbers), f"null:{name}")
    outside = np.zeros(len(numbers), dtype=bool)
    if column.min is not None:
        outside |= numbers < column.min
    if column.max is not None:
        outside |= numbers > column.max
    verdicts.reject(outside, f"out_of_range:{name}")


def _check_categorical(
    name: str, values: pd.Series, column: ColumnSchema, verdicts: _Reasons
) -> None:
    text = category_text(values)
    nulls = text.isna().to_numpy()
    if not column.nullable:
        verdicts.reject(nulls, f"null:{name}")
    unseen = ~nulls & ~text.isin(column.categories or []).to_numpy()
    verdicts.reject(unseen, f"unseen_category:{name}")
