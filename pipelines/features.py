"""The feature transform that ships with the model: raw rows in, a float32 matrix out.

Numeric features are clipped to the schema's range and standardised with the training mean
and std (nulls become the mean);
categorical features are one-hot encoded over the training vocabulary plus an
``__unknown__`` slot for anything else. It is fitted once, in train, saved as JSON beside
the model, and applied unchanged by evaluate, quantize and the served pyfunc.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import PipelineError
from pipelines.io import write_text_atomic
from pipelines.schema import UNKNOWN_CATEGORY, Schema, category_text


@dataclass(frozen=True)
class FeatureTransform:
    numeric: list[str]
    lower: list[float]
    upper: list[float]
    means: list[float]
    stds: list[float]
    categorical: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pd.DataFrame, schema: Schema) -> FeatureTransform:
        numeric = schema.numeric
        lower = [_or(schema.columns[name].min, -np.inf) for name in numeric]
        upper = [_or(schema.columns[name].max, np.inf) for name in numeric]
        values = frame[numeric].astype("float64").replace([np.inf, -np.inf], np.nan)
        values = values.clip(
            lower=pd.Series(lower, index=numeric), upper=pd.Series(upper, index=numeric), axis=1
        )
        stds = values.std(ddof=0).fillna(1.0).replace(0.0, 1.0)
        categorical = {
            name: sorted(set(category_text(frame[name]).dropna().unique()) - {UNKNOWN_CATEGORY})
            for name in schema.categorical
        }
        return cls(
            numeric, lower, upper, values.mean().fillna(0.0).tolist(), stds.tolist(), categorical
        )

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(v) + 1 for v in self.categorical.values())

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in [*self.numeric, *self.categorical] if c not in frame.columns]
        if missing:
            raise PipelineError(f"input rows lack feature column(s) {missing}")
        blocks = []
        if self.numeric:
            values = np.column_stack([_numeric(frame[name], name) for name in self.numeric])
            means = np.asarray(self.means)
            values = np.clip(
                values,
                np.asarray(self.lower, dtype="float64"),
                np.asarray(self.upper, dtype="float64"),
            )
            values = np.where(np.isnan(values), means, values)
            blocks.append((values - means) / np.asarray(self.stds))
        for name, vocabulary in self.categorical.items():
            index = {value: i for i, value in enumerate(vocabulary)}
            codes = category_text(frame[name]).map(index).fillna(len(vocabulary)).to_numpy("int64")
            blocks.append(np.eye(len(vocabulary) + 1)[codes])
        if not blocks:
            raise PipelineError("the schema declares no numeric or categorical feature")
        return np.hstack(blocks).astype("float32")

    def save(self, path: Path) -> None:
        write_text_atomic(json.dumps(asdict(self), indent=1), path)

    @classmethod
    def load(cls, path: Path) -> FeatureTransform:
        return cls(**json.loads(Path(path).read_text()))


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _numeric(series: pd.Series, name: str) -> np.ndarray:
    """A numeric feature as float64; text that is not a number is an error, not a NaN."""
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        examples = series[bad].astype(str).head(3).tolist()
        raise PipelineError(f"column {name!r}: expected numbers, got {examples}")
    return values.to_numpy("float64")
