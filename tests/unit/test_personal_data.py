"""Personal data found by name, schema flag or value, and pseudonymised at ingest."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from pipelines import paths
from pipelines.config import DataParams, IngestParams
from pipelines.ingest import ingest
from pipelines.personal_data import (
    PSEUDONYM,
    personal_columns,
    pseudonym_key,
    pseudonymise,
    value_kind,
)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("jane.doe+news@example.co.uk", "email"),
        ("+33 6 12 34 56 78", "phone"),
        ("06-12-34-56-78", "phone"),
        ("(020) 7946 0958", "phone"),
        ("GB82 WEST 1234 5698 7654 32", "iban"),
        ("DE89370400440532013000", "iban"),
        ("4111 1111 1111 1111", "card"),
        ("5500-0000-0000-0004", "card"),
        (4111111111111111, "card"),
        ("pii:0123456789abcdef0123456789abcdef", "pseudonym"),
        # Look-alikes that are not personal data.
        ("GB82 WEST 1234 5698 7654 33", None),  # IBAN check sum wrong
        ("4111 1111 1111 1112", None),  # fails Luhn
        ("2026-01-02", None),
        ("01-02-2026", None),
        ("2026-01-02 10:00:00", None),
        ("cust-000123", None),
        ("123.45", None),
        ("1234567890", None),
        ("not an @ address", None),
    ],
)
def test_value_kinds(value, kind):
    assert value_kind(value) == kind


def test_columns_found_by_name_schema_flag_and_values():
    frame = pd.DataFrame(
        {
            "contact": [f"user{i}@mail.example" for i in range(20)],  # named innocently
            "customer_email": ["x"] * 20,  # named like personal data
            "ref": [f"r{i}" for i in range(20)],  # flagged in the schema
            "cards": ["4111111111111111"] * 18 + ["n/a", "n/a"],  # 1 of 2 distinct: not 80%
            "amount": [float(i) for i in range(20)],
            "when": pd.date_range("2026-01-01", periods=20),
            "label": [0, 1] * 10,
        }
    )
    found = personal_columns(frame, flagged=["ref"], exclude=["label"])
    assert found == {"contact": "values: email", "customer_email": "name", "ref": "schema"}


def test_pseudonyms_are_keyed_stable_idempotent_and_keep_nulls():
    frame = pd.DataFrame({"email": ["a@x.org", None, "a@x.org", "b@x.org"], "n": [1, 2, 3, 4]})
    once = pseudonymise(frame, ["email"], b"k1")
    assert once["email"].isna().tolist() == [False, True, False, False]
    assert once["email"][0] == once["email"][2] != once["email"][3]
    assert all(PSEUDONYM.match(v) for v in once["email"].dropna())
    assert pseudonymise(once, ["email"], b"k1").equals(once)
    assert pseudonymise(frame, ["email"], b"k2")["email"][0] != once["email"][0]
    assert frame["email"][0] == "a@x.org" and once["n"].equals(frame["n"])


def test_the_key_comes_from_the_environment_or_a_private_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_PII_KEY", "from-env")
    assert pseudonym_key() == b"from-env" and not paths.PII_KEY.exists()
    monkeypatch.delenv("PIPELINE_PII_KEY")
    key = pseudonym_key()
    assert len(key) == 64 and pseudonym_key() == key
    assert stat.S_IMODE(os.stat(paths.PII_KEY).st_mode) == 0o600


def test_ingest_snapshot_holds_no_clear_personal_data(tmp_path, monkeypatch, frame):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_PII_KEY", "k")
    frame = frame.assign(
        contact=[f"c{i}@example.com" for i in range(len(frame))],
        phone_number=[f"+4420794609{i % 100:02d}" for i in range(len(frame))],
    )
    frame.to_csv("export.csv", index=False)
    data = DataParams(source="export.csv", target="label", positive_label=1, name="d")
    snapshot, report = ingest(data, IngestParams(file_format="auto"))
    assert report["pii_columns"] == {"contact": "values: email", "phone_number": "name"}
    for column in ("contact", "phone_number"):
        assert snapshot[column].str.match(PSEUDONYM.pattern).all()
    assert snapshot["row_id"].equals(frame["row_id"]) and snapshot["label"].equals(frame["label"])
