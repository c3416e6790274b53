"""The bad-input catalogue: each broken input, fed through ingest and validate, and its outcome.

An outcome is either ``stops`` (a PipelineError whose message names the file or column and the
problem; nothing downstream runs) or ``cleans`` (the run goes on and the repair or quarantine
reason is recorded). docs/validation.md's table lists the same cases.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import drift
from pipelines.cleaning import clean_rows
from pipelines.config import IngestParams
from pipelines.errors import PipelineError
from pipelines.ingest import ingest
from pipelines.validate import validate
from tests.conftest import make_frame


@dataclass(frozen=True)
class Case:
    write: Callable[[Path, pd.DataFrame], None]
    outcome: str  # "stops" or "cleans"
    expect: str  # part of the error message, or the reason recorded


def changed(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable:
    def write(folder: Path, good: pd.DataFrame) -> None:
        change(good.copy()).to_parquet(folder / "part.parquet", index=False)

    return write


def raw_bytes(name: str, content: Callable[[pd.DataFrame], bytes]) -> Callable:
    def write(folder: Path, good: pd.DataFrame) -> None:
        (folder / name).write_bytes(content(good))

    return write


def two_partitions_reordered(folder: Path, good: pd.DataFrame) -> None:
    good.iloc[:200].to_parquet(folder / "day=1.parquet", index=False)
    good.iloc[200:][list(reversed(good.columns))].to_csv(folder / "day=2.csv", index=False)


def at(rows: list[int], column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype("object" if isinstance(value, str) else "float64")
        frame.loc[rows, column] = value
        return frame

    return change


def truncated_parquet(good: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    good.to_parquet(buffer, index=False)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


CATALOGUE = {
    "empty file": Case(raw_bytes("part.csv", lambda g: b""), "stops", "part.csv: file is empty"),
    "header only": Case(
        raw_bytes("part.csv", lambda g: (",".join(g.columns) + "\n").encode()),
        "stops",
        "part.csv: has a header but no rows",
    ),
    "missing column": Case(
        changed(lambda f: f.drop(columns="age")),
        "stops",
        "expect_table_columns_to_match_set failed (missing ['age'])",
    ),
    "extra column": Case(
        changed(lambda f: f.assign(surprise=1)),
        "stops",
        "expect_table_columns_to_match_set failed (extra ['surprise'])",
    ),
    "numbers as strings with commas": Case(
        changed(lambda f: f.assign(amount=f["amount"].map(lambda v: f"{v * 1000:,.2f}"))),
        "stops",
        "column 'amount': expected numeric",
    ),
    "all-null feature": Case(
        changed(lambda f: f.assign(age=np.nan)), "stops", "column 'age': every value is null"
    ),
    "NaN and +-inf": Case(
        changed(lambda f: at([1, 2, 3], "amount", np.nan)(at([4], "amount", np.inf)(f))),
        "cleans",
        "imputed:amount",
    ),
    "extreme outliers": Case(changed(at([1, 2], "amount", 1e15)), "cleans", "clipped:amount"),
    "unseen categories": Case(
        changed(at([1, 2], "color", "ultraviolet")), "cleans", "unseen_to_unknown:color"
    ),
    "exact duplicates": Case(
        changed(lambda f: pd.concat([f, f.iloc[:5]], ignore_index=True)),
        "cleans",
        "duplicate_row",
    ),
    "duplicate ids": Case(
        changed(lambda f: pd.concat([f, f.iloc[:5].assign(age=99)], ignore_index=True)),
        "cleans",
        "duplicate_id:row_id",
    ),
    "label with nulls": Case(
        changed(at([1, 2], "label", np.nan)),
        "stops",
        "column 'label': expect_column_values_to_not_be_null",
    ),
    "label with a third value": Case(
        changed(at([1, 2], "label", 7)),
        "stops",
        "column 'label': expect_column_values_to_be_in_set",
    ),
    "single-class label": Case(
        changed(lambda f: f.assign(label=0)),
        "stops",
        "positive share below min_positive_share",
    ),
    "non-UTF-8 CSV": Case(
        raw_bytes(
            "part.csv",
            lambda g: g.assign(color="caf\xe9").to_csv(index=False).encode("latin-1"),
        ),
        "stops",
        "part.csv: not UTF-8 text",
    ),
    "semicolon-separated CSV": Case(
        raw_bytes("part.csv", lambda g: g.to_csv(index=False, sep=";").encode()),
        "stops",
        "one column whose name holds semicolons: CSV sources must be comma-separated",
    ),
    "truncated Parquet": Case(
        raw_bytes("part.parquet", truncated_parquet), "stops", "part.parquet: cannot parse"
    ),
    "partition with a different column order": Case(two_partitions_reordered, "cleans", ""),
    "positive share far above the schema's bounds": Case(
        changed(lambda f: f.assign(label=(f.index % 4 > 0).astype("int64"))),
        "stops",
        "positive share above max_positive_share",
    ),
    "drift beyond the failing threshold": Case(
        changed(lambda f: f.assign(amount=f["amount"] * 10)),
        "stops",
        "drift against the last accepted snapshot above validate.drift_fail=0.25: column 'amount'",
    ),
}


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue(name, tmp_path, data_params, schema, validate_params):
    case = CATALOGUE[name]
    good = make_frame(seed=3)
    reference = drift.profile(clean_rows(make_frame(seed=4), schema, validate_params).clean, schema)
    landing = tmp_path / "landing"
    landing.mkdir()
    case.write(landing, good)
    source = data_params.model_copy(update={"source": str(landing)})

    def run():
        raw, _ = ingest(source, IngestParams(file_format="auto"))
        return raw, validate(raw, schema, validate_params, tmp_path / "docs", reference)

    if case.outcome == "stops":
        with pytest.raises(PipelineError) as error:
            run()
        assert case.expect in str(error.value)
        return
    raw, cleaned = run()
    recorded = set(cleaned.quarantined) | set(cleaned.repaired)
    assert case.expect in recorded or not case.expect, recorded
    assert len(cleaned.clean) + len(cleaned.quarantine) == len(raw)
    assert set(cleaned.clean.columns) == set(good.columns)
