"""Row-level cleaning: repair or quarantine each defective row, with the reason recorded.

Driven by the schema and the ``validate.*`` policies: duplicate ids are quarantined, and so are
exact duplicate rows (``duplicate_rows``); nulls and infinities are imputed or quarantined
(``null_policy``), out-of-range numbers clipped or quarantined (``out_of_range_policy``),
unseen categories mapped to ``UNKNOWN_CATEGORY`` or quarantined (``unseen_category_policy``).
The first reason found for a row is the one its quarantine entry carries. Everything is
whole-column numpy on integer codes of the text columns, so millions of rows stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.config import ValidateParams
from pipelines.schema import UNKNOWN_CATEGORY, Schema, canonical_label, category_value

REASON = "reason"

# Per text column: integer codes of its distinct values (nulls -1), and those values.
Codes = dict[str, tuple[np.ndarray, pd.Index]]


@dataclass
class Cleaned:
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    kept: np.ndarray  # per input row: True if it is in ``clean``
    quarantined: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)
    # Per categorical column and the target: rows of ``clean`` per value, nulls left out.
    value_counts: dict[str, dict[str, int]] = field(default_factory=dict)


def text_codes(frame: pd.DataFrame) -> Codes:
    """Each non-numeric column as integer codes of its distinct values (nulls -1), with them.

    Equal values get equal codes, numbered in order of first appearance, and codes are far
    cheaper to hash and compare than millions of strings.
    """
    return {
        name: pd.factorize(frame[name], use_na_sentinel=True)
        for name in frame.columns
        if not (
            pd.api.types.is_numeric_dtype(frame[name])
            or pd.api.types.is_datetime64_any_dtype(frame[name])
        )
    }


def reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """Quarantined rows per reason."""
    if quarantine.empty:
        return {}
    return {str(k): int(v) for k, v in quarantine[REASON].value_counts().sort_index().items()}


class _Verdicts:
    """Which rows are rejected, and why; the first reason found for a row wins."""

    def __init__(self, rows: int) -> None:
        self.reasons = np.full(rows, None, dtype=object)
        self.rejected = np.zeros(rows, dtype=bool)
        self.repaired: dict[str, int] = {}

    def reject(self, mask: np.ndarray, reason: str) -> None:
        new = mask & ~self.rejected
        self.reasons[new] = reason
        self.rejected |= new

    def repair(self, mask: np.ndarray, what: str) -> None:
        """Count the repaired rows that are kept (a rejected row's repair is moot)."""
        self.repaired[what] = int(np.count_nonzero(mask & ~self.rejected))


class _Rows:
    """The frame's rows after the prior ones, with the text codes of both."""

    def __init__(self, frame: pd.DataFrame, prior: pd.DataFrame | None, codes: Codes | None):
        self.frame = frame
        # The prior rows come first, so a new row repeating one of them is the duplicate.
        if prior is None or prior.empty:
            self.both, self.codes = frame, text_codes(frame) if codes is None else codes
        else:
            self.both = pd.concat([prior[frame.columns], frame])
            self.codes = text_codes(self.both)
        self.new = slice(len(self.both) - len(frame), None)

    def repeated(self, values: np.ndarray) -> np.ndarray:
        """Per new row: whether an earlier row (prior or new) has the same value."""
        return pd.Series(values).duplicated(keep="first").to_numpy()[self.new]

    def repeated_code(self, codes: np.ndarray) -> np.ndarray:
        """``repeated`` for codes numbered in order of first appearance, in two passes.

        A row holds the first occurrence of its value exactly when its code is above every
        code before it; no hash table needed.
        """
        highest_before = np.maximum.accumulate(codes)
        repeated = np.zeros(len(codes), dtype=bool)
        repeated[1:] = codes[1:] <= highest_before[:-1]
        return repeated[self.new]

    def codes_of(self, name: str) -> tuple[np.ndarray, pd.Index]:
        """The new rows' codes of column ``name``, and its distinct values."""
        if name in self.codes:
            codes, distinct = self.codes[name]
            return codes[self.new], distinct
        return pd.factorize(self.frame[name], use_na_sentinel=True)


# An odd 64-bit constant (2^64 / golden ratio): each multiplication spreads a word's bits upward.
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _words(series: pd.Series) -> np.ndarray:
    """A column as one 64-bit word per row; equal values give equal words."""
    if not isinstance(series.dtype, np.dtype) or series.dtype.kind not in "biufmM":
        return pd.util.hash_pandas_object(series, index=False).to_numpy()
    values = series.to_numpy()
    if values.dtype.kind in "mM":
        values = values.view(np.int64)
    elif values.dtype.kind == "f":
        values = values.astype(np.float64, copy=False)
    else:
        values = values.astype(np.int64, copy=False)
    return values.view(np.uint64)


def _shared(rows: _Rows, name: str) -> np.ndarray:
    """Per row of ``rows.both``: whether another row holds the same value of ``name`` (nulls too)."""
    if name in rows.codes:
        codes = rows.codes[name][0]
        per_code = np.bincount(codes + 1)  # code -1 (null) counts in bin 0
        return per_code[codes + 1] > 1
    return rows.both[name].duplicated(keep=False).to_numpy()


def _repeated_rows(rows: _Rows, candidates: np.ndarray | None) -> np.ndarray:
    """Per row of ``rows.both``: whether an earlier row is equal to it, among ``candidates``.

    ``candidates`` (positions; ``None`` for all rows) must hold every copy of any repeated row.
    One 64-bit hash per row, folded from one word per column (a value's bits, or its code): far
    faster than comparing 30 columns or hashing each one first. Each step is a bijection of the
    running hash, so rows differing in one column never collide; others collide with negligible
    probability.
    """

    def pick(values):
        return values if candidates is None else values.take(candidates)

    both = rows.both
    row_hashes = np.zeros(len(both) if candidates is None else len(candidates), dtype=np.uint64)
    for name in both.columns:
        if name in rows.codes:
            words = pick(rows.codes[name][0]).astype(np.int64, copy=False).view(np.uint64)
        else:
            words = _words(pick(both[name]))
        np.bitwise_xor(row_hashes, words, out=row_hashes)
        np.multiply(row_hashes, _MIX, out=row_hashes)
    repeated = pd.Series(row_hashes).duplicated(keep="first").to_numpy()
    if candidates is None:
        return repeated
    everywhere = np.zeros(len(both), dtype=bool)
    everywhere[candidates] = repeated
    return everywhere


def _reject_duplicates(
    rows: _Rows, schema: Schema, cfg: ValidateParams, verdicts: _Verdicts
) -> None:
    ids = schema.features("id")
    if _repeats_are_defects(schema, cfg):
        # Equal rows share their id, so only rows whose id is not unique can repeat one, and
        # every copy of a repeated row is among them: hashing just those rows, rather than 30
        # columns of a million, saves about 0.15 s when ids are unique, as they mostly are.
        candidates = np.flatnonzero(_shared(rows, ids[0])) if ids else None
        verdicts.reject(_repeated_rows(rows, candidates)[rows.new], "duplicate_row")
    for name in ids:
        if name in rows.codes:
            repeated = rows.repeated_code(rows.codes[name][0])
        else:
            repeated = rows.repeated(rows.both[name].to_numpy())
        present = rows.frame[name].notna().to_numpy()
        verdicts.reject(repeated & present, f"duplicate_id:{name}")


def _repeats_are_defects(schema: Schema, cfg: ValidateParams) -> bool:
    """Whether an exact repeat of a row is quarantined (``validate.duplicate_rows``).

    With an id column a row is a record, and its repeat one sent twice. Without one, equal rows
    are as likely distinct observations that happen to agree: in low-cardinality data most
    rows repeat another (a table of four categorical columns lost 92% of its rows), so
    ``auto`` keeps them. The default hash split sends equal rows to the same split, so a kept
    repeat never sits on both sides of train and test."""
    if cfg.duplicate_rows == "auto":
        return bool(schema.features("id"))
    return cfg.duplicate_rows == "quarantine"


def _floats(series: pd.Series) -> np.ndarray:
    """The column as float64, never to be written to (it may be the frame's own array).

    What does not parse as a number is NaN.
    """
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf":
        return series.to_numpy(dtype=np.float64, copy=False)
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


@dataclass
class _Numeric:
    """A numeric column's values, and the repairs its kept rows get when taken."""

    values: np.ndarray  # read only
    impute: float | str | None  # replaces NaN and infinities, when ``imputed``
    imputed: bool
    bounds: tuple[float | None, float | None] | None  # clipped to, if any

    def take(self, positions: np.ndarray) -> np.ndarray:
        # Repairing only the kept rows, in the copy that taking them makes anyway, saves a
        # copy of every column.
        values = self.values.take(positions)
        if self.imputed:
            values[~np.isfinite(values)] = self.impute
        if self.bounds is not None:
            np.clip(values, *self.bounds, out=values)
        return values


def _clean_numeric(
    frame: pd.DataFrame, schema: Schema, cfg: ValidateParams, verdicts: _Verdicts
) -> dict[str, _Numeric]:
    """Each numeric column's verdicts, and its repairs for ``_Numeric.take``."""
    columns = {}
    for name in schema.numeric:
        col = schema.columns[name]
        values = _floats(frame[name])
        nulls = ~np.isfinite(values)  # infinities are missing values, not huge ones
        any_null = bool(nulls.any())
        imputed = any_null and (col.nullable or cfg.null_policy == "impute")
        if imputed:
            verdicts.repair(nulls, f"imputed:{name}")
        elif any_null:
            verdicts.reject(nulls, f"null:{name}")
        outside = (values < col.min) | (values > col.max)
        if any_null:  # judged as holding their replacement: the imputed value, or NaN
            fill: np.ndarray = np.full(1, col.impute if imputed else np.nan, dtype=np.float64)
            outside[nulls] = ((fill < col.min) | (fill > col.max))[0]
        any_outside = bool(outside.any())
        clipped = any_outside and cfg.out_of_range_policy == "clip"
        if clipped:
            verdicts.repair(outside, f"clipped:{name}")
        elif any_outside:
            verdicts.reject(outside, f"out_of_range:{name}")
        bounds = (col.min, col.max) if clipped else None
        columns[name] = _Numeric(values, col.impute, imputed, bounds)
    return columns


def _clean_categorical(
    rows: _Rows, schema: Schema, cfg: ValidateParams, verdicts: _Verdicts
) -> dict[str, tuple[np.ndarray, pd.api.extensions.ExtensionArray]]:
    """Each categorical column as its rows' codes plus one, and the repaired text per code.

    Categories are decided per distinct value, then spread to rows by code. Code -1 (null)
    becomes 0, the first entry of each per-value array: cheaper than wrapping it around to the
    last with a modulo on a million codes.
    """
    columns = {}
    for name in schema.categorical:
        col = schema.columns[name]
        codes, distinct = rows.codes_of(name)
        codes = codes + 1
        text = np.array([None] + [category_value(value) for value in distinct], dtype=object)
        nulls = codes == 0
        if nulls.any():
            if col.nullable or cfg.null_policy == "impute":
                text[0] = UNKNOWN_CATEGORY
                verdicts.repair(nulls, f"imputed:{name}")
            else:
                verdicts.reject(nulls, f"null:{name}")
        allowed = set(col.categories or []) | {UNKNOWN_CATEGORY}
        unseen_value = np.array([v is not None and v not in allowed for v in text], dtype=bool)
        unseen = unseen_value[codes]
        if unseen.any():
            if cfg.unseen_category_policy == "unknown":
                text[unseen_value] = UNKNOWN_CATEGORY
                verdicts.repair(unseen, f"unseen_to_unknown:{name}")
            else:
                verdicts.reject(unseen, f"unseen_category:{name}")
        columns[name] = (codes, pd.array(text, dtype="str"))
    return columns


def clean_rows(
    frame: pd.DataFrame,
    schema: Schema,
    cfg: ValidateParams,
    prior: pd.DataFrame | None = None,
    codes: Codes | None = None,
) -> Cleaned:
    """Repair or quarantine each row-level defect; the target becomes 0/1 (1 = positive).

    ``prior`` holds the raw rows of partitions accepted before: a row or id repeating one of
    them is a duplicate too. ``codes`` is ``text_codes(frame)`` when the caller has it already.
    """
    rows = _Rows(frame, prior, codes)
    verdicts = _Verdicts(len(frame))
    _reject_duplicates(rows, schema, cfg, verdicts)
    # Repaired columns are built whole, and filtered to the kept rows once at the end.
    numeric = _clean_numeric(frame, schema, cfg, verdicts)
    categorical = _clean_categorical(rows, schema, cfg, verdicts)

    kept = ~verdicts.rejected
    # Row positions of the kept rows, found once: taking them is cheaper than one mask per column.
    taken = np.flatnonzero(kept)
    columns, value_counts = {}, {}
    for name in frame.columns:
        if name in numeric:
            columns[name] = numeric[name].take(taken)
        elif name in categorical:
            column_codes, text = categorical[name]
            # Taking from the few distinct strings is much cheaper than converting a million.
            kept_codes = column_codes.take(taken)
            columns[name] = text.take(kept_codes)
            value_counts[name] = _count(text, np.bincount(kept_codes, minlength=len(text)))
        else:
            columns[name] = frame[name].array.take(taken)
    labels, distinct = rows.codes_of(schema.target)
    positive = np.array([canonical_label(v) == schema.positive_label for v in distinct] + [False])
    columns[schema.target] = positive[labels.take(taken)].astype("int64")
    positives = int(np.count_nonzero(columns[schema.target]))
    value_counts[schema.target] = _count(["0", "1"], [len(taken) - positives, positives])
    clean = pd.DataFrame(columns, copy=False)  # the arrays are new: no second copy
    quarantine = frame[verdicts.rejected].copy()
    quarantine[REASON] = pd.Series(
        verdicts.reasons[verdicts.rejected], index=quarantine.index, dtype="str"
    )
    return Cleaned(
        clean,
        quarantine.reset_index(drop=True),
        kept=kept,
        quarantined=reason_counts(quarantine),
        repaired=verdicts.repaired,
        value_counts=value_counts,
    )


def _count(values, counts) -> dict[str, int]:
    """Rows per value from rows per code, several codes may share a value (as ``__unknown__``).

    As ``value_counts``: nulls and values no row holds are left out. Counting codes saves
    drift hashing a million strings again per column.
    """
    per_value: dict[str, int] = {}
    for value, count in zip(values, np.asarray(counts).tolist(), strict=True):
        if count and isinstance(value, str):
            per_value[value] = per_value.get(value, 0) + count
    return per_value
