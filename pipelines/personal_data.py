"""Personal data at rest: found by column name or by value, pseudonymised at ingest.

Ingest replaces every value of a personal column by a keyed pseudonym before the snapshot is
written, so no clear email, phone number, IBAN or card number reaches ``data/raw``, the DVC
cache or the DVC remote. A column is personal when:

* its name says so (``pipelines.schema.PII_NAME``: email, phone, iban, address, ...);
* the dataset's schema flags it ``pii: true``;
* or its values say so: most of a sample are email addresses, phone numbers, IBANs (with a
  valid check sum) or card numbers (Luhn-valid), whatever the column is called.

A pseudonym is ``pii:`` and 32 hex digits of HMAC-SHA256 under a secret key: stable (the same
value always gives the same pseudonym, so joins and duplicate checks still work) but not
reversible without the key, unlike a plain hash of an email, which a dictionary of addresses
undoes. The key comes from ``$PIPELINE_PII_KEY``; without it, a random key is made once per
checkout in ``.pii.key`` (mode 0600, never committed), so pseudonyms then differ between
machines: set ``PIPELINE_PII_KEY`` wherever several machines share data (Airflow workers).

A pseudonym of a quasi-identifier still identifies: ``customer_id`` in the simulated data
maps one to one to ``customer_email``, so whoever holds the clear ids re-identifies every
row, pseudonymised email or not. Pseudonymisation is not anonymisation (GDPR recital 26).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterable

import numpy as np
import pandas as pd

from pipelines import paths
from pipelines.schema import PII_NAME

log = logging.getLogger(__name__)

PII_KEY_ENV = "PIPELINE_PII_KEY"
PSEUDONYM = re.compile(r"^pii:[0-9a-f]{32}$")
# A column is personal when this share of its sampled values is of one personal kind.
MIN_SHARE = 0.8
SAMPLE_ROWS = 2000
SAMPLE_VALUES = 500

EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
PHONE = re.compile(r"^(\+|0|\(0)[\d\s().-]+$")
IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")
CARD = re.compile(r"^\d{13,19}$")


def value_kind(value: object) -> str | None:
    """The kind of personal datum ``value`` is (email, phone, iban, card, pseudonym), if any."""
    text = str(value).strip()
    if PSEUDONYM.match(text):
        return "pseudonym"
    if EMAIL.match(text):
        return "email"
    compact = re.sub(r"[\s-]", "", text)
    if CARD.match(compact) and _luhn(compact):
        return "card"
    if IBAN.match(compact.upper()) and _iban_checksum(compact.upper()):
        return "iban"
    if PHONE.match(text):
        digits = sum(c.isdigit() for c in text)
        # International numbers need a +; national ones a leading 0 and at least 9 digits, so
        # that dates (2026-01-02, 01-02-2026) and amounts never pass for phone numbers.
        if (text.startswith("+") and 8 <= digits <= 15) or 9 <= digits <= 11:
            return "phone"
    return None


def values_kind(series: pd.Series) -> str | None:
    """The personal kind most of a sample of the column's values share, if any."""
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        if not pd.api.types.is_integer_dtype(series):
            return None  # floats, dates and booleans hold none of these kinds
    sample = pd.unique(series.dropna().head(SAMPLE_ROWS).astype(str))[:SAMPLE_VALUES]
    if len(sample) == 0:
        return None
    kinds = pd.Series([value_kind(v) for v in sample], dtype="object").dropna()
    if kinds.empty:
        return None
    top = kinds.value_counts()
    return str(top.index[0]) if top.iloc[0] >= MIN_SHARE * len(sample) else None


def personal_columns(
    frame: pd.DataFrame, flagged: Iterable[str] = (), exclude: Iterable[str] = ()
) -> dict[str, str]:
    """Each personal column of ``frame`` and why: ``schema``, ``name`` or ``values: <kind>``."""
    flagged, exclude = set(flagged), set(exclude)
    found = {}
    for name in frame.columns:
        if name in exclude:
            continue
        if name in flagged:
            found[name] = "schema"
        elif PII_NAME.search(str(name)):
            found[name] = "name"
        elif kind := values_kind(frame[name]):
            found[name] = f"values: {kind}"
    return found


def pseudonym_key() -> bytes:
    """The HMAC key: ``$PIPELINE_PII_KEY``, else this checkout's own (made once, 0600)."""
    if os.environ.get(PII_KEY_ENV):
        return os.environ[PII_KEY_ENV].encode()
    path = paths.PII_KEY
    if not path.exists():
        # Written whole under a private name, then linked into place: a concurrent stage sees
        # no key or the whole key, never an empty file, and the first link wins.
        draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # made by a concurrent stage: read theirs
        else:
            log.warning(
                "%s unset: made a random pseudonym key in %s (keep it, never commit it; set "
                "%s wherever several machines share data)",
                PII_KEY_ENV,
                path,
                PII_KEY_ENV,
            )
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


def pseudonymise(frame: pd.DataFrame, columns: Iterable[str], key: bytes) -> pd.DataFrame:
    """Replace each value of ``columns`` by its keyed pseudonym; nulls stay null, and values
    that are pseudonyms already are kept, so pseudonymising twice changes nothing."""
    frame = frame.copy(deep=False)  # copy-on-write: replacing a column leaves the input as it is

    def pseudonym(value: object) -> str:
        text = str(value)
        if PSEUDONYM.match(text):
            return text
        return "pii:" + hmac.digest(key, text.encode(), "sha256").hex()[:32]

    for name in columns:
        codes, distinct = pd.factorize(frame[name], use_na_sentinel=True)
        mapped = np.array([pseudonym(v) for v in distinct] + [None], dtype=object)
        frame[name] = pd.Series(mapped[codes], index=frame.index, dtype="object")
    return frame


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char)
        if position % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _iban_checksum(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
