"""Where a training row came from: the ``_origin`` column that rebalance and augment stamp.

Rows from the split are ``original``; rebalance's synthetic rows are ``rebalance``; augment's
perturbed copies are ``augment_<method>``. The column lets anyone count or filter out the
rows a stage added; the model never sees it (it is not a schema feature).
"""

from __future__ import annotations

import pandas as pd

ORIGIN_COLUMN = "_origin"
ORIGINAL = "original"
REBALANCE = "rebalance"


def augment_origin(method: str) -> str:
    return f"augment_{method}"


def with_origin(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` itself when it has an origin column, else a copy with every row original."""
    if ORIGIN_COLUMN in frame.columns:
        return frame
    return frame.assign(**{ORIGIN_COLUMN: ORIGINAL})
