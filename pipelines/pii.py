"""PII columns (``pii: true`` in the schema): pseudonymised before anything else sees them.

Validate hashes them first, before Great Expectations or any log line reads a value, with a
salt from the environment under ``validate.pii_policy: hash``; under ``drop`` the salt is a
throwaway one, because the columns are dropped from the outputs anyway.
"""

from __future__ import annotations

import hashlib
import os
import secrets

import pandas as pd

from pipelines.errors import PipelineError
from pipelines.schema import Schema

PII_SALT_ENV = "PIPELINE_PII_SALT"


def pseudonymize(frame: pd.DataFrame, schema: Schema, salt: str) -> pd.DataFrame:
    """Replace every PII value by a salted SHA-256 digest (nulls stay null)."""
    frame = frame.copy(deep=False)  # copy-on-write: replacing a column leaves the input as it is
    for name in schema.pii:
        if name in frame.columns:
            frame[name] = frame[name].map(
                lambda value: hashlib.sha256(f"{salt}{value}".encode()).hexdigest()[:32],
                na_action="ignore",
            )
    return frame


def pii_salt(schema: Schema, policy: str) -> str:
    """The salt from the environment; ``drop`` needs none and gets a throwaway one."""
    if not schema.pii or policy == "drop":
        return secrets.token_hex(16)
    salt = os.environ.get(PII_SALT_ENV, "")
    if not salt:
        raise PipelineError(
            f"validate.pii_policy=hash: set {PII_SALT_ENV} to a secret salt to hash the PII "
            f"columns {schema.pii}"
        )
    return salt
