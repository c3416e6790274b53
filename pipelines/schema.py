"""The reviewable schema of a dataset: column roles, dtypes, ranges, categories, label set.

On the first run with no schema file, ``infer_schema`` proposes one from the data (like TFX's
SchemaGen); the user curates the YAML file, and validation enforces it from then on.
Roles decide what the model sees: ``numeric`` and ``categorical`` are features; ``id``,
``timestamp`` and ``ignored`` (free text, high-cardinality keys) are carried but not learned.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines import paths
from pipelines.config import DataParams
from pipelines.errors import PipelineError
from pipelines.io import write_text_atomic

log = logging.getLogger(__name__)

Role = Literal["numeric", "categorical", "id", "timestamp", "ignored", "target"]
Kind = Literal["int", "float", "bool", "string", "datetime"]
UNKNOWN_CATEGORY = "__unknown__"
ROBUST_QUANTILE = 0.01
ID_UNIQUENESS = 0.99
# Inferred bounds are deliberately loose: they catch a broken feed, not a busy week.
MAX_ROWS_FACTOR = 100
POSITIVE_SHARE_FACTOR = 5.0
# Column names that usually hold personal data; inference flags them, the user curates.
PII_NAME = re.compile(
    r"^(name|ip|dob|pan)$|(^|_)(e?mail|email_address|phone|mobile|ssn|social_security|passport|"
    r"first_name|last_name|full_name|customer_name|holder_name|address|street|postcode|zip_code|"
    r"ip_address|iban|card_number|birth_date|date_of_birth)($|_)",
    re.I,
)


class ColumnSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    role: Role
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    impute: float | str | None = None
    categories: list[str] | None = None
    pii: bool = False

    @model_validator(mode="after")
    def _pii_is_never_a_feature(self) -> ColumnSchema:
        if self.pii and self.role in ("numeric", "categorical", "target"):
            raise ValueError(f"a pii column cannot have role {self.role!r} (use id or ignored)")
        return self


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    positive_label: str
    label_values: list[str] = Field(min_length=2, max_length=2)
    min_rows: int = Field(ge=1)
    max_rows: int | None = Field(default=None, ge=1)
    min_positive_share: float = Field(default=0.0, ge=0, le=1)
    max_positive_share: float = Field(default=1.0, ge=0, le=1)
    columns: dict[str, ColumnSchema]

    @model_validator(mode="after")
    def _consistent(self) -> Schema:
        if self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not among the columns")
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError("max_rows is below min_rows")
        if self.max_positive_share < self.min_positive_share:
            raise ValueError("max_positive_share is below min_positive_share")
        return self

    def features(self, role: Role) -> list[str]:
        return [name for name, col in self.columns.items() if col.role == role]

    @property
    def numeric(self) -> list[str]:
        return self.features("numeric")

    @property
    def categorical(self) -> list[str]:
        return self.features("categorical")

    @property
    def feature_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.role in ("numeric", "categorical")]

    @property
    def pii(self) -> list[str]:
        return [name for name, col in self.columns.items() if col.pii]


def canonical_label(value: object) -> str:
    """One spelling per label value, so 1, 1.0 and "1" all read as "1"."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def canonical_labels(series: pd.Series) -> pd.Series:
    """Canonical string labels; nulls stay null."""
    return _map_distinct(series, canonical_label)


def category_value(value: object) -> str:
    """One categorical value as the string the schema lists (booleans as "true"/"false")."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    return str(value)


def category_text(series: pd.Series) -> pd.Series:
    """Categorical values as the strings the schema lists (booleans as "true"/"false")."""
    return _map_distinct(series, category_value)


def _map_distinct(series: pd.Series, function) -> pd.Series:
    """``series.map(function)`` calling ``function`` once per distinct value (nulls stay null)."""
    codes, distinct = pd.factorize(series, use_na_sentinel=True)
    mapped = np.array([function(value) for value in distinct] + [None], dtype=object)
    return pd.Series(mapped[codes], index=series.index, dtype="object")


def column_kind(series: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def _looks_like_datetime(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(200)
    if sample.empty or not sample.str.contains(r"\d{4}-\d{2}-\d{2}", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="ISO8601")
    return bool(parsed.notna().all())


def infer_schema(
    frame: pd.DataFrame,
    data: DataParams,
    max_categories: int,
    range_margin: float,
    min_rows: int,
    pii: frozenset[str] = frozenset(),
) -> Schema:
    """Propose a schema from a (possibly dirty) frame; robust to outliers and rare defects.

    Columns in ``pii``, or named like personal data, are flagged ``pii: true``.
    """
    labels = canonical_labels(frame[data.target]).dropna()
    label_values = sorted(labels.unique().tolist())
    positive = canonical_label(data.positive_label)
    if len(label_values) != 2:
        raise PipelineError(
            f"column {data.target!r}: a binary label needs exactly 2 values, found {len(label_values)}: "
            f"{label_values[:10]}"
        )
    if positive not in label_values:
        raise PipelineError(
            f"data.positive_label: {data.positive_label!r} is not a value of {data.target!r} "
            f"(values: {label_values})"
        )
    columns: dict[str, ColumnSchema] = {}
    for name in frame.columns:
        series = frame[name]
        if name == data.target:
            columns[name] = ColumnSchema(kind=column_kind(series), role="target")
        elif name in pii or PII_NAME.search(str(name)):
            columns[name] = _pii_column(series)
        else:
            columns[name] = _infer_column(name, series, max_categories, range_margin)
    share = float((labels == positive).mean())
    return Schema(
        target=data.target,
        positive_label=positive,
        label_values=label_values,
        min_rows=min_rows,
        max_rows=max(min_rows, MAX_ROWS_FACTOR * len(frame)),
        min_positive_share=round(share / POSITIVE_SHARE_FACTOR, 6),
        max_positive_share=round(min(1.0, share * POSITIVE_SHARE_FACTOR), 6),
        columns=columns,
    )


def _pii_column(series: pd.Series) -> ColumnSchema:
    """Personal data is never a feature, and its values never reach the schema file."""
    distinct = series.dropna().nunique()
    unique = distinct >= ID_UNIQUENESS * len(series) and not series.isna().any()
    return ColumnSchema(
        kind=column_kind(series),
        role="id" if unique else "ignored",
        nullable=bool(series.isna().any()),
        pii=True,
    )


def _infer_column(name: str, series: pd.Series, max_categories: int, margin: float) -> ColumnSchema:
    kind = column_kind(series)
    nullable = bool(series.isna().any())
    non_null = series.dropna()
    if kind == "datetime" or (kind == "string" and _looks_like_datetime(series)):
        return ColumnSchema(kind=kind, role="timestamp", nullable=nullable)
    if kind == "bool":
        return ColumnSchema(
            kind=kind,
            role="categorical",
            nullable=nullable,
            categories=["false", "true"],
            impute=UNKNOWN_CATEGORY,
        )
    distinct = non_null.nunique()
    if kind == "string":
        if distinct <= max_categories:
            categories = sorted(non_null.astype(str).unique().tolist())
            return ColumnSchema(
                kind=kind,
                role="categorical",
                nullable=nullable,
                categories=categories,
                impute=UNKNOWN_CATEGORY,
            )
        role: Role = "id" if distinct >= ID_UNIQUENESS * len(series) and not nullable else "ignored"
        return ColumnSchema(kind=kind, role=role, nullable=nullable)
    values = pd.to_numeric(non_null, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    if values.empty:
        return ColumnSchema(kind=kind, role="ignored", nullable=nullable)
    if kind == "int" and distinct >= ID_UNIQUENESS * len(series) and _is_key_name(name):
        return ColumnSchema(kind=kind, role="id", nullable=nullable)
    low, high = values.quantile([ROBUST_QUANTILE, 1 - ROBUST_QUANTILE]).tolist()
    span = max(high - low, 1e-9)
    low, high = low - margin * span, high + margin * span
    if (values < 0).mean() < 0.01 and values.quantile(0.01) >= 0:
        low = max(low, 0.0)
    return ColumnSchema(
        kind=kind,
        role="numeric",
        nullable=nullable,
        min=float(low),
        max=float(high),
        impute=float(values.median()),
    )


def _is_key_name(name: str) -> bool:
    return bool(re.search(r"(^|_)(id|key|uuid)$", name.lower()))


def load_schema(path: Path) -> Schema:
    try:
        return Schema.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PipelineError(f"{path}: invalid schema: {problems}") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc


def load_enforced_schema() -> Schema:
    """The schema validate enforced on this run's data: what every stage after it reads.

    Later stages never look the dataset's schema file up by ``data.source``, so renaming the
    source or editing ``data:`` reruns them only through validate."""
    if not paths.ENFORCED_SCHEMA.exists():
        raise PipelineError(
            f"{paths.ENFORCED_SCHEMA}: missing; run the validate stage first (dvc repro)"
        )
    return load_schema(paths.ENFORCED_SCHEMA)


def publish_enforced_schema(schema: Schema) -> None:
    header = (
        "# Written by the validate stage: the schema it enforced on data/validated/clean.parquet.\n"
        "# Do not edit this copy; edit the dataset's schema in data/schemas/ instead.\n"
    )
    body = yaml.safe_dump(schema.model_dump(exclude_none=True), sort_keys=False)
    write_text_atomic(header + body, paths.ENFORCED_SCHEMA)


def save_schema(schema: Schema, path: Path) -> None:
    header = (
        "# Inferred by the validate stage; review and edit it. Validation enforces this file.\n"
        "# Roles: numeric/categorical are features; id, timestamp, ignored are not learned.\n"
    )
    body = yaml.safe_dump(schema.model_dump(exclude_none=True), sort_keys=False)
    write_text_atomic(header + body, path)
