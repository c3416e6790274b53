"""The feature transform that ships with the model: raw rows in, a float32 matrix out.

Numeric features are clipped to the schema's range and standardised with the training mean
and std (nulls become the mean);
categorical features are encoded over the training vocabulary plus an ``__unknown__`` slot
for anything else, either

* ``one_hot``: one 0/1 column per vocabulary entry plus one for unknown, or
* ``embedding``: one column per feature holding its integer code as a float (0 ..
  len(vocabulary) - 1 for the vocabulary, len(vocabulary) for unknown), which the model
  looks up in its own Embedding layer (``pipelines.model.build_model``).

Either way the output is ONE float32 matrix, numeric columns first, so evaluate, quantize,
serving and the TFLite converters feed the model the same way. It is fitted once, in train,
saved as JSON beside the model (with its encoding; a file without one is ``one_hot``), and
applied unchanged by evaluate and quantize. The served pyfunc ships ``pipelines/serving.py``,
which applies the same JSON without importing this package; a unit test holds the two equal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd

from pipelines.config import CategoricalEncoding
from pipelines.errors import PipelineError
from pipelines.io import write_text_atomic
from pipelines.schema import UNKNOWN_CATEGORY, Schema, category_text

ENCODINGS = get_args(CategoricalEncoding)


@dataclass(frozen=True)
class FeatureTransform:
    numeric: list[str]
    lower: list[float]
    upper: list[float]
    means: list[float]
    stds: list[float]
    categorical: dict[str, list[str]]
    encoding: CategoricalEncoding = "one_hot"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise PipelineError(f"unknown categorical encoding {self.encoding!r}; use {ENCODINGS}")

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        schema: Schema,
        encoding: CategoricalEncoding = "one_hot",
    ) -> FeatureTransform:
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
        means = values.mean().fillna(0.0).tolist()
        return cls(numeric, lower, upper, means, stds.tolist(), categorical, encoding)

    @property
    def width(self) -> int:
        if self.encoding == "embedding":
            return len(self.numeric) + len(self.categorical)
        return len(self.numeric) + sum(len(v) + 1 for v in self.categorical.values())

    @property
    def levels(self) -> list[int]:
        """Codes per categorical feature, the unknown slot included (embedding input sizes)."""
        return [len(vocabulary) + 1 for vocabulary in self.categorical.values()]

    @property
    def code_columns(self) -> dict[int, int]:
        """Matrix column -> highest code, for the embedding encoding's code columns."""
        if self.encoding != "embedding":
            return {}
        first = len(self.numeric)
        return {first + i: levels - 1 for i, levels in enumerate(self.levels)}

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
            codes = category_codes(category_text(frame[name]), vocabulary)
            if self.encoding == "embedding":
                blocks.append(codes[:, None].astype("float64"))
            else:
                blocks.append(np.eye(len(vocabulary) + 1)[codes])
        if not blocks:
            raise PipelineError("the schema declares no numeric or categorical feature")
        return np.hstack(blocks).astype("float32")

    def save(self, path: Path) -> None:
        write_text_atomic(json.dumps(asdict(self), indent=1), path)

    @classmethod
    def load(cls, path: Path) -> FeatureTransform:
        """A saved transform; files written before ``encoding`` existed load as one_hot."""
        return cls(**json.loads(Path(path).read_text()))


def category_codes(values: pd.Series, vocabulary: list[str]) -> np.ndarray:
    """Each value's position in ``vocabulary``; anything else gets ``len(vocabulary)``.

    The one category -> code mapping: the model's encoding gives that last code to its
    unknown slot; rebalance's neighbour space never meets it, because it encodes only the
    rows its vocabulary was read from.
    """
    index = {value: code for code, value in enumerate(vocabulary)}
    return values.map(index).fillna(len(vocabulary)).to_numpy("int64")


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
