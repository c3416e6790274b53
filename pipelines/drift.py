"""Drift of a cleaned snapshot against the reference: the last snapshot that passed validation.

The reference is kept as a compact profile (``data/reference/<dataset>.json``, a persisted DVC
output of the validate stage, so it is versioned with the data): decile bin edges and shares for
each numeric feature, category shares for each categorical feature, and the label shares.
Distance is the population stability index (PSI), one figure per feature plus one for the
label, so a single pair of thresholds reads the same everywhere (0.1 is a usual warning level,
0.25 a usual action level).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines import gates
from pipelines.gates import GateResult
from pipelines.schema import Schema, category_text, category_value

BINS = 10
# Empty bins would make PSI infinite; this floor is the usual smoothing.
SHARE_FLOOR = 1e-4


def profile(clean: pd.DataFrame, schema: Schema) -> dict:
    """The reference profile of a cleaned frame (target already 0/1)."""
    numeric = {name: binned_profile(clean[name].to_numpy("float64")) for name in schema.numeric}
    categorical = {name: _category_shares(clean[name]) for name in schema.categorical}
    return {
        "rows": len(clean),
        "numeric": numeric,
        "categorical": categorical,
        "label": _category_shares(clean[schema.target]),
    }


def binned_profile(values: np.ndarray) -> dict[str, list[float]]:
    """Decile edges of ``values`` and the share of them in each bin: one numeric column's
    reference, a feature's or a model's scores."""
    edges = np.unique(np.nanquantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    return {"edges": edges.tolist(), "shares": _binned(values, edges).tolist()}


def binned_shares(values: np.ndarray, edges) -> np.ndarray:
    """Share of ``values`` in each bin a ``binned_profile``'s edges make."""
    return _binned(np.asarray(values, "float64"), np.asarray(edges, "float64"))


def binned_psi(reference: dict, values: np.ndarray) -> float:
    """PSI of ``values`` against a ``binned_profile``."""
    return population_stability(reference["shares"], binned_shares(values, reference["edges"]))


def window_psi(reference: dict, window: pd.DataFrame) -> dict[str, float]:
    """PSI per reference feature that ``window`` holds, on raw rows as they arrive for
    scoring: text in a numeric column counts as missing, an unseen category as a new level."""
    psi = {}
    for name, ref in reference["numeric"].items():
        if name in window:
            values = pd.to_numeric(window[name], errors="coerce").to_numpy("float64")
            psi[name] = binned_psi(ref, values)
    for name, ref in reference["categorical"].items():
        if name in window:
            psi[name] = _category_psi(ref, _category_shares(window[name]))
    return {name: round(value, 6) for name, value in psi.items()}


def gate(psi: dict[str, float], limit: float) -> list[GateResult]:
    """One check per column, in name order: its PSI against the reference at most ``limit``."""
    return [
        gates.at_most(f"psi:{name}", value, limit, f"column {name!r} PSI {value:.3f}")
        for name, value in sorted(psi.items())
    ]


def population_stability(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.clip(np.asarray(expected, "float64"), SHARE_FLOOR, None)
    actual = np.clip(np.asarray(actual, "float64"), SHARE_FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def compare(
    reference: dict,
    clean: pd.DataFrame,
    schema: Schema,
    value_counts: dict[str, dict[str, int]] | None = None,
) -> dict[str, float]:
    """PSI per feature present in both the reference and the schema, and for the label.

    ``value_counts`` (``Cleaned.value_counts``) holds the rows per value of categorical
    columns and the label when the caller has counted them already.
    """
    counts = value_counts or {}

    def shares(name: str) -> dict[str, float]:
        if name in counts:
            return _shares(counts[name])
        return _category_shares(clean[name])

    drift = {}
    for name, ref in reference["numeric"].items():
        if name in schema.numeric:
            drift[name] = binned_psi(ref, clean[name].to_numpy("float64"))
    for name, ref in reference["categorical"].items():
        if name in schema.categorical:
            drift[name] = _category_psi(ref, shares(name))
    drift[schema.target] = _category_psi(reference["label"], shares(schema.target))
    return {name: round(value, 6) for name, value in drift.items()}


def _binned(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin; bin i holds the values with i edges at or below them.

    One comparison pass per edge is several times faster than ``searchsorted`` on millions of
    unsorted values. NaN counts as above every edge, as ``searchsorted`` sorts it last.
    """
    nans = np.count_nonzero(np.isnan(values))
    at_or_above = [np.count_nonzero(values >= edge) + nans for edge in edges]
    counts = -np.diff([len(values), *at_or_above, 0])
    return counts / max(len(values), 1)


def _category_shares(series: pd.Series) -> dict[str, float]:
    """Shares per value, spelled as the schema lists it: a boolean is "true"/"false" whether
    it arrives as one (raw rows for scoring) or as that text (validated rows, the reference)."""
    if series.dtype.kind in "biu":
        # Integers and booleans (the 0/1 label) have no nulls and one spelling each: count
        # them as numbers, not as a million strings.
        shares = series.value_counts(normalize=True)
        return {category_value(k): float(shares[k]) for k in sorted(shares.index, key=str)}
    # Only an object column can hold booleans among other values (a nullable boolean read
    # from CSV); string columns are counted as they are.
    text = category_text(series) if series.dtype == object else series
    shares = text.astype(str).value_counts(normalize=True).sort_index()
    return {str(k): float(v) for k, v in shares.items()}


def _shares(counts: dict[str, int]) -> dict[str, float]:
    """``_category_shares`` from rows per value: the same divisions, so the same floats."""
    total = sum(counts.values())
    return {value: counts[value] / total for value in sorted(counts)}


def _category_psi(reference: dict[str, float], current: dict[str, float]) -> float:
    levels = sorted(set(reference) | set(current))
    return population_stability(
        [reference.get(level, 0.0) for level in levels],
        [current.get(level, 0.0) for level in levels],
    )
