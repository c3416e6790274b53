"""Names MLflow accepts for metrics, params and tags, made from names that embed the data's.

Report keys and gate checks carry column names (``validate.repaired.imputed:<column>``,
``gate.champion.disparity_<column>``), and a real dataset's columns hold any character.
MLflow takes only letters, digits, ``_ - . : /`` and spaces (a name with a slash must read as
a plain relative path), at most 250 characters, and refuses the whole call otherwise: a column
"Monthly Charges ($)" once failed the register stage.
"""

from __future__ import annotations

import hashlib
import re

# Slashes are allowed by MLflow but only where the name is a normalised relative path; no
# name of ours needs one, so they are replaced too.
_REFUSED = re.compile(r"[^\w.\- :]")
MAX_LENGTH = 250
_DIGEST_LENGTH = 8


def mlflow_key(name: str) -> str:
    """``name``, or where MLflow would refuse it, a valid name that still reads like it.

    Each refused character becomes ``_`` and the name is cut to length; a name changed either
    way ends with 8 hex digits of its original's SHA-256, so that two columns that differ only
    there never share a key."""
    valid = _REFUSED.sub("_", name)
    if valid == name and len(name) <= MAX_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST_LENGTH]
    return f"{valid[: MAX_LENGTH - _DIGEST_LENGTH - 1]}_{digest}"
